package forward

import "google.golang.org/grpc/metadata"

// NodeHeader is the response header in which a node names itself: on
// every unary reply of its listener (NameNode), and on a SnapshotMetadata
// stream once the node has found the snapshot, before any block is read.
// The forwarder's probes read it to learn who has an id, and its relays
// to check that the node they meant is the one that answered.
const NodeHeader = "csi-thin-node"

// nodeIn is the node a reply's header names, or "".
func nodeIn(md metadata.MD) string {
	if v := md.Get(NodeHeader); len(v) > 0 {
		return v[0]
	}
	return ""
}
