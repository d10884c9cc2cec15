package thinpool_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/csi-thin/csi-thin/internal/kerneltest"
	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

const gsBlock = 4096 // the writers' unit: one O_DIRECT block, one sequence number

// gsSeqWriter writes sequence numbers round-robin across the devices:
// number k goes to device k%n at block k/n, with O_DIRECT|O_SYNC, one
// write in flight at a time, so that at any instant the numbers on the
// devices are a prefix of the sequence, give or take the write in flight.
type gsSeqWriter struct {
	files  []*os.File
	blocks int  // per device
	limit  int  // numbers that fit
	wrap   bool // go on past limit, over the blocks written: a writer that never ends
	stop   chan struct{}
	done   chan error
	mu     sync.Mutex
	wrote  int // numbers written and acknowledged
}

func gsStartSeqWriter(t testing.TB, paths []string, bytes uint64, wrap bool) *gsSeqWriter {
	t.Helper()
	w := &gsSeqWriter{blocks: int(bytes / gsBlock), limit: len(paths) * int(bytes/gsBlock), wrap: wrap,
		stop: make(chan struct{}), done: make(chan error, 1)}
	for _, p := range paths {
		f, err := os.OpenFile(p, os.O_WRONLY|unix.O_DIRECT|unix.O_SYNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		w.files = append(w.files, f)
	}
	buf, err := unix.Mmap(-1, 0, gsBlock, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE) // page-aligned
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer unix.Munmap(buf)
		n := len(w.files)
		for k := 0; k < w.limit || w.wrap; k++ {
			select {
			case <-w.stop:
				w.done <- nil
				return
			default:
			}
			binary.BigEndian.PutUint64(buf, uint64(k)+1) // 0 is a block never written
			if _, err := w.files[k%n].WriteAt(buf, int64((k/n)%w.blocks)*gsBlock); err != nil {
				w.done <- fmt.Errorf("write %d: %w", k, err)
				return
			}
			w.mu.Lock()
			w.wrote = k + 1
			w.mu.Unlock()
		}
		w.done <- nil
	}()
	return w
}

func (w *gsSeqWriter) written() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.wrote
}

func (w *gsSeqWriter) finish(t testing.TB) {
	t.Helper()
	close(w.stop)
	if err := <-w.done; err != nil {
		t.Fatal(err)
	}
}

// gsLastSeq reads a snapshot's blocks from the start and returns how many
// hold the numbers they should (k/n == block, k%n == member), and the
// first block that holds another number than it should, or -1.
func gsLastSeq(t testing.TB, path string, member, n int, blocks int) (count int, wrong int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, gsBlock, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	ended := false
	for b := 0; b < blocks; b++ {
		if _, err := f.ReadAt(buf, int64(b)*gsBlock); err != nil {
			t.Fatal(err)
		}
		got := binary.BigEndian.Uint64(buf)
		switch want := uint64(b*n+member) + 1; {
		case got == 0:
			ended = true
		case got != want || ended:
			return count, b
		default:
			count++
		}
	}
	return count, -1
}

