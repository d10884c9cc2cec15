package thinmeta_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/csi-thin/csi-thin/pkg/thinmeta"
)

// run maps n consecutive blocks from block to data blocks from data.
func run(m map[uint64]uint64, block, n, data uint64) map[uint64]uint64 {
	for i := range n {
		m[block+i] = data + i
	}
	return m
}

// strided maps n blocks, one every stride blocks from block, to data
// blocks from data.
func strided(block, n, stride, data uint64) map[uint64]uint64 {
	m := make(map[uint64]uint64, n)
	for i := range n {
		m[block+i*stride] = data + i
	}
	return m
}

// randomDevice maps n random blocks below space to random data blocks.
func randomDevice(rng *rand.Rand, n int, space uint64) map[uint64]uint64 {
	m := make(map[uint64]uint64, n)
	for len(m) < n {
		m[rng.Uint64N(space)] = rng.Uint64N(1 << 20)
	}
	return m
}

// mappingCases are thin devices of every shape a btree takes: empty, one
// leaf, several, and three levels.
var mappingCases = []struct {
	name string
	dev  map[uint64]uint64
}{
	{"empty", map[uint64]uint64{}},
	{"one block", map[uint64]uint64{5: 1}},
	{"block 0", map[uint64]uint64{0: 7}},
	{"holes", run(map[uint64]uint64{7: 20, 9: 21, 100: 3}, 0, 3, 10)},
	{"virtual run over scattered data blocks", map[uint64]uint64{10: 9, 11: 3, 12: 700, 13: 1}},
	{"far blocks", map[uint64]uint64{0: 4, 1 << 40: 3, 1<<40 + 1: 5, 1 << 47: 6}},
	{"two leaves", run(map[uint64]uint64{}, 1000, 300, 0)},
	{"every other block, three levels", strided(3, 70000, 2, 1000)},
	{"runs and holes", run(run(run(map[uint64]uint64{}, 0, 500, 0), 600, 1000, 9000), 5000, 40000, 20000)},
	{"random", randomDevice(rand.New(rand.NewPCG(1, 2)), 5000, 100000)},
}

// starts are the blocks to start a walk of m at: the start, the middle, on
// and around the first and last keys, in a hole, and past everything.
func starts(m map[uint64]uint64) []uint64 {
	out := []uint64{0, 1, math.MaxUint64}
	keys := sortedKeys(m)
	if len(keys) == 0 {
		return out
	}
	first, last, mid := keys[0], keys[len(keys)-1], keys[len(keys)/2]
	out = append(out, first, first+1, mid, mid+1, last, last+1)
	if first > 0 {
		out = append(out, first-1)
	}
	for i := 1; i < len(keys); i++ {
		if keys[i] > keys[i-1]+1 {
			out = append(out, keys[i-1]+1) // a hole
			break
		}
	}
	return out
}

func TestMappings(t *testing.T) {
	p := pool{}
	for i, tt := range mappingCases {
		p[uint32(i+1)] = tt.dev
	}
	tr := openTree(t, openReader(t, p.restore(t)), 0)
	for i, tt := range mappingCases {
		t.Run(tt.name, func(t *testing.T) {
			for _, start := range starts(tt.dev) {
				got := mappings(t, tr, uint32(i+1), start)
				checkWellFormed(t, tt.name, got)
				checkExtents(t, tt.name, got, mappedExtents(tt.dev, start))
			}
		})
	}
}

