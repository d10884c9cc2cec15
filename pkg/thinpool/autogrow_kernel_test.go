package thinpool_test

// Auto-grow in the real kernel: writers at full speed fill volumes on a
// small loopback pool with a maximum size, in both no-space modes; the
// pool's low water event grows it before it fills. Helpers are prefixed
// ag.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/csi-thin/csi-thin/internal/kerneltest"
	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// agChunk is the writers' unit: one O_DIRECT write.
const agChunk = 1 << 20

// agConfig is a loopback pool of size bytes that grows up to maxSize, in
// a directory on disk: the writers write more than the kernel's memory.
func agConfig(t testing.TB, size, maxSize uint64, errorIfNoSpace bool) thinpool.Config {
	t.Helper()
	kerneltest.Require(t)
	cfg := thinpool.Config{
		StateDir: kerneltest.ScratchDir(t), PoolName: ekPoolName(t),
		PoolSizeBytes: size, MaxSizeBytes: maxSize, ErrorIfNoSpace: errorIfNoSpace,
	}
	ekCleanupPool(t, cfg)
	return cfg
}

// agChunkData is chunk i of a writer's data: a pattern of the writer's
// seed with the chunk's number at its start.
func agChunkData(seed byte, i int, buf []byte) {
	copy(buf, kerneltest.Pattern(seed+byte(i%16), len(buf)))
	binary.LittleEndian.PutUint64(buf, uint64(i))
}

// agResult is what one writer did.
type agResult struct {
	bytes   int64
	elapsed time.Duration
	slowest time.Duration // the longest single write
	err     error
}

// agWrite writes size bytes to a device node as fast as it goes, like dd
// with oflag=direct bs=1M, then fsyncs.
func agWrite(path string, size int64, seed byte) agResult {
	var r agResult
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		r.err = fmt.Errorf("open %s: %w", path, err)
		return r
	}
	defer unix.Close(fd)
	// O_DIRECT wants an aligned buffer: a mapping is page-aligned.
	buf, err := unix.Mmap(-1, 0, agChunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		r.err = err
		return r
	}
	defer unix.Munmap(buf)
	patterns := make([][]byte, 16)
	for i := range patterns {
		patterns[i] = make([]byte, agChunk)
		agChunkData(seed, i, patterns[i])
	}
	start := time.Now()
	for i := 0; int64(i)*agChunk < size; i++ {
		copy(buf, patterns[i%16])
		binary.LittleEndian.PutUint64(buf, uint64(i))
		began := time.Now()
		if _, err := unix.Pwrite(fd, buf, int64(i)*agChunk); err != nil {
			r.err = fmt.Errorf("write %s at %d MiB: %w", path, i, err)
			break
		}
		r.slowest = max(r.slowest, time.Since(began))
		r.bytes += agChunk
	}
	if r.err == nil {
		if err := unix.Fsync(fd); err != nil {
			r.err = fmt.Errorf("fsync %s: %w", path, err)
		}
	}
	r.elapsed = time.Since(start)
	return r
}

// agNoSpaceTimeout is how long the kernel queues a write that finds the
// pool full before failing it (dm-thin-pool's no_space_timeout, seconds).
func agNoSpaceTimeout(t testing.TB) time.Duration {
	t.Helper()
	b, err := os.ReadFile("/sys/module/dm_thin_pool/parameters/no_space_timeout")
	if err != nil {
		t.Fatalf("read the kernel's no_space_timeout: %v", err)
	}
	var s int
	if _, err := fmt.Sscan(string(b), &s); err != nil {
		t.Fatalf("no_space_timeout %q: %v", b, err)
	}
	return time.Duration(s) * time.Second
}

// agCheck reads back chunks of what a writer wrote.
func agCheck(t testing.TB, path string, size int64, seed byte) {
	t.Helper()
	n := int(size / agChunk)
	want := make([]byte, agChunk)
	for _, i := range []int{0, 1, n / 2, n - 2, n - 1} {
		agChunkData(seed, i, want)
		if got := ekReadDevice(t, path, int64(i)*agChunk, agChunk); !bytes.Equal(got, want) {
			t.Fatalf("%s: MiB %d does not read back what was written", path, i)
		}
	}
}

