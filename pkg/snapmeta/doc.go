// Package snapmeta is csi-thin's CSI SnapshotMetadata service, which the
// external-snapshot-metadata sidecar calls for backup tools: the data
// ranges a snapshot holds (GetMetadataAllocated) and those that changed
// between two snapshots of a volume (GetMetadataDelta).
//
// Server answers on a node from its pool (a Source), streaming the
// engine's block map as it is read, a batch of entries per message.
// Forwarder answers where the sidecar runs, off the nodes: it finds the
// node that holds each snapshot through package forward, which asks every
// node over mutual TLS and remembers the answer, and relays that node's
// stream. See docs/snapshot-metadata.md for the design.
package snapmeta