// A device of a million mappings: a btree of three levels, thousands of
// leaves, all read in order.
func TestMappingsLargeDevice(t *testing.T) {
	dev := map[uint64]uint64{}
	for b := uint64(0); len(dev) < 1_000_000; b += 1000 {
		run(dev, b, 997, b/2) // holes of 3 blocks every 1000
	}
	tr := openTree(t, openReader(t, pool{7: dev}.restore(t)), 0)
	for _, start := range []uint64{0, 654_321} {
		n, prev := uint64(0), extent{}
		err := tr.Mappings(context.Background(), 7, start, func(e extent) error {
			want := extent{Block: max(start, e.Block/1000*1000), Len: 0}
			want.Len = e.Block/1000*1000 + 997 - want.Block
			if e != want || (n > 0 && e.Block/1000 != prev.Block/1000+1) {
				t.Fatalf("from %d: extent %d is %v after %v, want %v", start, n, e, prev, want)
			}
			n, prev = n+e.Len, e
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := uint64(len(mappedBlocksFrom(dev, start))); n != want {
			t.Fatalf("from %d: %d blocks mapped, want %d", start, n, want)
		}
	}
}

func mappedBlocksFrom(m map[uint64]uint64, start uint64) []uint64 {
	var out []uint64
	for k := range m {
		if k >= start {
			out = append(out, k)
		}
	}
	return out
}

// Enough devices that the top-level trees have internal nodes, each with
// its own details.
func TestDevices(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := pool{}
	for i := range 300 {
		p[uint32(i*7+1)] = randomDevice(rng, rng.IntN(50), 1<<20)
	}
	p[1<<24-1] = map[uint64]uint64{1: 1} // the largest thin id
	tr := openTree(t, openReader(t, p.restore(t)), 0)
	ctx := context.Background()
	devs, err := tr.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := slices.Sorted(func(yield func(uint32) bool) {
		for id := range p {
			if !yield(id) {
				return
			}
		}
	})
	if len(devs) != len(ids) {
		t.Fatalf("%d devices, want %d", len(devs), len(ids))
	}
	for i, id := range ids {
		want := thinmeta.DeviceDetails{MappedBlocks: uint64(len(p[id])), TransactionID: 3 * uint64(id),
			CreationTime: id % 1000, SnapshottedTime: id%1000 + 1}
		if devs[i] != (thinmeta.Device{ID: id, DeviceDetails: want}) {
			t.Fatalf("device %d is %+v, want id %d with %+v", i, devs[i], id, want)
		}
		got, err := tr.DeviceDetails(ctx, id)
		if err != nil || got != want {
			t.Fatalf("details of %d: %+v, %v; want %+v", id, got, err, want)
		}
		checkExtents(t, "mappings", mappings(t, tr, id, 0), mappedExtents(p[id], 0))
	}
	for _, missing := range []uint32{0, 2, 1<<24 - 2, math.MaxUint32} {
		if _, err := tr.DeviceDetails(ctx, missing); !errors.Is(err, thinmeta.ErrNoDevice) {
			t.Errorf("details of missing device %d: got %v, want ErrNoDevice", missing, err)
		}
		err := tr.Mappings(ctx, missing, 0, func(extent) error { return nil })
		if !errors.Is(err, thinmeta.ErrNoDevice) {
			t.Errorf("mappings of missing device %d: got %v, want ErrNoDevice", missing, err)
		}
		err = tr.Delta(ctx, 1, missing, 0, func(extent) error { return nil })
		if !errors.Is(err, thinmeta.ErrNoDevice) {
			t.Errorf("delta with missing device %d: got %v, want ErrNoDevice", missing, err)
		}
	}
}

func TestSuperblock(t *testing.T) {
	r := openReader(t, pool{1: {0: 1}}.restore(t))
	sb, err := r.Superblock()
	if err != nil {
		t.Fatal(err)
	}
	if sb.Block != 0 || sb.Time != 1 || sb.TransactionID != 1 || sb.DataBlockSize != 128 || sb.DataBlockBytes() != 64<<10 ||
		sb.HeldRoot != 0 || sb.NeedsCheck() || sb.MetadataNrBlocks == 0 || sb.MetadataSpaceMapBlocks != sb.MetadataNrBlocks {
		t.Fatalf("superblock %+v", sb)
	}
	if _, err := r.HeldRoot(); !errors.Is(err, thinmeta.ErrNoHeldRoot) {
		t.Fatalf("HeldRoot of metadata without a snapshot: got %v, want ErrNoHeldRoot", err)
	}
}

// fn's error ends a walk and comes back as it is; so does the context's.
func TestWalkStops(t *testing.T) {
	dev := strided(0, 20000, 2, 0)
	tr := openTree(t, openReader(t, pool{1: dev, 2: {}}.restore(t)), 0)
	stop := errors.New("enough")
	for name, walk := range map[string]func(context.Context, func(extent) error) error{
		"mappings": func(ctx context.Context, fn func(extent) error) error { return tr.Mappings(ctx, 1, 0, fn) },
		"delta":    func(ctx context.Context, fn func(extent) error) error { return tr.Delta(ctx, 2, 1, 0, fn) },
	} {
		n := 0
		err := walk(context.Background(), func(extent) error {
			if n++; n == 300 {
				return stop
			}
			return nil
		})
		if err != stop || n != 300 {
			t.Errorf("%s: stopped after %d extents with %v, want after 300 with %v", name, n, err, stop)
		}
		ctx, cancel := context.WithCancel(context.Background())
		n = 0
		err = walk(ctx, func(extent) error {
			if n++; n == 300 {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) || n >= len(dev) {
			t.Errorf("%s: a cancelled walk gave %d extents and %v, want it to stop with context.Canceled", name, n, err)
		}
	}
}

// A walk of every leaf reads leaves that lie next to each other in one
// read: thin_restore writes them in order.
func TestMappingsReadAhead(t *testing.T) {
	dev := strided(0, 100000, 1, 0)
	r := openReader(t, pool{1: dev}.restore(t))
	tr := openTree(t, r, 0)
	blocks, calls := r.BlocksRead(), r.ReadCalls()
	checkExtents(t, "mappings", mappings(t, tr, 1, 0), mappedExtents(dev, 0))
	blocks, calls = r.BlocksRead()-blocks, r.ReadCalls()-calls
	leaves := uint64(100000+251) / 252
	if blocks < leaves || calls > blocks/8 {
		t.Fatalf("the walk read %d blocks in %d reads, want the %d leaves and more in reads of many blocks", blocks, calls, leaves)
	}
	t.Logf("%d blocks in %d reads", blocks, calls)
}