// Writers at full speed fill volumes on a 128 MiB loopback pool that may
// grow to 1 GiB, with 896 MiB in all: the pool's low water event grows it
// step by step, and no write fails, whether the pool is configured with
// error_if_no_space or to queue. A pool that may still grow queues the
// writes that find it full for the moment a grow takes (they would fail
// after the kernel's no_space_timeout, 60 s by default: the slowest write
// is logged); once at its maximum, a pool configured with
// error_if_no_space has it in its table. The pool stays within its
// maximum, its metadata never runs short, and every writer's data reads
// back.
func TestEngineAutoGrow(t *testing.T) {
	const (
		poolBytes = 128 * ekMiB
		maxBytes  = 1 * ekGiB
		written   = 896 * ekMiB
	)
	for _, tc := range []struct {
		name           string
		errorIfNoSpace bool
		writers        int
	}{
		{"error_if_no_space/1-writer", true, 1},
		{"error_if_no_space/4-writers", true, 4},
		{"queue_if_no_space/4-writers", false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := agConfig(t, poolBytes, maxBytes, tc.errorIfNoSpace)
			ctl := ekControl(t)
			e := ekOpen(t, cfg)
			per := int64(written / tc.writers)
			nodes := make([]string, tc.writers)
			for i := range nodes {
				v := ekCreate(t, e, fmt.Sprintf("w%d", i), uint64(per))
				nodes[i] = ekActivate(t, e, v)
			}
			results := make([]agResult, tc.writers)
			var wg sync.WaitGroup
			start := time.Now()
			for i := range nodes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = agWrite(nodes[i], per, byte(10*i))
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			timeout := agNoSpaceTimeout(t)
			var slowest time.Duration
			for i, r := range results {
				if r.err != nil {
					t.Errorf("writer %d failed after %d MiB: %v", i, r.bytes/ekMiB, r.err)
				}
				slowest = max(slowest, r.slowest)
				t.Logf("writer %d: %d MiB in %v, %.0f MiB/s, slowest write %v",
					i, r.bytes/ekMiB, r.elapsed.Round(time.Millisecond), float64(r.bytes)/ekMiB/r.elapsed.Seconds(), r.slowest.Round(time.Millisecond))
			}
			if t.Failed() {
				t.FailNow()
			}
			st := ekStatus(t, ctl, cfg.PoolName)
			gs := e.GrowStats()
			t.Logf("the slowest write waited %v; the kernel fails a write queued for no_space_timeout, %v", slowest.Round(time.Millisecond), timeout)
			t.Logf("%d writers filled %d MiB in %v (%.0f MiB/s in all; slowest write %v); pool %d -> %d MiB in %d auto-grows, "+
				"event to grown pool %v at most, %v the last; metadata %d of %d KiB used",
				tc.writers, written/ekMiB, elapsed.Round(time.Millisecond), float64(written)/ekMiB/elapsed.Seconds(), slowest.Round(time.Millisecond),
				poolBytes/ekMiB, st.DataTotal*thinpool.DefaultBlockSizeBytes/ekMiB, gs.Grows["auto"],
				gs.MaxLatency.Round(time.Microsecond), gs.LastLatency.Round(time.Microsecond),
				st.MetadataUsed*4, st.MetadataTotal*4)
			if got := st.DataTotal * thinpool.DefaultBlockSizeBytes; got > maxBytes || got < written {
				t.Fatalf("the pool has %d bytes after %d were written: want at least that, at most the maximum %d", got, uint64(written), uint64(maxBytes))
			}
			if gs.Grows["auto"] == 0 {
				t.Fatalf("grow stats %+v: no auto-grow counted", gs)
			}
			if st.DataTotal*thinpool.DefaultBlockSizeBytes == maxBytes && st.ErrorIfNoSpace != tc.errorIfNoSpace {
				t.Fatalf("the pool at its maximum has error_if_no_space %v, configured %v", st.ErrorIfNoSpace, tc.errorIfNoSpace)
			}
			if st.Mode != dm.PoolModeReadWrite || st.MetadataUsed >= st.MetadataTotal {
				t.Fatalf("pool status %+v after the writes: want rw with metadata to spare", st)
			}
			for i, node := range nodes {
				agCheck(t, node, per, byte(10*i))
			}
		})
	}
}

