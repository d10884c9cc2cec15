module github.com/csi-thin/csi-thin

go 1.26.8

require (
	go.etcd.io/bbolt v1.5.0
	golang.org/x/sys v0.49.0
	k8s.io/klog/v2 v2.140.0
)

require github.com/go-logr/logr v1.4.1 // indirect
