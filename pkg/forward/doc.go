// Package forward is what lets one process off the nodes stand for every
// node's csi-thin: it finds the node that holds a volume, a snapshot or a
// group snapshot, and reaches it over mutual TLS.
//
// Nodes is the forwarder's side of the nodes: their addresses (Peers, a
// headless Service of the node pods resolved at each lookup), one
// connection to each, reused, and one cache per Kind of the node that
// holds each id. Locate finds that node by asking every node at once with
// a Probe, a cheap call that a node answers NotFound when it does not
// have the id, and that names the node (NodeHeader) when it does.
// On a node, the listener the forwarder calls serves only the methods
// the forwarder makes (Relayed): Guard and GuardStream refuse anything
// else with PermissionDenied, and NameNode names the node in every
// reply's header. ServerTLS and ClientTLS are the two ends' mutual TLS.
// See docs/snapshot-metadata.md.
//
// The package knows the CSI API and gRPC, not the pool: it imports
// neither the engine nor the node's services.
package forward