// Auto-grow stops with the engine: a closed engine's waiter does not grow
// the pool when a writer crosses the low water mark, and the next engine
// to open finds the pool short of space and grows it at start. The pool
// never grows past its maximum: at it, the writes that do not fit fail at
// once (error_if_no_space) and the refusal is counted.
func TestEngineAutoGrowStartStopAndMaximum(t *testing.T) {
	const poolBytes = 64 * ekMiB
	cfg := agConfig(t, poolBytes, 96*ekMiB, true)
	ctl := ekControl(t)
	e := ekOpen(t, cfg)
	v := ekCreate(t, e, "v", 128*ekMiB)
	node := ekActivate(t, e, v)
	ekClose(t, e)

	// The volume stays active; the low water mark is 20% of 64 MiB free.
	before, err := ctl.Info(cfg.PoolName)
	if err != nil {
		t.Fatal(err)
	}
	if r := agWrite(node, 56*ekMiB, 1); r.err != nil {
		t.Fatal(r.err)
	}
	// The writes raised the low water event, which nothing acted on.
	after, err := ctl.WaitEvent(cfg.PoolName, before.EventNr)
	if err != nil {
		t.Fatal(err)
	}
	if st := ekStatus(t, ctl, cfg.PoolName); st.DataTotal*thinpool.DefaultBlockSizeBytes != poolBytes {
		t.Fatalf("a closed engine grew the pool to %d blocks (event %d)", st.DataTotal, after.EventNr)
	}

	e = ekOpen(t, cfg)
	if st := ekStatus(t, ctl, cfg.PoolName); st.DataTotal*thinpool.DefaultBlockSizeBytes <= poolBytes {
		t.Fatalf("the pool was short of space at start and did not grow: %+v", st)
	}
	r := agWrite(node, 128*ekMiB, 1)
	if r.err == nil {
		t.Fatalf("128 MiB of writes fit in a pool of at most 96 MiB")
	}
	t.Logf("writes past the maximum: %v", r.err)
	st := ekStatus(t, ctl, cfg.PoolName)
	if got := st.DataTotal * thinpool.DefaultBlockSizeBytes; got != 96*ekMiB {
		t.Fatalf("the pool has %d bytes, want its maximum %d", got, 96*ekMiB)
	}
	if gs := e.GrowStats(); gs.Refused == 0 {
		t.Fatalf("grow stats %+v: the refusals at the maximum are not counted", gs)
	}
}

// agWatchers counts the engines' event watcher goroutines: the goroutines
// the engine starts, all of them watchers, whether or not they have run
// yet.
func agWatchers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "created by github.com/csi-thin/csi-thin/pkg/thinpool.(*Engine).")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// Close of an auto-growing engine stops its event watcher: when Close
// returns, the watcher's goroutine has returned and none of the engine's
// control nodes is open. (An engine on a kernel without DM_DEV_ARM_POLL,
// as in TestEngineAutoGrowWithDevWait, leaves its watcher behind: this
// test runs before it.)
func TestEngineCloseStopsItsWatcher(t *testing.T) {
	cfg := agConfig(t, 64*ekMiB, 96*ekMiB, true)
	fds, watchers := kerneltest.OpenFiles(t, dm.ControlPath), agWatchers()
	e := ekOpen(t, cfg)
	if n := agWatchers(); n != watchers+1 {
		t.Fatalf("%d event watchers with the engine open, want %d", n, watchers+1)
	}
	if n := kerneltest.OpenFiles(t, dm.ControlPath); n < fds+2 {
		t.Fatalf("%d control nodes open with the engine, want the engine's and its watcher's on top of %d", n, fds)
	}
	began := time.Now()
	ekClose(t, e)
	took := time.Since(began)
	if n := agWatchers(); n != watchers {
		t.Fatalf("%d event watchers after Close, want %d", n, watchers)
	}
	if n := kerneltest.OpenFiles(t, dm.ControlPath); n != fds {
		t.Fatalf("%d control nodes open after Close, want %d", n, fds)
	}
	t.Logf("Close of an auto-growing engine took %v, its watcher stopped", took)
}

