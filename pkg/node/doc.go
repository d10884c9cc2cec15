// Package node is csi-thin's CSI node service. It stages a volume by
// activating its thin device and, for mount volumes, formatting a blank
// device and mounting it at the staging path; it publishes by bind-mounting
// the staging mount (or, for block volumes, the device node) at the target
// path. It also reports volume usage and health and grows volumes and their
// filesystems online. Engine errors are returned as they are, for the
// driver to map to gRPC codes; only the node's own checks return statuses.
//
// The service keeps no locks: it relies on the driver's interceptor to let
// one CSI call at a time change a volume, and on the engine to order the
// engine calls it makes against everyone else's.
package node
