// Package driver puts csi-thin together: it opens the node's pool engine,
// serves the CSI identity, controller and node services on a unix socket,
// and runs every call through the same interceptors: logging with secrets
// stripped, Aborted for a call on a volume that already has one in flight,
// and the one mapping of engine errors to CSI codes (pkg/csierr). With a
// metrics address it also serves Prometheus metrics (metrics.go): the
// pool's space and health read at each scrape, and each CSI method's
// calls and latency by gRPC code. With a SnapshotMetadata address it
// serves that service (package snapmeta) on the socket, and listens on
// TCP, with mutual TLS, for the forwarder: SnapshotMetadata and the
// snapshot calls of the controller and group controller services, the
// socket's own servers behind the socket's interceptors, and nothing else
// (forward.Guard; listener.go). In --mode=forwarder it is the forwarder
// itself (forwarder.go): the relays of package forward and snapmeta on a
// unix socket, for the cluster's csi-snapshotter and the
// external-snapshot-metadata sidecar.
//
// A call that changes a volume or snapshot (inflight.go), while another
// on the same one is still running, is refused with Aborted, as the CSI
// spec has it ("operation pending for volume"), rather than queued: the
// sidecars and kubelet retry with backoff, and a caller that timed out and
// retried finds the first call's result instead of queueing a second copy
// behind it. This is the one place CSI calls are ordered per volume; the
// engine orders its own calls (package thinpool).
package driver
