// Package controller is csi-thin's CSI controller service. Each node runs
// its own, over its own pool engine, and provisions only on that node: the
// csi-provisioner and csi-snapshotter sidecars run with --node-deployment.
// Requests are checked here; the engine's errors are returned as they are,
// for the driver to map to gRPC codes in one place. Expansion is the node
// service's: the external-resizer has no per-node mode.
package controller
