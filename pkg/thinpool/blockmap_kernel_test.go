package thinpool_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// bmBlocks is the set of pool blocks a block map names.
type bmBlocks map[uint64]bool

func (s bmBlocks) sorted() []uint64 {
	var out []uint64
	for b := range s {
		out = append(out, b)
	}
	slices.Sort(out)
	return out
}

// bmCollect gathers what a block map read streams, checking that its
// extents come in order, do not overlap and start at or after start.
func bmCollect(t testing.TB, start uint64, read func(fn func(thinpool.Extent) error) error) bmBlocks {
	t.Helper()
	got := bmBlocks{}
	next := start
	err := read(func(x thinpool.Extent) error {
		if x.Len == 0 || x.Block < next {
			return fmt.Errorf("extent %+v: empty, out of order or before %d", x, next)
		}
		for b := x.Block; b < x.End(); b++ {
			got[b] = true
		}
		next = x.End()
		return nil
	})
	if err != nil {
		t.Fatalf("read block map: %v", err)
	}
	return got
}

func bmAllocated(t testing.TB, e *thinpool.Engine, id string, start uint64) bmBlocks {
	t.Helper()
	return bmCollect(t, start, func(fn func(thinpool.Extent) error) error { return e.Allocated(t.Context(), id, start, fn) })
}

func bmDelta(t testing.TB, e *thinpool.Engine, base, target string, start uint64) bmBlocks {
	t.Helper()
	return bmCollect(t, start, func(fn func(thinpool.Extent) error) error { return e.Delta(t.Context(), base, target, start, fn) })
}

// bmCheck asserts what a user of the block maps depends on: every block
// of a that holds anything but zeros is allocated, and every block whose
// content differs between a and b (a the older) is in their delta. It
// reads the two a block at a time, from fresh read-only devices.
func bmCheck(t testing.TB, e *thinpool.Engine, a, b *thinpool.Volume) (allocated, delta bmBlocks) {
	t.Helper()
	allocated = bmAllocated(t, e, a.ID, 0)
	delta = bmDelta(t, e, a.ID, b.ID, 0)
	block := int64(e.BlockSizeBytes())
	fa, fb := bmOpen(t, e, a), bmOpen(t, e, b)
	pa, pb, zero := make([]byte, block), make([]byte, block), make([]byte, block)
	for i := int64(0); i*block < int64(a.SizeBytes); i++ {
		if _, err := fa.ReadAt(pa, i*block); err != nil {
			t.Fatal(err)
		}
		if _, err := fb.ReadAt(pb, i*block); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pa, zero) && !allocated[uint64(i)] {
			t.Fatalf("block %d of %s holds data and is not in its allocated map", i, a.Name)
		}
		if !bytes.Equal(pa, pb) && !delta[uint64(i)] {
			t.Fatalf("block %d differs between %s and %s and is not in their delta", i, a.Name, b.Name)
		}
	}
	return allocated, delta
}

// bmOpen activates snapshot s read-only and opens it until the test ends.
func bmOpen(t testing.TB, e *thinpool.Engine, s *thinpool.Volume) *os.File {
	t.Helper()
	f, err := os.Open(ekActivate(t, e, s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		ekDeactivate(t, e, s)
	})
	return f
}