// A group snapshot of volumes under one writer that writes sequence
// numbers round-robin across them shows a prefix of the sequence: every
// number up to the last one any member holds is on its member, so no
// member is ahead of another by more than the write in flight.
func TestGroupSnapshotIsConsistentUnderWriters(t *testing.T) {
	const members, volBytes = 4, 16 * ekMiB
	cfg := ekLoopConfig(t, 512*ekMiB)
	e := ekOpen(t, cfg)
	var vols []*thinpool.Volume
	var paths []string
	for i := 0; i < members; i++ {
		v := ekCreate(t, e, fmt.Sprint("v", i), volBytes)
		vols = append(vols, v)
		paths = append(paths, ekActivate(t, e, v))
	}
	ids := make([]string, len(vols))
	for i, v := range vols {
		ids[i] = v.ID
	}
	for round := 0; round < 5; round++ {
		for _, p := range paths { // every round starts from zeroes
			ekWriteDevice(t, p, 0, make([]byte, volBytes))
		}
		w := gsStartSeqWriter(t, paths, volBytes, false)
		for w.written() < (round+1)*members*8 { // let it get going; the numbers say when, not the clock
			runtime.Gosched()
		}
		g, err := e.CreateGroupSnapshot(t.Context(), fmt.Sprint("g", round), ids, nil)
		before := w.written()
		w.finish(t)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		total, maxSeq := 0, -1
		counts := make([]int, members)
		for i, m := range g.Members {
			p := ekActivate(t, e, m)
			c, wrong := gsLastSeq(t, p, i, members, int(volBytes/gsBlock))
			if wrong >= 0 {
				t.Errorf("round %d: member %d (of %s) holds a wrong number at block %d", round, i, m.SourceID, wrong)
			}
			counts[i] = c
			total += c
			if c > 0 {
				maxSeq = max(maxSeq, (c-1)*members+i)
			}
			ekDeactivate(t, e, m)
		}
		// A prefix of the sequence holds maxSeq+1 numbers.
		if total != maxSeq+1 {
			t.Errorf("round %d: the members hold %d numbers (%v per member), but the last is number %d: not a prefix of the sequence",
				round, total, counts, maxSeq)
		}
		if total == 0 || total > before+1 {
			t.Errorf("round %d: the members hold %d numbers; the writer had %d acknowledged when the group returned", round, total, before)
		}
		if err := e.DeleteGroupSnapshot(t.Context(), g.ID); err != nil {
			t.Fatal(err)
		}
	}
	if st := e.GroupSnapshotStats(); st.Created != 5 || st.Suspends != 5 {
		t.Errorf("stats after 5 groups: %+v", st)
	}
}

// A window that passes its deadline (the engine's clock skewed past it at
// each stage) undoes the group: no snapshot, no device suspended, no
// filesystem frozen, and the volumes take writes.
func TestGroupSnapshotDeadlineAborts(t *testing.T) {
	for _, stage := range []string{"frozen", "suspended", "created"} {
		t.Run(stage, func(t *testing.T) {
			cfg := ekLoopConfig(t, 256*ekMiB)
			cfg.GroupSnapshotTimeout = time.Second
			e := ekOpen(t, cfg)
			ctl := ekControl(t)
			a, b := ekCreate(t, e, "a", 32*ekMiB), ekCreate(t, e, "b", 32*ekMiB)
			mnt := ekMkfsMount(t, ekActivate(t, e, a))
			pb := ekActivate(t, e, b)
			thinpool.SkewGroupClock(t, e, stage, time.Hour)
			_, err := e.CreateGroupSnapshot(t.Context(), "g", []string{a.ID, b.ID}, nil)
			if !errors.Is(err, thinpool.ErrGroupDeadline) {
				t.Fatalf("got %v, want ErrGroupDeadline", err)
			}
			if snaps, _, _ := e.List(thinpool.KindSnapshot, "", 0); len(snaps) != 0 {
				t.Errorf("%d snapshots after the abort", len(snaps))
			}
			for _, v := range []*thinpool.Volume{a, b} {
				if info, err := ctl.Info(cfg.PoolName + "-" + v.ID); err != nil || info.Suspended {
					t.Errorf("%s after the abort: %+v, %v; want resumed", v.Name, info, err)
				}
			}
			if err := dm.Thaw(mnt); !errors.Is(err, unix.EINVAL) {
				t.Errorf("thaw of %s after the abort: %v, want EINVAL (not frozen)", mnt, err)
			}
			if err := os.WriteFile(mnt+"/after", []byte("x"), 0o600); err != nil {
				t.Errorf("write to the filesystem after the abort: %v", err)
			}
			ekWriteDevice(t, pb, 0, ekPattern(1, gsBlock))
			if st := e.GroupSnapshotStats(); st.Aborted != 1 {
				t.Errorf("stats: %+v, want one aborted", st)
			}
			ekCheckPromised(t, e)
		})
	}
}

