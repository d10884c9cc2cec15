package snapmeta

import (
	"context"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// Source is what the service reads a node's snapshots from: the pool
// engine, and a fake in the tests. Block maps stream through fn, in
// ascending block order, without overlap; when fn returns an error the
// Source stops and returns that error (ctx's error when the call was
// cancelled). The Source's errors are the engine's: thinpool.ErrNotFound
// for an unknown snapshot, which the driver maps to NotFound, and
// ErrInvalidArgument, ErrUnhealthy and the others as pkg/csierr maps
// them.
type Source interface {
	// BlockMap describes snapshot id.
	BlockMap(ctx context.Context, id string) (thinpool.BlockMap, error)
	// Allocated calls fn for each run of blocks the snapshot maps, from
	// block start on: a run that begins before start is cut to begin at
	// start.
	Allocated(ctx context.Context, id string, start uint64, fn func(thinpool.Extent) error) error
	// Delta calls fn for each run of blocks, from block start on, that
	// target maps differently from base: written since base was cut,
	// beyond base's size, or unmapped since (discarded). The service calls
	// it only for two snapshots of the same volume, base the older.
	Delta(ctx context.Context, baseID, targetID string, start uint64, fn func(thinpool.Extent) error) error
}
