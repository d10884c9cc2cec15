package thinmeta_test

import (
	"context"
	"slices"
	"testing"

	"github.com/csi-thin/csi-thin/pkg/thinmeta"
)

type extent = thinmeta.Extent

func openReader(t testing.TB, path string) *thinmeta.Reader {
	t.Helper()
	r, err := thinmeta.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func openTree(t testing.TB, r *thinmeta.Reader, block uint64) *thinmeta.Tree {
	t.Helper()
	tr, err := r.Snapshot(block)
	if err != nil {
		t.Fatalf("snapshot at %d: %v", block, err)
	}
	return tr
}

func mappings(t testing.TB, tr *thinmeta.Tree, dev uint32, start uint64) []extent {
	t.Helper()
	var out []extent
	if err := tr.Mappings(context.Background(), dev, start, func(e extent) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatalf("mappings of %d from %d: %v", dev, start, err)
	}
	return out
}

func delta(t testing.TB, tr *thinmeta.Tree, base, target uint32, start uint64) []extent {
	t.Helper()
	var out []extent
	if err := tr.Delta(context.Background(), base, target, start, func(e extent) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatalf("delta of %d and %d from %d: %v", base, target, start, err)
	}
	return out
}

// blockExtents returns the sorted blocks, those at or past start, as
// extents of consecutive blocks.
func blockExtents(blocks []uint64, start uint64) []extent {
	var out []extent
	for _, b := range blocks {
		if b < start {
			continue
		}
		if n := len(out); n > 0 && out[n-1].End() == b {
			out[n-1].Len++
			continue
		}
		out = append(out, extent{Block: b, Len: 1})
	}
	return out
}

// mappedExtents is what Mappings must give for m from start.
func mappedExtents(m map[uint64]uint64, start uint64) []extent {
	return blockExtents(sortedKeys(m), start)
}

// diffExtents is what Delta must give for a and b from start: the blocks
// mapped in one only, or to different data blocks.
func diffExtents(a, b map[uint64]uint64, start uint64) []extent {
	var diff []uint64
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			diff = append(diff, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			diff = append(diff, k)
		}
	}
	slices.Sort(diff)
	return blockExtents(diff, start)
}

// coalesce sorts extents and merges those that touch or overlap.
func coalesce(es []extent) []extent {
	es = slices.Clone(es)
	slices.SortFunc(es, func(a, b extent) int { return compareU64(a.Block, b.Block) })
	var out []extent
	for _, e := range es {
		if e.Len == 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].End() >= e.Block {
			out[n-1].Len = max(out[n-1].End(), e.End()) - out[n-1].Block
			continue
		}
		out = append(out, e)
	}
	return out
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkExtents fails the test unless got is want, and says where they
// part.
func checkExtents(t testing.TB, what string, got, want []extent) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	for i := range max(len(got), len(want)) {
		var g, w any = "none", "none"
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Fatalf("%s: %d extents, want %d; extent %d is %v, want %v", what, len(got), len(want), i, g, w)
		}
	}
}

// checkWellFormed fails the test unless es are in order, non-empty, and
// apart (each as long as it can be).
func checkWellFormed(t testing.TB, what string, es []extent) {
	t.Helper()
	for i, e := range es {
		if e.Len == 0 {
			t.Fatalf("%s: extent %d is empty", what, i)
		}
		if i > 0 && es[i-1].End() >= e.Block {
			t.Fatalf("%s: extent %d %v does not start past extent %d %v", what, i, e, i-1, es[i-1])
		}
	}
}
