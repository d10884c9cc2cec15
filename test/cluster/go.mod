module github.com/csi-thin/csi-thin/test/cluster

go 1.26.0
