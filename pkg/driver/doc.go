// Package driver puts csi-thin together: it opens the node's pool engine,
// serves the CSI identity, controller and node services on a unix socket,
// and runs every call through the same interceptors: logging with secrets
// stripped, Aborted for a call on a volume that already has one in flight,
// and the one mapping of engine errors to CSI codes (pkg/csierr). With a
// metrics address it also serves Prometheus metrics (metrics.go): the
// pool's space and health read at each scrape, and each CSI method's
// calls and latency by gRPC code.
package driver
