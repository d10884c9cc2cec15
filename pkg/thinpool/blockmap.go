package thinpool

import "time"

// The types of a snapshot's block map, as the snapshot metadata service
// (package snapmeta) reads it from the engine: which data blocks of the
// pool a snapshot maps, and which differ between two snapshots of one
// volume.

// An Extent is a run of Len blocks of a thin device from block Block on,
// in the pool's data blocks (BlockMap.BlockBytes each). Len is at least 1.
type Extent struct {
	Block, Len uint64
}

// End is the block after the extent.
func (x Extent) End() uint64 { return x.Block + x.Len }

// A BlockMap describes a snapshot for its block map's readers.
type BlockMap struct {
	VolumeID    string    // the volume the snapshot was taken of
	CreatedAt   time.Time // when the snapshot was cut; orders a volume's snapshots
	VolumeBytes uint64    // the snapshot's size: its volume's size when it was cut
	BlockBytes  uint64    // the pool's data block size
}