// bmWriteRandom writes n random runs of 4 KiB pages into the device at
// path and returns the pool blocks written.
func bmWriteRandom(t testing.TB, path string, r *rand.Rand, n int, size, block uint64) bmBlocks {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	written := bmBlocks{}
	for range n {
		pages := 1 + r.Uint64N(32)
		off := r.Uint64N(size/4096-pages) * 4096
		if _, err := f.WriteAt(ekPattern(byte(r.Uint32()), int(pages*4096)), int64(off)); err != nil {
			t.Fatal(err)
		}
		for b := off / block; b <= (off+pages*4096-1)/block; b++ {
			written[b] = true
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	return written
}

// TestEngineBlockMaps: random writes between snapshots of a block
// volume; the allocated map of a snapshot is exactly the blocks written
// before it, the delta of two exactly the blocks written between them,
// from any starting block, and both still after the source volume is
// deleted and for snapshots of a volume restored from one. No metadata
// snapshot stays held.
func TestEngineBlockMaps(t *testing.T) {
	ekEachKind(t, func(t *testing.T, cfg thinpool.Config) {
		e := ekOpen(t, cfg)
		ctl := ekControl(t)
		const size = 64 * ekMiB
		block := e.BlockSizeBytes()
		r := rand.New(rand.NewPCG(1, 2))
		v := ekCreate(t, e, "cbt", size)
		dev := ekActivate(t, e, v)
		first := bmWriteRandom(t, dev, r, 60, size, block)
		s1 := ekSnapshot(t, e, "cbt-1", v.ID)
		second := bmWriteRandom(t, dev, r, 30, size, block)
		s2 := ekSnapshot(t, e, "cbt-2", v.ID)
		ekDeactivate(t, e, v)

		allocated, delta := bmCheck(t, e, s1, s2)
		if !slices.Equal(allocated.sorted(), first.sorted()) {
			t.Errorf("allocated map of the first snapshot: %v, want the blocks written before it %v", allocated.sorted(), first.sorted())
		}
		if !slices.Equal(delta.sorted(), second.sorted()) {
			t.Errorf("delta: %v, want the blocks written between the snapshots %v", delta.sorted(), second.sorted())
		}
		for _, start := range []uint64{1, 100, size/block - 1, size / block} {
			want := bmBlocks{}
			for b := range second {
				if b >= start {
					want[b] = true
				}
			}
			if got := bmDelta(t, e, s1.ID, s2.ID, start); !slices.Equal(got.sorted(), want.sorted()) {
				t.Errorf("delta from block %d: %v, want %v", start, got.sorted(), want.sorted())
			}
		}
		if st := ekStatus(t, ctl, cfg.PoolName); st.HasHeldMetadataRoot {
			t.Errorf("the pool still holds a metadata snapshot (root %d) after the reads", st.HeldMetadataRoot)
		}

		ekDelete(t, e, v)
		if got := bmDelta(t, e, s1.ID, s2.ID, 0); !slices.Equal(got.sorted(), second.sorted()) {
			t.Errorf("delta after the source volume was deleted: %v, want %v", got.sorted(), second.sorted())
		}

		restored, err := e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: "cbt-restored", RequiredBytes: size, SourceID: s2.ID, SourceKind: thinpool.KindSnapshot})
		if err != nil {
			t.Fatal(err)
		}
		rs1 := ekSnapshot(t, e, "cbt-restored-1", restored.ID)
		dev = ekActivate(t, e, restored)
		third := bmWriteRandom(t, dev, r, 20, size, block)
		ekDeactivate(t, e, restored)
		rs2 := ekSnapshot(t, e, "cbt-restored-2", restored.ID)
		if _, delta := bmCheck(t, e, rs1, rs2); !slices.Equal(delta.sorted(), third.sorted()) {
			t.Errorf("delta of the restored volume's snapshots: %v, want %v", delta.sorted(), third.sorted())
		}
		want := bmBlocks{}
		for _, s := range []bmBlocks{first, second} {
			for b := range s {
				want[b] = true
			}
		}
		if got := bmAllocated(t, e, rs1.ID, 0); !slices.Equal(got.sorted(), want.sorted()) {
			t.Errorf("allocated map of a snapshot of the restore: %v, want its source's %v", got.sorted(), want.sorted())
		}
	})
}