// On a kernel without DM_DEV_ARM_POLL the engine waits in DM_DEV_WAIT and
// still grows the pool at its low water event: writes past the pool's
// first size succeed (queue_if_no_space: without a grow they would wait
// for the kernel's no_space_timeout, then fail).
func TestEngineAutoGrowWithDevWait(t *testing.T) {
	const poolBytes = 64 * ekMiB
	thinpool.WithoutArmPoll(t)
	cfg := agConfig(t, poolBytes, 128*ekMiB, false)
	ctl := ekControl(t)
	e := ekOpen(t, cfg)
	node := ekActivate(t, e, ekCreate(t, e, "v", 128*ekMiB))
	if r := agWrite(node, 96*ekMiB, 1); r.err != nil {
		t.Fatalf("writes past the pool's first size: %v", r.err)
	}
	st := ekStatus(t, ctl, cfg.PoolName)
	if got := st.DataTotal * thinpool.DefaultBlockSizeBytes; got <= poolBytes {
		t.Fatalf("the pool has %d bytes after 96 MiB were written", got)
	}
	if gs := e.GrowStats(); gs.Grows["auto"] == 0 {
		t.Fatalf("grow stats %+v: no auto-grow counted", gs)
	}
	agCheck(t, node, 96*ekMiB, 1)
}

// Metadata grows on its own low watermark event: a pool whose metadata is
// small (2 MiB, made before the pool) and whose data may not grow takes
// volumes, each of which costs metadata, until its metadata has grown and
// a hundred more. The kernel's metadata low watermark event grows the
// metadata file (to what the sizing rule wants for the pool's data)
// before it runs out, so that the pool never goes read-only and every
// create succeeds.
func TestEngineAutoGrowMetadata(t *testing.T) {
	cfg := agConfig(t, 64*ekMiB, 64*ekMiB, true)
	if err := os.WriteFile(filepath.Join(cfg.StateDir, ekMetadataFile), make([]byte, 2*ekMiB), 0o600); err != nil {
		t.Fatal(err)
	}
	ctl := ekControl(t)
	e := ekOpen(t, cfg)
	first := ekStatus(t, ctl, cfg.PoolName)
	if first.MetadataTotal*4096 != 2*ekMiB {
		t.Fatalf("metadata of %d blocks, want the 2 MiB file made before the pool", first.MetadataTotal)
	}
	n := 0
	for ; n < 3000 && (e.GrowStats().Grows["auto"] == 0 || n%100 != 0); n++ {
		if _, err := e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: fmt.Sprintf("m%d", n), RequiredBytes: thinpool.DefaultBlockSizeBytes}); err != nil {
			st := ekStatus(t, ctl, cfg.PoolName)
			t.Fatalf("create %d: %v (pool status %+v, grow stats %+v)", n, err, st, e.GrowStats())
		}
		if st := ekStatus(t, ctl, cfg.PoolName); st.Mode != dm.PoolModeReadWrite {
			t.Fatalf("after %d volumes the pool is %s: %+v", n+1, st.Mode, st)
		}
	}
	st := ekStatus(t, ctl, cfg.PoolName)
	gs := e.GrowStats()
	t.Logf("%d volumes: metadata grew from %d to %d KiB, %d KiB used, in %d grows (event to grown pool %v at most)",
		n, first.MetadataTotal*4, st.MetadataTotal*4, st.MetadataUsed*4, gs.Grows["auto"], gs.MaxLatency)
	if st.MetadataTotal <= first.MetadataTotal || gs.Grows["auto"] == 0 {
		t.Fatalf("metadata did not grow: %+v, %+v", st, gs)
	}
}

