package thinmeta_test

import (
	"math/rand/v2"
	"testing"
)

// A snapshot and its origin after writes: the origin's tree is the
// snapshot's with the paths to the written leaves copied. Delta reads
// those paths and nothing of what the two trees share, and finds what
// thin_delta finds.
func TestDeltaSkipsSharedSubtrees(t *testing.T) {
	for _, tt := range []struct {
		name       string
		mapped     int  // blocks of the snapshot
		changes    int  // writes and discards to the origin after it
		crossCheck bool // against thin_delta, which takes a while
	}{
		{"no change", 100000, 0, false},
		{"one write", 100000, 1, false},
		{"a few", 100000, 10, true},
		{"hundreds", 100000, 300, false},
		{"one leaf", 150, 3, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tt.mapped), uint64(tt.changes)))
			w := newImageWriter(t)
			snap := strided(0, uint64(tt.mapped), 1, 0)
			snapRoot := w.mappingTree(snap, 200) // leaves with room to insert, as a live pool's are
			origin, originRoot := snapshotWrites(rng, w, snap, snapRoot, tt.changes)
			w.finish(superblock{devices: []device{{1, originRoot}, {2, snapRoot}}}, 0)
			f := w.file()

			r := openReader(t, f)
			tr := openTree(t, r, 0)
			before := r.BlocksRead()
			got := delta(t, tr, 2, 1, 0)
			reads := int(r.BlocksRead() - before)
			want := diffExtents(snap, origin, 0)
			checkExtents(t, "delta", got, want)
			if tt.crossCheck {
				checkExtents(t, "thin_delta", thinDelta(t, reRestore(t, f), 2, 1), want)
			}

			// One read for the top-level tree, a single leaf, and one
			// for each node only one of the two trees has.
			unshared := w.unshared(snapRoot, originRoot)
			if reads != 1+unshared {
				t.Fatalf("delta read %d blocks, want 1 of the top-level tree and the %d nodes the trees do not share", reads, unshared)
			}
			before = r.BlocksRead()
			mappings(t, openTree(t, r, 0), 1, 0)
			t.Logf("%d differing extents: the delta read %d blocks, a walk of the origin's mappings %d",
				len(want), reads, r.BlocksRead()-before-1)
		})
	}
}

// snapshotWrites makes an origin of a snapshot with the given mappings and
// tree: n writes and discards to it, each copying the path to its leaf.
func snapshotWrites(rng *rand.Rand, w *imageWriter, snap map[uint64]uint64, snapRoot uint64, n int) (map[uint64]uint64, uint64) {
	origin := make(map[uint64]uint64, len(snap))
	for k, v := range snap {
		origin[k] = v
	}
	root := snapRoot
	space := uint64(len(snap))
	for i := range n {
		b := rng.Uint64N(space)
		if i%5 == 4 && len(origin) > 1 {
			if _, ok := origin[b]; ok && leafKeeps(w, root, b) {
				delete(origin, b)
				root = w.remove(root, b)
				continue
			}
		}
		origin[b] = 1<<19 + uint64(i)
		root = w.set(root, b, mappingValue(origin[b], 1))
	}
	return origin, root
}

// leafKeeps reports whether the leaf holding key has another key too.
func leafKeeps(w *imageWriter, root, key uint64) bool {
	n := w.read(root)
	for !n.leaf {
		i := 0
		for i+1 < len(n.keys) && n.keys[i+1] <= key {
			i++
		}
		n = w.read(leU64(n.values[i]))
	}
	return len(n.keys) > 1
}

// Two trees over mostly the same leaves whose internal nodes split the
// keys differently, and have different heights: the delta reads their
// internal nodes and the leaves they do not share, not the others.
func TestDeltaSharedLeavesSplitDifferently(t *testing.T) {
	for _, tt := range []struct {
		name                    string
		baseFanout, otherFanout int
		everyNth                int  // leaf of the other tree that is changed
		crossCheck              bool // against thin_delta
	}{
		{"same splits", 252, 252, 10, false},
		{"other splits", 252, 7, 10, true},
		{"other heights", 3, 252, 13, false},
		{"one tree deeper by a level", 40, 200, 25, false},
		{"all leaves shared", 11, 5, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newImageWriter(t)
			base := strided(0, 100000, 2, 0)
			keys, values := mappingEntries(base)
			leaves := w.leaves(keys, values, 8, 100)
			other := make(map[uint64]uint64, len(base))
			for k, v := range base {
				other[k] = v
			}
			otherLeaves := make([]ref, len(leaves))
			copy(otherLeaves, leaves)
			changed := 0
			for i := range otherLeaves {
				if tt.everyNth == 0 || i%tt.everyNth != 0 {
					continue
				}
				// Remap the leaf's middle entry, in a leaf of its own.
				k := keys[i*100+50]
				other[k] = 1<<19 + k
				otherLeaves[i].block = w.set(leaves[i].block, k, mappingValue(other[k], 1))
				changed++
			}
			baseRoot := w.levels(leaves, tt.baseFanout)
			otherRoot := w.levels(otherLeaves, tt.otherFanout)
			w.finish(superblock{devices: []device{{1, baseRoot}, {2, otherRoot}}}, 0)
			f := w.file()

			r := openReader(t, f)
			tr := openTree(t, r, 0)
			before := r.BlocksRead()
			got := delta(t, tr, 1, 2, 0)
			reads := int(r.BlocksRead() - before)
			want := diffExtents(base, other, 0)
			checkExtents(t, "delta", got, want)
			if tt.crossCheck {
				checkExtents(t, "thin_delta", thinDelta(t, reRestore(t, f), 1, 2), want)
			}

			internal := len(w.nodes(baseRoot)) + len(w.nodes(otherRoot)) - 2*len(leaves)
			if limit := 1 + internal + 2*changed; reads > limit {
				t.Fatalf("delta read %d blocks, more than the top-level leaf, the %d internal nodes of the trees and the %d leaves they do not share",
					reads, internal, 2*changed)
			}
			t.Logf("%d leaves, %d of them changed: delta read %d blocks (%d internal nodes)", len(leaves), changed, reads, internal)
		})
	}
}

func leU64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}