// TestEngineBlockMapsOfFilesystems: files written and removed on ext4 and
// xfs between two snapshots; every block that differs is in the delta and
// every block with data is allocated.
func TestEngineBlockMapsOfFilesystems(t *testing.T) {
	for _, fs := range []string{"ext4", "xfs"} {
		t.Run(fs, func(t *testing.T) {
			cfg := ekLoopConfig(t, 1024*ekMiB)
			e := ekOpen(t, cfg)
			const size = 320 * ekMiB
			v := ekCreate(t, e, "fs", size)
			dev := ekActivate(t, e, v)
			if out, err := exec.Command("mkfs."+fs, map[string]string{"ext4": "-qF", "xfs": "-qf"}[fs], dev).CombinedOutput(); err != nil {
				t.Fatalf("mkfs.%s: %v: %s", fs, err, out)
			}
			dir := t.TempDir()
			if err := unix.Mount(dev, dir, fs, 0, ""); err != nil {
				t.Fatal(err)
			}
			mounted := true
			t.Cleanup(func() {
				if mounted {
					unix.Unmount(dir, 0)
				}
			})
			r := rand.New(rand.NewPCG(3, 4))
			writeFiles := func(prefix string, n int) {
				for i := range n {
					data := ekPattern(byte(r.Uint32()), int(4096*(1+r.Uint64N(64))))
					if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d", prefix, i)), data, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				unix.Sync()
			}
			writeFiles("a", 40)
			s1 := ekSnapshot(t, e, "fs-1", v.ID) // the engine freezes the mounted origin for it
			writeFiles("b", 20)
			for i := range 10 {
				os.Remove(filepath.Join(dir, fmt.Sprintf("a-%d", i)))
			}
			unix.Sync()
			s2 := ekSnapshot(t, e, "fs-2", v.ID)
			if err := unix.Unmount(dir, 0); err != nil {
				t.Fatal(err)
			}
			mounted = false
			ekDeactivate(t, e, v)
			allocated, delta := bmCheck(t, e, s1, s2)
			t.Logf("%s: %d blocks allocated in the first snapshot, %d in the delta", fs, len(allocated), len(delta))
		})
	}
}

// TestEngineBlockMapLease: readers share one metadata snapshot, the last
// one out releases it; a reader of a snapshot cut after the lease was
// taken waits for the lease to drain and reads it from a fresh one; a
// metadata snapshot left held by a crash is released at start.
func TestEngineBlockMapLease(t *testing.T) {
	cfg := ekLoopConfig(t, 256*ekMiB)
	e := ekOpen(t, cfg)
	ctl := ekControl(t)
	v := ekCreate(t, e, "lease", 16*ekMiB)
	ekWrite(t, e, v, 0, ekPattern(1, ekMiB))
	s1 := ekSnapshot(t, e, "lease-1", v.ID)

	// A reader that stops in its first extent holds the lease.
	inside, resume := make(chan struct{}), make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		first := true
		holder <- e.Allocated(context.Background(), s1.ID, 0, func(thinpool.Extent) error {
			if first {
				first = false
				close(inside)
				<-resume
			}
			return nil
		})
	}()
	<-inside
	if st := ekStatus(t, ctl, cfg.PoolName); !st.HasHeldMetadataRoot {
		t.Fatal("no metadata snapshot held while a reader reads")
	}
	// A second reader of the same snapshot shares it and finishes.
	if got := bmAllocated(t, e, s1.ID, 0); len(got) != int(ekMiB/e.BlockSizeBytes()) {
		t.Errorf("a reader sharing the lease read %d blocks, want %d", len(got), ekMiB/e.BlockSizeBytes())
	}
	if st := ekStatus(t, ctl, cfg.PoolName); !st.HasHeldMetadataRoot {
		t.Fatal("the second reader released the metadata snapshot the first still reads")
	}
	// A snapshot cut now is not in the held metadata snapshot.
	ekWrite(t, e, v, 4*ekMiB, ekPattern(2, ekMiB))
	s2 := ekSnapshot(t, e, "lease-2", v.ID)
	later := make(chan int, 1)
	go func() {
		n := 0
		err := e.Allocated(context.Background(), s2.ID, 0, func(x thinpool.Extent) error { n += int(x.Len); return nil })
		if err != nil {
			n = -1
		}
		later <- n
	}()
	select {
	case <-later:
		t.Fatal("a reader of a snapshot newer than the held metadata snapshot did not wait for it to drain")
	default:
	}
	close(resume)
	if err := <-holder; err != nil {
		t.Fatal(err)
	}
	if got := <-later; got != int(2*ekMiB/e.BlockSizeBytes()) {
		t.Errorf("the newer snapshot has %d blocks allocated (-1: the read failed), want %d", got, 2*ekMiB/e.BlockSizeBytes())
	}
	if st := ekStatus(t, ctl, cfg.PoolName); st.HasHeldMetadataRoot {
		t.Fatal("the metadata snapshot stays held after every reader finished")
	}

	// A crash with a metadata snapshot held.
	if err := ctl.ReserveMetadataSnap(cfg.PoolName); err != nil {
		t.Fatal(err)
	}
	ekClose(t, e)
	e = ekOpen(t, cfg)
	if st := ekStatus(t, ctl, cfg.PoolName); st.HasHeldMetadataRoot {
		t.Fatal("the metadata snapshot left held is still held after a restart")
	}
	if got := bmAllocated(t, e, s2.ID, 0); len(got) != int(2*ekMiB/e.BlockSizeBytes()) {
		t.Errorf("after the restart the snapshot has %d blocks allocated, want %d", len(got), 2*ekMiB/e.BlockSizeBytes())
	}
}