// A group of mounted filesystems freezes and thaws them: the snapshot of
// each mounts clean (ext4 needs no journal replay, so it mounts read-only
// with noload) and holds the file written before the group.
func TestGroupSnapshotOfMountedFilesystems(t *testing.T) {
	cfg := ekLoopConfig(t, 256*ekMiB)
	e := ekOpen(t, cfg)
	var ids []string
	var mnts []string
	for i := 0; i < 3; i++ {
		v := ekCreate(t, e, fmt.Sprint("v", i), 32*ekMiB)
		mnt := ekMkfsMount(t, ekActivate(t, e, v))
		if err := os.WriteFile(mnt+"/f", []byte(v.ID), 0o600); err != nil {
			t.Fatal(err)
		}
		ids, mnts = append(ids, v.ID), append(mnts, mnt)
	}
	g, err := e.CreateGroupSnapshot(t.Context(), "g", ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range g.Members {
		if err := dm.Thaw(mnts[i]); !errors.Is(err, unix.EINVAL) {
			t.Errorf("thaw of %s after the group: %v, want EINVAL (thawed already)", mnts[i], err)
		}
		dir := ekMount(t, ekActivate(t, e, m), unix.MS_RDONLY)
		got, err := os.ReadFile(dir + "/f")
		if err != nil || string(got) != ids[i] {
			t.Errorf("member %d: %q, %v; want %q", i, got, err, ids[i])
		}
		ekUnmount(t, dir)
		ekDeactivate(t, e, m)
	}
	if err := e.Delete(t.Context(), g.SnapshotIDs[0]); !errors.Is(err, thinpool.ErrInvalidArgument) {
		t.Errorf("delete of a member alone: %v, want ErrInvalidArgument", err)
	}
	if err := e.DeleteGroupSnapshot(t.Context(), g.ID); err != nil {
		t.Fatal(err)
	}
	ekCheckPromised(t, e)
}

// BenchmarkGroupSnapshotSuspend measures the suspend window (first
// suspend to last resume) of groups of 2, 8 and 32 active volumes, each
// under a writer, and reports its p50 and p99.
func BenchmarkGroupSnapshotSuspend(b *testing.B) {
	if os.Getenv("CSI_THIN_BENCH_GROUPS") == "" {
		b.Skip("takes minutes: run with CSI_THIN_BENCH_GROUPS=1 (make bench-group-snapshots)")
	}
	for _, n := range []int{2, 8, 32} {
		b.Run(fmt.Sprint(n, "-volumes"), func(b *testing.B) {
			// On disk: 32 writers and their snapshots' copies outgrow the
			// test kernel's tmpfs.
			cfg := thinpool.Config{StateDir: kerneltest.ScratchDir(b), PoolName: ekPoolName(b), PoolSizeBytes: 4 * ekGiB}
			ekCleanupPool(b, cfg)
			e := ekOpen(b, cfg)
			var ids, paths []string
			for i := 0; i < n; i++ {
				v := ekCreate(b, e, fmt.Sprint("v", i), 16*ekMiB)
				ids, paths = append(ids, v.ID), append(paths, ekActivate(b, e, v))
			}
			var writers []*gsSeqWriter
			for _, p := range paths {
				writers = append(writers, gsStartSeqWriter(b, []string{p}, 16*ekMiB, true))
			}
			windows := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				g, err := e.CreateGroupSnapshot(b.Context(), fmt.Sprint("g", i), ids, nil)
				if err != nil {
					b.Fatal(err)
				}
				windows = append(windows, e.GroupSnapshotStats().LastSuspend)
				b.StopTimer()
				if err := e.DeleteGroupSnapshot(b.Context(), g.ID); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			for _, w := range writers {
				w.finish(b)
			}
			slices.Sort(windows)
			pct := func(p float64) float64 { return float64(windows[int(p*float64(len(windows)-1))].Microseconds()) }
			b.ReportMetric(pct(0.5), "suspend-p50-µs")
			b.ReportMetric(pct(0.99), "suspend-p99-µs")
		})
	}
}
