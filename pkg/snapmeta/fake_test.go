package snapmeta

import (
	"context"
	"fmt"
	"sync"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// fakeSource is a node's snapshots in memory: each with its block map and
// its allocated runs, and the runs of named deltas.
type fakeSource struct {
	mu     sync.Mutex // guards maps and runs, which tests change between calls
	maps   map[string]thinpool.BlockMap
	runs   map[string][]thinpool.Extent // by snapshot id
	deltas map[[2]string][]thinpool.Extent
	err    error // returned by Allocated and Delta when set
	raw    bool  // yield every run from block 0, ignoring start

	// After is how many extents go out before the source waits for the
	// call to end and calls fn once more; 0: no wait. Ended, when set,
	// receives the error each walk ends with, whichever way it ends.
	after int
	ended chan error
}

func (f *fakeSource) BlockMap(_ context.Context, id string) (thinpool.BlockMap, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	bm, ok := f.maps[id]
	if !ok {
		return bm, fmt.Errorf("snapshot %s: %w", id, thinpool.ErrNotFound)
	}
	return bm, nil
}

func (f *fakeSource) Allocated(ctx context.Context, id string, start uint64, fn func(thinpool.Extent) error) error {
	f.mu.Lock()
	runs := f.runs[id]
	f.mu.Unlock()
	return f.stream(ctx, runs, start, fn)
}

func (f *fakeSource) Delta(ctx context.Context, base, target string, start uint64, fn func(thinpool.Extent) error) error {
	return f.stream(ctx, f.deltas[[2]string{base, target}], start, fn)
}

func (f *fakeSource) stream(ctx context.Context, runs []thinpool.Extent, start uint64, fn func(thinpool.Extent) error) (err error) {
	if f.ended != nil {
		defer func() { f.ended <- err }()
	}
	if f.err != nil {
		return f.err
	}
	for i, x := range runs {
		if f.after > 0 && i == f.after {
			<-ctx.Done()
			return fn(x)
		}
		if x.End() <= start && !f.raw {
			continue
		}
		if x.Block < start && !f.raw {
			x = thinpool.Extent{Block: start, Len: x.End() - start}
		}
		if err := fn(x); err != nil {
			return err
		}
	}
	return nil
}

// move takes snapshot id out of f and puts it into to.
func (f *fakeSource) move(id string, to *fakeSource) {
	f.mu.Lock()
	bm, runs := f.maps[id], f.runs[id]
	delete(f.maps, id)
	delete(f.runs, id)
	f.mu.Unlock()
	to.mu.Lock()
	to.maps[id], to.runs[id] = bm, runs
	to.mu.Unlock()
}
