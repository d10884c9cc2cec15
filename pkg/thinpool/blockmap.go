package thinpool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/csi-thin/csi-thin/pkg/thinmeta"
)

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

// snapshotRecord is snapshot id as readers of its block map see it.
func (e *Engine) snapshotRecord(id string) (*Volume, error) {
	v, err := e.Get(id)
	if err != nil {
		return nil, err
	}
	if v.Kind != KindSnapshot {
		return nil, fmt.Errorf("%w: %s is a volume, not a snapshot: block maps are read of snapshots", ErrNotFound, id)
	}
	return v, nil
}

// BlockMap describes snapshot id for the readers of its block map.
func (e *Engine) BlockMap(_ context.Context, id string) (BlockMap, error) {
	v, err := e.snapshotRecord(id)
	if err != nil {
		return BlockMap{}, err
	}
	return BlockMap{VolumeID: v.SourceID, CreatedAt: v.CreatedAt, VolumeBytes: v.SizeBytes, BlockBytes: e.BlockSizeBytes()}, nil
}

// Allocated calls fn for each run of blocks snapshot id maps, in order,
// from block start on, as a metadata snapshot of the pool has them.
func (e *Engine) Allocated(ctx context.Context, id string, start uint64, fn func(Extent) error) error {
	v, err := e.snapshotRecord(id)
	if err != nil {
		return err
	}
	l, err := e.acquireMeta(ctx, v.CreatedTx)
	if err != nil {
		return err
	}
	defer e.releaseMeta(l)
	return mapErr(v, l.tree.Mappings(ctx, v.ThinID, start, fromMeta(fn)))
}

// Delta calls fn for each run of blocks, in order from block start on,
// that snapshot targetID maps differently from baseID: written since,
// beyond base's size, or discarded since. The two are snapshots of one
// volume (the caller checks), base the older.
func (e *Engine) Delta(ctx context.Context, baseID, targetID string, start uint64, fn func(Extent) error) error {
	base, err := e.snapshotRecord(baseID)
	if err != nil {
		return err
	}
	target, err := e.snapshotRecord(targetID)
	if err != nil {
		return err
	}
	l, err := e.acquireMeta(ctx, max(base.CreatedTx, target.CreatedTx))
	if err != nil {
		return err
	}
	defer e.releaseMeta(l)
	return mapErr(target, l.tree.Delta(ctx, base.ThinID, target.ThinID, start, fromMeta(fn)))
}

// fromMeta adapts fn to the extents of package thinmeta.
func fromMeta(fn func(Extent) error) func(thinmeta.Extent) error {
	return func(x thinmeta.Extent) error { return fn(Extent{Block: x.Block, Len: x.Len}) }
}

// mapErr says which snapshot a failed read of the metadata was for.
func mapErr(v *Volume, err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("read the block map of snapshot %s (thin device %d) from the pool's metadata: %w", v.ID, v.ThinID, err)
}
