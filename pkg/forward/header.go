package forward

// NodeHeader is the response header in which a node names itself once it
// has found what a call asks for: a SnapshotMetadata stream sends it
// before any block is read. The forwarder's probes read it to learn who
// has an id.
const NodeHeader = "csi-thin-node"
