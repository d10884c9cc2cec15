package thinmeta_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

// derive returns a copy of base with n random changes: blocks remapped to
// new data blocks (written after a snapshot), unmapped (discarded), and
// newly mapped, some next to each other.
func derive(rng *rand.Rand, base map[uint64]uint64, n int, space uint64) map[uint64]uint64 {
	m := maps.Clone(base)
	keys := sortedKeys(base)
	for range n {
		switch rng.IntN(4) {
		case 0: // a write over a mapped block
			if len(keys) > 0 {
				m[keys[rng.IntN(len(keys))]] = 1<<20 + rng.Uint64N(1<<20)
			}
		case 1: // a discard
			if len(keys) > 0 {
				delete(m, keys[rng.IntN(len(keys))])
			}
		case 2: // a write to an unmapped block
			m[rng.Uint64N(space)] = 1<<20 + rng.Uint64N(1<<20)
		case 3: // a run of writes
			b, l := rng.Uint64N(space), rng.Uint64N(40)
			for i := range l {
				m[b+i] = 1<<20 + rng.Uint64N(1<<20)
			}
		}
	}
	return m
}

// deltaCases are pairs of devices to compare, base and target.
var deltaCases = []struct {
	name         string
	base, target map[uint64]uint64
}{
	{"both empty", map[uint64]uint64{}, map[uint64]uint64{}},
	{"base empty", map[uint64]uint64{}, run(map[uint64]uint64{}, 10, 400, 0)},
	{"target empty", strided(0, 1000, 3, 0), map[uint64]uint64{}},
	{"the same", strided(0, 10000, 2, 0), strided(0, 10000, 2, 0)},
	{"same blocks, other data blocks", strided(0, 3000, 1, 0), strided(0, 3000, 1, 1)},
	{"interleaved", strided(0, 5000, 2, 0), strided(1, 5000, 2, 0)},
	{"disjoint", run(map[uint64]uint64{}, 0, 1000, 0), run(map[uint64]uint64{}, 5000, 1000, 0)},
	{"one remapped block", strided(0, 10000, 1, 0), run(strided(0, 10000, 1, 0), 7777, 1, 99999)},
	{"tail unmapped", run(map[uint64]uint64{}, 0, 2000, 0), run(map[uint64]uint64{}, 0, 1500, 0)},
	{"far apart", map[uint64]uint64{0: 1, 1 << 40: 2}, map[uint64]uint64{0: 1, 1<<40 + 1: 2}},
}

// Delta gives what the mappings say differs, and what thin_delta says.
func TestDelta(t *testing.T) {
	p := pool{}
	for i, tt := range deltaCases {
		p[uint32(2*i+1)], p[uint32(2*i+2)] = tt.base, tt.target
	}
	f := p.restore(t)
	tr := openTree(t, openReader(t, f), 0)
	for i, tt := range deltaCases {
		base, target := uint32(2*i+1), uint32(2*i+2)
		t.Run(tt.name, func(t *testing.T) {
			ref := thinDelta(t, f, base, target)
			checkExtents(t, "thin_delta against the mappings", ref, diffExtents(tt.base, tt.target, 0))
			for _, start := range append(starts(tt.base), starts(tt.target)...) {
				want := diffExtents(tt.base, tt.target, start)
				got := delta(t, tr, base, target, start)
				checkWellFormed(t, "delta", got)
				checkExtents(t, fmt.Sprintf("delta from %d", start), got, want)
			}
			checkExtents(t, "delta the other way", delta(t, tr, target, base, 0), diffExtents(tt.base, tt.target, 0))
			checkExtents(t, "delta with itself", delta(t, tr, target, target, 0), nil)
		})
	}
}

// Random devices and random changes to them: Delta covers exactly the
// blocks that differ, as thin_delta does.
func TestDeltaRandom(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			space := 1000 + rng.Uint64N(100000)
			base := randomDevice(rng, rng.IntN(int(space/2)), space)
			target := derive(rng, base, rng.IntN(2000), space)
			f := pool{1: base, 2: target}.restore(t)
			tr := openTree(t, openReader(t, f), 0)
			want := diffExtents(base, target, 0)
			checkExtents(t, "thin_delta against the mappings", thinDelta(t, f, 1, 2), want)
			checkExtents(t, "delta", delta(t, tr, 1, 2, 0), want)
			start := rng.Uint64N(space)
			checkExtents(t, fmt.Sprint("delta from ", start), delta(t, tr, 1, 2, start), diffExtents(base, target, start))
			t.Logf("%d and %d mappings over %d blocks: %d extents differ", len(base), len(target), space, len(want))
		})
	}
}
