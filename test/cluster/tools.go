//go:build tools

// The sidecars' commands are main packages of other modules: importing them
// here under a build tag keeps their modules in go.mod and go.sum, so that
// build-bins can build them by import path in this module, with the same
// versions of the packages they share with Kubernetes.
package cluster

import (
	_ "github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner"
	_ "github.com/kubernetes-csi/external-resizer/v2/cmd/csi-resizer"
	_ "github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter"
	_ "github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller"
)
