package thinmeta_test

import (
	"context"
	"testing"

	"github.com/csi-thin/csi-thin/pkg/thinmeta"
)

// benchBlocks is a device of 10 GiB mapped at 64 KiB blocks.
const benchBlocks = 10 << 30 / (64 << 10)

// benchFanout fills leaves to two thirds, between what sequential inserts
// leave (half) and a full node.
const benchFanout = 168

// reportReads reports the blocks read per operation since before.
func reportReads(b *testing.B, r *thinmeta.Reader, before uint64) {
	b.ReportMetric(float64(r.BlocksRead()-before)/float64(b.N), "blocks/op")
}

// Mappings of a 10 GiB device fully mapped at 64 KiB blocks (163840
// mappings), from a metadata file read with O_DIRECT.
func BenchmarkMappings(b *testing.B) {
	w := newImageWriter(b)
	root := w.mappingTree(strided(0, benchBlocks, 1, 0), benchFanout)
	w.finish(superblock{devices: []device{{1, root}}}, 0)
	r := openReader(b, w.file())
	ctx := context.Background()
	before := r.BlocksRead()
	b.ResetTimer()
	for b.Loop() {
		tr, err := r.Snapshot(0)
		if err != nil {
			b.Fatal(err)
		}
		n := uint64(0)
		if err := tr.Mappings(ctx, 1, 0, func(e thinmeta.Extent) error { n += e.Len; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != benchBlocks {
			b.Fatalf("%d blocks mapped, want %d", n, benchBlocks)
		}
	}
	reportReads(b, r, before)
}

// Delta of a 10 GiB snapshot and its origin after writes to a tenth of
// its leaves, and of two devices with the same mappings in trees that
// share nothing (as thin_restore writes them), which must be compared
// entry by entry.
func BenchmarkDelta(b *testing.B) {
	for _, shared := range []bool{true, false} {
		name := "shared nine tenths"
		if !shared {
			name = "shared nothing"
		}
		b.Run(name, func(b *testing.B) {
			w := newImageWriter(b)
			snap := strided(0, benchBlocks, 1, 0)
			snapRoot := w.mappingTree(snap, benchFanout)
			origin := make(map[uint64]uint64, len(snap))
			for k, v := range snap {
				origin[k] = v
			}
			originRoot := snapRoot
			for k := uint64(benchFanout / 2); k < benchBlocks; k += 10 * benchFanout {
				origin[k] = 1<<20 + k
				originRoot = w.set(originRoot, k, mappingValue(origin[k], 1))
			}
			if !shared {
				originRoot = w.mappingTree(origin, benchFanout)
			}
			w.finish(superblock{devices: []device{{1, originRoot}, {2, snapRoot}}}, 0)
			want := len(diffExtents(snap, origin, 0))
			r := openReader(b, w.file())
			ctx := context.Background()
			before := r.BlocksRead()
			b.ResetTimer()
			for b.Loop() {
				tr, err := r.Snapshot(0)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				if err := tr.Delta(ctx, 2, 1, 0, func(thinmeta.Extent) error { n++; return nil }); err != nil {
					b.Fatal(err)
				}
				if n != want {
					b.Fatalf("%d extents differ, want %d", n, want)
				}
			}
			reportReads(b, r, before)
		})
	}
}