// A pool on block devices takes up its data device's new size when the
// administrator grows it: at start, and, while csi-thin runs, at the
// pool's next low water event. Loop devices stand in for the block
// devices, since they can be grown.
func TestEngineBlockPoolFollowsItsDevice(t *testing.T) {
	kerneltest.Require(t)
	dir := kerneltest.ScratchDir(t)
	devs := make([]*dm.LoopDevice, 2)
	files := []string{filepath.Join(dir, "data"), filepath.Join(dir, "metadata")}
	for i, size := range []int64{128 * ekMiB, 8 * ekMiB} {
		if err := os.WriteFile(files[i], nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(files[i], size); err != nil {
			t.Fatal(err)
		}
		l, err := dm.AttachLoop(files[i], dm.LoopOptions{})
		if err != nil {
			t.Fatal(err)
		}
		devs[i] = l
		t.Cleanup(func() {
			if err := l.Detach(); err != nil {
				t.Errorf("detach %s: %v", l.Path, err)
			}
		})
	}
	cfg := thinpool.Config{StateDir: t.TempDir(), PoolName: ekPoolName(t), DataDevice: devs[0].Path, MetadataDevice: devs[1].Path}
	ekCleanupPool(t, cfg)
	ctl := ekControl(t)
	growDevice := func(size int64) {
		t.Helper()
		if err := os.Truncate(files[0], size); err != nil {
			t.Fatal(err)
		}
		if err := devs[0].RefreshCapacity(); err != nil {
			t.Fatal(err)
		}
	}
	dataBytes := func() uint64 { return ekStatus(t, ctl, cfg.PoolName).DataTotal * thinpool.DefaultBlockSizeBytes }

	e := ekOpen(t, cfg)
	v := ekCreate(t, e, "v", 512*ekMiB)
	ekClose(t, e)
	growDevice(192 * ekMiB)
	e = ekOpen(t, cfg)
	if got := dataBytes(); got != 192*ekMiB {
		t.Fatalf("after the data device grew to 192 MiB the pool has %d bytes at start", got)
	}

	growDevice(320 * ekMiB)
	if got := dataBytes(); got != 192*ekMiB {
		t.Fatalf("the pool took the device's new size before any event: %d bytes", got)
	}
	// Low water: half the pool free. Writing 128 MiB of 192 crosses it.
	node := ekActivate(t, e, v)
	if r := agWrite(node, 128*ekMiB, 3); r.err != nil {
		t.Fatal(r.err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for dataBytes() != 320*ekMiB {
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the low water event the pool has %d bytes, its data device %d", dataBytes(), 320*ekMiB)
		}
		time.Sleep(10 * time.Millisecond)
	}
	gs := e.GrowStats()
	t.Logf("the pool followed its data device from 192 to 320 MiB on the low water event, %v after it (grow stats %+v)", gs.LastLatency, gs)
	if gs.Grows["device"] == 0 {
		t.Fatalf("grow stats %+v: the device's growth is not counted", gs)
	}
	agCheck(t, node, 128*ekMiB, 3)
}

// Without a maximum size the pool fills under concurrent writers: with
// error_if_no_space the writes that find it full fail at once (every
// writer returns, none hangs, no more is written than the pool holds) and
// what each wrote before reads back; in queue mode they wait, and all
// complete once the pool is grown.
func TestEngineFillsUnderConcurrentWriters(t *testing.T) {
	const writers, per = 4, 64 * ekMiB // 256 MiB into a 128 MiB pool
	for _, errorIfNoSpace := range []bool{true, false} {
		t.Run(fmt.Sprintf("error_if_no_space=%v", errorIfNoSpace), func(t *testing.T) {
			cfg := agConfig(t, 128*ekMiB, 0, errorIfNoSpace)
			ctl := ekControl(t)
			e := ekOpen(t, cfg)
			nodes := make([]string, writers)
			for i := range nodes {
				nodes[i] = ekActivate(t, e, ekCreate(t, e, fmt.Sprintf("w%d", i), per))
			}
			results := make([]agResult, writers)
			done := make(chan struct{})
			go func() {
				defer close(done)
				var wg sync.WaitGroup
				for i := range nodes {
					wg.Add(1)
					go func() {
						defer wg.Done()
						results[i] = agWrite(nodes[i], per, byte(20*i))
					}()
				}
				wg.Wait()
			}()
			ekFailQueuedWritesOnCleanup(t, ctl, cfg.PoolName, done)
			ekWaitPoolMode(t, ctl, cfg.PoolName, dm.PoolModeOutOfDataSpace)
			if errorIfNoSpace {
				<-done
				var total int64
				failed := 0
				for i, r := range results {
					// A writer scheduled early may finish before the pool
					// fills; those that find it full fail.
					if r.err != nil {
						failed++
					}
					total += r.bytes
					t.Logf("writer %d: %d MiB, then %v", i, r.bytes/ekMiB, r.err)
					if r.bytes >= 2*agChunk {
						agCheck(t, nodes[i], r.bytes, byte(20*i))
					}
				}
				if failed == 0 || total > 128*ekMiB {
					t.Fatalf("%d writers failed, %d MiB written into a 128 MiB pool", failed, total/ekMiB)
				}
				return
			}
			select {
			case <-done:
				t.Fatalf("every write finished on a full pool in queue mode: %+v", results)
			default:
			}
			if err := e.Grow(t.Context(), 512*ekMiB); err != nil {
				t.Fatal(err)
			}
			<-done
			for i, r := range results {
				if r.err != nil {
					t.Fatalf("writer %d: queued writes failed after the pool grew: %v", i, r.err)
				}
				agCheck(t, nodes[i], per, byte(20*i))
			}
		})
	}
}

// Auto-grow keeps the file system under the state directory's reserve: on
// a 512 MiB file system with a 10% reserve, a writer that keeps writing
// past what the file system can hold makes the pool grow only as far as
// its files, once written, leave the reserve free. There the pool stops
// growing (the refusal counted), its table switches to error_if_no_space,
// and the writes that do not fit fail at once instead of waiting.
func TestEngineAutoGrowKeepsTheFSReserve(t *testing.T) {
	kerneltest.Require(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=512m"); err != nil {
		t.Fatalf("mount a 512 MiB tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	cfg := thinpool.Config{StateDir: dir, PoolName: ekPoolName(t), PoolSizeBytes: 64 * ekMiB, MaxSizeBytes: 4 * ekGiB, ErrorIfNoSpace: true}
	ekCleanupPool(t, cfg)
	ctl := ekControl(t)
	e := ekOpen(t, cfg)
	v := ekCreate(t, e, "v", 512*ekMiB)
	node := ekActivate(t, e, v)
	r := agWrite(node, 512*ekMiB, 5)
	if r.err == nil {
		t.Fatalf("512 MiB written through a pool on a 512 MiB file system")
	}
	st := ekStatus(t, ctl, cfg.PoolName)
	data := st.DataTotal * thinpool.DefaultBlockSizeBytes
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	var holes uint64
	for _, f := range []string{ekDataFile, ekMetadataFile} {
		var s unix.Stat_t
		if err := unix.Stat(filepath.Join(dir, f), &s); err != nil {
			t.Fatal(err)
		}
		holes += uint64(s.Size) - min(uint64(s.Size), uint64(s.Blocks)*512)
	}
	avail, total := fs.Bavail*uint64(fs.Bsize), fs.Blocks*uint64(fs.Bsize)
	gs := e.GrowStats()
	t.Logf("wrote %d MiB, then %v; the pool grew from 64 to %d MiB in %d grows; the file system has %d MiB free, %d MiB of it the files' holes, of %d MiB",
		r.bytes/ekMiB, r.err, data/ekMiB, gs.Grows["auto"], avail/ekMiB, holes/ekMiB, total/ekMiB)
	if data <= 64*ekMiB || gs.Grows["auto"] == 0 {
		t.Fatalf("the pool did not grow: %d bytes, %+v", data, gs)
	}
	if avail < holes || avail-holes < total/10 {
		t.Fatalf("once the files are written the file system keeps %d of %d bytes, less than its 10%% reserve", int64(avail)-int64(holes), total)
	}
	if gs.Refused == 0 || !st.ErrorIfNoSpace {
		t.Fatalf("at the reserve: refusals %d, error_if_no_space %v: want the refusal counted and the writes failing at once", gs.Refused, st.ErrorIfNoSpace)
	}
	if r.slowest > agNoSpaceTimeout(t) {
		t.Fatalf("a write waited %v, as long as the kernel's no_space_timeout", r.slowest)
	}
	agCheck(t, node, r.bytes/agChunk*agChunk, 5)
}
