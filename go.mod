module github.com/csi-thin/csi-thin

go 1.26.8

require (
	golang.org/x/sys v0.49.0
	k8s.io/klog/v2 v2.140.0
)

require github.com/go-logr/logr v1.4.1 // indirect
