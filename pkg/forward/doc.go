// Package forward is what lets one process off the nodes stand for every
// node's csi-thin: it finds the node that holds a volume, a snapshot or a
// group snapshot, and relays calls to it over mutual TLS.
//
// Nodes is the forwarder's side of the nodes: their addresses (Peers, a
// headless Service of the node pods resolved at each lookup), one
// connection to each, reused, and one cache per Kind of the node that
// holds each id. Locate finds that node by asking every node at once with
// a Probe, a cheap call that a node answers NotFound when it does not
// have the id; package snapmeta's forwarder and this package's relays
// share it, so each id is looked up once whatever asks.
//
// Controller and GroupController are the relays of the snapshot calls
// that the cluster's csi-snapshotter makes: each call goes to the node of
// its volume, snapshot or group, and a list of every snapshot pages
// through the nodes in the order of their names. A relayed call checks
// that the node it meant is the one that answered (NodeHeader); when that
// node fails with NotFound or Unavailable, or another node answered at
// its address, the relay forgets the owner and looks once more.
//
// On a node, the listener the forwarder calls serves only the methods in
// Relayed: Guard and GuardStream refuse anything else with
// PermissionDenied, and NameNode names the node in every reply's header
// (NodeHeader), which is how a probe learns who answered. ServerTLS and
// ClientTLS are the two ends' mutual TLS. See docs/forwarder.md.
//
// The package knows the CSI API and gRPC, not the pool: it imports
// neither the engine nor the node's services.
package forward
