// Package driver puts csi-thin together: it opens the node's pool engine,
// serves the CSI identity, controller and node services on a unix socket,
// and runs every call through the same interceptors: logging with secrets
// stripped, Aborted for a call on a volume that already has one in flight,
// and the one mapping of engine errors to CSI codes.
package driver
