package thinpool_test

// The engine's behaviours in the real kernel: pools on loopback files and
// on block devices, their health, growth and metadata, and volumes,
// snapshots and copies with the data in them. Run them with
// test/kernel/test.sh (User-Mode Linux with dm-thin); elsewhere they skip.
//
// Helpers are prefixed ek so that they do not clash with the other test
// files of package thinpool_test.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/csi-thin/csi-thin/internal/kerneltest"
	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

const (
	ekKiB = 1 << 10
	ekMiB = 1 << 20
	ekGiB = 1 << 30
)

// The files of a loopback pool and the database, as the engine names them
// in its state directory.
const (
	ekDataFile     = "pool-data.img"
	ekMetadataFile = "pool-metadata.img"
	ekDBFile       = "csi-thin.db"
)

// ekPoolName is a dm name for the test's pool, unique per test and
// subtest, made of the characters a pool name may hold.
func ekPoolName(t testing.TB) string {
	var b strings.Builder
	b.WriteString("ek-")
	for _, r := range strings.ToLower(t.Name()) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	n := b.String()
	if len(n) > 60 {
		h := fnv.New32a()
		h.Write([]byte(t.Name()))
		n = fmt.Sprintf("%s-%08x", n[:51], h.Sum32())
	}
	return n
}

// ekLoopConfig is a loopback pool of size bytes in a fresh state
// directory. The pool is torn down when the test ends.
func ekLoopConfig(t testing.TB, size uint64) thinpool.Config {
	t.Helper()
	kerneltest.Require(t)
	cfg := thinpool.Config{StateDir: t.TempDir(), PoolName: ekPoolName(t), PoolSizeBytes: size}
	ekCleanupPool(t, cfg)
	return cfg
}

// ekBlockConfig is a pool on the harness's two block devices, with the
// metadata's superblock zeroed so that a new pool is formatted there, and
// a fresh state directory. The pool is torn down when the test ends.
func ekBlockConfig(t testing.TB) thinpool.Config {
	t.Helper()
	kerneltest.Require(t)
	devs := kerneltest.BlockDevices(t, 2)
	ekWriteDevice(t, devs[1], 0, make([]byte, 4*ekKiB))
	cfg := thinpool.Config{StateDir: t.TempDir(), PoolName: ekPoolName(t), DataDevice: devs[0], MetadataDevice: devs[1]}
	ekCleanupPool(t, cfg)
	return cfg
}

// ekEachKind runs f on a 256 MiB loopback pool and on a pool on the block
// devices.
func ekEachKind(t *testing.T, f func(t *testing.T, cfg thinpool.Config)) {
	t.Run("loop", func(t *testing.T) { f(t, ekLoopConfig(t, 256*ekMiB)) })
	t.Run("block", func(t *testing.T) { f(t, ekBlockConfig(t)) })
}

func ekCleanupPool(t testing.TB, cfg thinpool.Config) {
	t.Cleanup(func() {
		if err := ekTakeDown(cfg); err != nil {
			t.Errorf("tear down pool %s: %v", cfg.PoolName, err)
		}
	})
}

// ekTakeDown does what a reboot does to a pool: every device on it is
// removed, then the pool, then its loop devices. Files, block devices and
// the state directory stay.
func ekTakeDown(cfg thinpool.Config) error {
	ctl, err := dm.Open()
	if err != nil {
		return err
	}
	defer ctl.Close()
	var errs []error
	info, err := ctl.Info(cfg.PoolName)
	if err != nil {
		return err
	}
	if info.Exists {
		devs, err := ctl.List()
		if err != nil {
			return err
		}
		for _, d := range devs {
			deps, err := ctl.Deps(d.Name)
			if err != nil || !slices.Contains(deps, info.Dev) {
				continue
			}
			if err := ctl.Remove(d.Name, dm.RemoveOptions{}); err != nil {
				errs = append(errs, err)
			}
		}
		if err := ctl.Remove(cfg.PoolName, dm.RemoveOptions{}); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.DataDevice == "" {
		for _, f := range []string{ekDataFile, ekMetadataFile} {
			for {
				l, err := dm.FindLoop(filepath.Join(cfg.StateDir, f))
				if err != nil {
					if !errors.Is(err, dm.ErrNotFound) && !errors.Is(err, os.ErrNotExist) {
						errs = append(errs, err)
					}
					break
				}
				if err := l.Detach(); err != nil {
					errs = append(errs, err)
					break
				}
			}
		}
	}
	return errors.Join(errs...)
}

func ekOpen(t testing.TB, cfg thinpool.Config) *thinpool.Engine {
	t.Helper()
	e, err := thinpool.Open(cfg)
	if err != nil {
		t.Fatalf("open %s: %v", cfg.String(), err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func ekClose(t testing.TB, e *thinpool.Engine) {
	t.Helper()
	if err := e.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func ekControl(t testing.TB) *dm.Control {
	t.Helper()
	ctl, err := dm.Open()
	if err != nil {
		t.Fatalf("open device-mapper control: %v", err)
	}
	t.Cleanup(func() { ctl.Close() })
	return ctl
}

func ekStatus(t testing.TB, ctl *dm.Control, pool string) dm.PoolStatus {
	t.Helper()
	st, err := ctl.PoolStatus(pool)
	if err != nil {
		t.Fatalf("status of pool %s: %v", pool, err)
	}
	return st
}

// ekFailQueuedWritesOnCleanup makes writes that still wait for space on a
// full pool fail when the test ends, so that a test that failed meanwhile
// can tear the pool down; done closes when the writers are finished.
func ekFailQueuedWritesOnCleanup(t testing.TB, ctl *dm.Control, pool string, done <-chan struct{}) {
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			pt, sectors := ekPoolTable(t, ctl, pool)
			pt.Features.ErrorIfNoSpace = true
			ctl.ReloadPool(pool, pt, sectors)
			<-done
		}
	})
}

// ekPoolTable is the live table of the pool and its length in sectors.
func ekPoolTable(t testing.TB, ctl *dm.Control, pool string) (dm.PoolTable, uint64) {
	t.Helper()
	ts, err := ctl.Table(pool)
	if err != nil || len(ts) != 1 {
		t.Fatalf("table of pool %s: %v %v", pool, ts, err)
	}
	pt, err := dm.ParsePoolParams(ts[0].Params)
	if err != nil {
		t.Fatal(err)
	}
	return pt, ts[0].Length
}

func ekCreate(t testing.TB, e *thinpool.Engine, name string, size uint64) *thinpool.Volume {
	t.Helper()
	v, err := e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: name, RequiredBytes: size})
	if err != nil {
		t.Fatalf("create volume %q of %d bytes: %v", name, size, err)
	}
	return v
}

func ekSnapshot(t testing.TB, e *thinpool.Engine, name, source string) *thinpool.Volume {
	t.Helper()
	s, err := e.CreateSnapshot(t.Context(), name, source, nil)
	if err != nil {
		t.Fatalf("snapshot %q of %s: %v", name, source, err)
	}
	return s
}

// ekActivate, ekDeactivate and ekDelete run with a context of their own:
// tests also call them from cleanups, which run after t.Context() has
// been cancelled.
func ekActivate(t testing.TB, e *thinpool.Engine, v *thinpool.Volume) string {
	t.Helper()
	p, err := e.Activate(context.Background(), v.ID, v.Kind == thinpool.KindSnapshot)
	if err != nil {
		t.Fatalf("activate %s (%s): %v", v.Name, v.ID, err)
	}
	return p
}

func ekDeactivate(t testing.TB, e *thinpool.Engine, v *thinpool.Volume) {
	t.Helper()
	if err := e.Deactivate(context.Background(), v.ID); err != nil {
		t.Fatalf("deactivate %s (%s): %v", v.Name, v.ID, err)
	}
}

func ekDelete(t testing.TB, e *thinpool.Engine, v *thinpool.Volume) {
	t.Helper()
	if err := e.Delete(context.Background(), v.ID); err != nil {
		t.Fatalf("delete %s (%s): %v", v.Name, v.ID, err)
	}
}

// ekPattern is n bytes that differ for every seed and (8-byte aligned)
// offset, made a word at a time: byte loops are slow under User-Mode Linux.
func ekPattern(seed byte, n int) []byte { return kerneltest.Pattern(seed, n) }

func ekWriteDevice(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatalf("write %d bytes to %s at %d: %v", len(b), path, off, err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("sync %s: %v", path, err)
	}
}

func ekReadDevice(t testing.TB, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatalf("read %d bytes of %s at %d: %v", n, path, off, err)
	}
	return b
}

// ekFill writes mib MiB from the start of the device at path, MiB i being
// ekPattern(seed+i, 1 MiB), and syncs it. It goes a MiB at a time: a
// process's first touch of fresh memory is slow under User-Mode Linux.
func ekFill(path string, mib int, seed byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for i := range mib {
		if _, err := f.Write(ekPattern(seed+byte(i), ekMiB)); err != nil {
			return err
		}
	}
	return f.Sync()
}

// ekWrite activates v, writes b at off and deactivates it again.
func ekWrite(t testing.TB, e *thinpool.Engine, v *thinpool.Volume, off int64, b []byte) {
	t.Helper()
	ekWriteDevice(t, ekActivate(t, e, v), off, b)
	ekDeactivate(t, e, v)
}

// ekExpect activates v (read-only if a snapshot), compares what it holds at
// each offset with the bytes wanted there, and deactivates it. The device
// is new, so nothing is read from an earlier device's page cache.
func ekExpect(t testing.TB, e *thinpool.Engine, v *thinpool.Volume, want map[int64][]byte) {
	t.Helper()
	p := ekActivate(t, e, v)
	for _, off := range slices.Sorted(maps.Keys(want)) {
		if got := ekReadDevice(t, p, off, len(want[off])); !bytes.Equal(got, want[off]) {
			ekDeactivate(t, e, v)
			t.Fatalf("%s %q (%s): the %d bytes at %d are not what was written there", v.Kind, v.Name, v.ID, len(want[off]), off)
		}
	}
	ekDeactivate(t, e, v)
}

func ekDeviceSize(t testing.TB, path string) uint64 {
	t.Helper()
	n, err := dm.BlockDeviceSize(path)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func ekMkfsMount(t testing.TB, node string) string {
	t.Helper()
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-E", "nodiscard", node).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v: %s", node, err, out)
	}
	return ekMount(t, node, 0)
}

// ekMount mounts an ext4 and unmounts it when the test ends, if the test
// has not.
func ekMount(t testing.TB, node string, flags uintptr) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount(node, dir, "ext4", flags, ""); err != nil {
		t.Fatalf("mount %s: %v", node, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, 0) })
	return dir
}

func ekUnmount(t testing.TB, dir string) {
	t.Helper()
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatalf("unmount %s: %v", dir, err)
	}
}

func ekIs(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// --- Pools ---

// A loopback pool is made on first Open: sparse files in the state
// directory, the metadata file sized by the rule of config.go
// (2 × 48 bytes a data block + 4 MiB + 128 MiB of room for thin
// devices, in whole MiB), the data file
// rounded down to whole blocks, and the pool the kernel activates has
// exactly those sizes.
func TestEngineLoopPoolFiles(t *testing.T) {
	for _, tc := range []struct {
		name             string
		poolBytes, block uint64
		data, metadata   uint64
	}{
		{"64MiB", 64 * ekMiB, 0, 64 * ekMiB, 133 * ekMiB},                          // 1024 blocks: 96 KiB + 4 MiB + 128 MiB
		{"1GiB", 1 * ekGiB, 0, 1 * ekGiB, 134 * ekMiB},                             // 16384 blocks: 1.5 MiB + 4 MiB + 128 MiB
		{"1GiB-blocks-1MiB", 1 * ekGiB, 1 * ekMiB, 1 * ekGiB, 133 * ekMiB},         // 1024 blocks
		{"odd-size", 100*ekMiB + 100*ekKiB, 256 * ekKiB, 100 * ekMiB, 133 * ekMiB}, // rounded down to 400 blocks
		{"64GiB", 64 * ekGiB, 0, 64 * ekGiB, 228 * ekMiB},                          // 2^20 blocks: 96 MiB + 4 MiB + 128 MiB
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ekLoopConfig(t, tc.poolBytes)
			cfg.BlockSizeBytes = tc.block
			e := ekOpen(t, cfg)
			for _, f := range []struct {
				name string
				size uint64
			}{{ekDataFile, tc.data}, {ekMetadataFile, tc.metadata}} {
				var st unix.Stat_t
				if err := unix.Stat(filepath.Join(cfg.StateDir, f.name), &st); err != nil {
					t.Fatalf("%s: %v", f.name, err)
				}
				if uint64(st.Size) != f.size {
					t.Errorf("%s is %d bytes, want %d", f.name, st.Size, f.size)
				}
				if allocated := uint64(st.Blocks) * 512; allocated > f.size/4 {
					t.Errorf("%s is not sparse: %d of its %d bytes are allocated", f.name, allocated, f.size)
				}
			}
			c, err := e.Capacity()
			if err != nil {
				t.Fatal(err)
			}
			if c.DataBytes != tc.data || c.MetadataBytes != tc.metadata || c.DataUsedBytes != 0 {
				t.Errorf("capacity %+v: want %d data bytes, none used, and %d metadata bytes", c, tc.data, tc.metadata)
			}
			if err := e.Health(); err != nil {
				t.Errorf("new pool: %v", err)
			}
		})
	}
}

// Close leaves the pool and its loop devices up, and the next Open adopts
// the running pool. After a reboot (volumes and pool removed, loops
// detached) Open re-attaches the files, runs thin_check, reactivates the
// pool, and every volume and snapshot is there with its data. thin_check
// runs only then: not for a new pool, not when adopting a running one.
func TestEnginePoolReopen(t *testing.T) {
	ekEachKind(t, func(t *testing.T, cfg thinpool.Config) {
		ctl := ekControl(t)
		thinCheckLog := filepath.Join(t.TempDir(), "thin_check.log")
		cfg.ThinCheck = ekThinCheckWrapper(t, thinCheckLog)
		e := ekOpen(t, cfg)

		a, b := ekPattern(1, ekMiB), ekPattern(2, ekMiB)
		v := ekCreate(t, e, "data", 8*ekMiB)
		node := ekActivate(t, e, v)
		ekWriteDevice(t, node, 0, a)
		ekWriteDevice(t, node, 7*ekMiB, b)
		s := ekSnapshot(t, e, "before", v.ID) // of the active volume
		ekWriteDevice(t, node, 0, b)
		ekDeactivate(t, e, v)
		wantV := map[int64][]byte{0: b, 7 * ekMiB: b}
		wantS := map[int64][]byte{0: a, 7 * ekMiB: b}
		tx := ekStatus(t, ctl, cfg.PoolName).TransactionID
		before, err := ctl.Info(cfg.PoolName)
		if err != nil {
			t.Fatal(err)
		}
		ekClose(t, e)

		// Close detaches nothing.
		if info, err := ctl.Info(cfg.PoolName); err != nil || !info.Exists || info.Dev != before.Dev {
			t.Fatalf("after Close the pool is %+v (%v), want it still up as %s", info, err, before.Dev)
		}
		if cfg.DataDevice == "" {
			for _, f := range []string{ekDataFile, ekMetadataFile} {
				if _, err := dm.FindLoop(filepath.Join(cfg.StateDir, f)); err != nil {
					t.Fatalf("after Close %s has no loop device: %v", f, err)
				}
			}
		}

		e = ekOpen(t, cfg)
		if info, _ := ctl.Info(cfg.PoolName); info.Dev != before.Dev {
			t.Fatalf("Open replaced the running pool %s with %s instead of adopting it", before.Dev, info.Dev)
		}
		ekExpect(t, e, v, wantV)
		ekExpect(t, e, s, wantS)
		ekClose(t, e)
		if log := ekReadLog(t, thinCheckLog); len(log) != 0 {
			t.Fatalf("thin_check ran for a new or a running pool: %q", log)
		}

		// Reboot.
		if err := ekTakeDown(cfg); err != nil {
			t.Fatalf("take the pool down: %v", err)
		}
		if info, _ := ctl.Info(cfg.PoolName); info.Exists {
			t.Fatalf("pool still up after being taken down")
		}
		if cfg.DataDevice == "" {
			if _, err := dm.FindLoop(filepath.Join(cfg.StateDir, ekDataFile)); !errors.Is(err, dm.ErrNotFound) {
				t.Fatalf("data file still has a loop device after the take-down: %v", err)
			}
		}

		e = ekOpen(t, cfg)
		if info, err := ctl.Info(cfg.PoolName); err != nil || !info.Exists {
			t.Fatalf("Open after a reboot did not reactivate the pool: %+v %v", info, err)
		}
		meta := cfg.MetadataDevice
		if meta == "" {
			l, err := dm.FindLoop(filepath.Join(cfg.StateDir, ekMetadataFile))
			if err != nil {
				t.Fatalf("Open after a reboot did not re-attach the metadata file: %v", err)
			}
			meta = l.Path
		}
		if log := ekReadLog(t, thinCheckLog); !slices.Equal(log, []string{"-q " + meta}) {
			t.Fatalf("thin_check runs before reactivating existing metadata: it ran %q, want once on %s", log, meta)
		}
		if got := ekStatus(t, ctl, cfg.PoolName).TransactionID; got != tx {
			t.Fatalf("transaction id after the reboot is %d, was %d", got, tx)
		}
		if err := e.Health(); err != nil {
			t.Fatalf("pool after the reboot: %v", err)
		}
		vs, _, err := e.List(thinpool.KindVolume, "", 0)
		if err != nil || len(vs) != 1 || vs[0].ID != v.ID || vs[0].SizeBytes != v.SizeBytes {
			t.Fatalf("volumes after the reboot: %+v %v, want only %+v", vs, err, v)
		}
		ss, _, err := e.List(thinpool.KindSnapshot, "", 0)
		if err != nil || len(ss) != 1 || ss[0].ID != s.ID {
			t.Fatalf("snapshots after the reboot: %+v %v, want only %+v", ss, err, s)
		}
		ekExpect(t, e, v, wantV)
		ekExpect(t, e, s, wantS)
		// The pool keeps working: a new volume gets a thin id of its own
		// and is blank.
		n := ekCreate(t, e, "new", 4*ekMiB)
		ekExpect(t, e, n, map[int64][]byte{0: make([]byte, ekMiB)})
	})
}

// ekThinCheckWrapper is a thin_check that logs its arguments and runs the
// real one.
func ekThinCheckWrapper(t testing.TB, log string) string {
	t.Helper()
	bin, err := exec.LookPath("thin_check")
	if err != nil {
		t.Skipf("thin_check is not installed: %v", err)
	}
	p := filepath.Join(t.TempDir(), "thin_check")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %q\nexec %q \"$@\"\n", log, bin)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func ekReadLog(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// The block size is configurable and fixed when the pool is made: sizes
// round up to it, and a later Open with another BlockSizeBytes keeps the
// pool's, whether it adopts the running pool or reactivates it.
func TestEngineBlockSize(t *testing.T) {
	ekEachKind(t, func(t *testing.T, cfg thinpool.Config) {
		const block = 256 * ekKiB
		ctl := ekControl(t)
		cfg.BlockSizeBytes = block
		e := ekOpen(t, cfg)
		ekCheckBlockSize(t, ctl, cfg.PoolName, block)
		var last *thinpool.Volume
		for i, tc := range []struct{ ask, want uint64 }{
			{1, block},
			{block, block},
			{block + 1, 2 * block},
			{ekMiB + 1, ekMiB + block},
			{10 * ekMiB, 10 * ekMiB},
		} {
			v := ekCreate(t, e, fmt.Sprintf("v%d", i), tc.ask)
			if v.SizeBytes != tc.want {
				t.Errorf("a volume of %d bytes in %d-byte blocks is %d bytes, want %d", tc.ask, block, v.SizeBytes, tc.want)
			}
			last = v
		}
		if got := ekDeviceSize(t, ekActivate(t, e, last)); got != last.SizeBytes {
			t.Errorf("the device of a %d-byte volume is %d bytes", last.SizeBytes, got)
		}
		ekDeactivate(t, e, last)
		ekClose(t, e)

		for _, step := range []struct {
			name   string
			reboot bool
			block  uint64
		}{{"adopt", false, 64 * ekKiB}, {"reactivate", true, ekMiB}} {
			if step.reboot {
				if err := ekTakeDown(cfg); err != nil {
					t.Fatal(err)
				}
			}
			cfg.BlockSizeBytes = step.block
			e = ekOpen(t, cfg)
			ekCheckBlockSize(t, ctl, cfg.PoolName, block)
			if v := ekCreate(t, e, "after-"+step.name, 1); v.SizeBytes != block {
				t.Errorf("%s with BlockSizeBytes %d: a 1-byte volume is %d bytes, want the pool's block of %d", step.name, step.block, v.SizeBytes, block)
			}
			if c, err := e.Capacity(); err != nil || c.PromisedBytes == 0 {
				t.Fatalf("%s: capacity %+v %v", step.name, c, err)
			}
			ekClose(t, e)
		}
	})
}

func ekCheckBlockSize(t testing.TB, ctl *dm.Control, pool string, block uint64) {
	t.Helper()
	if pt, _ := ekPoolTable(t, ctl, pool); uint64(pt.DataBlockSize)*512 != block {
		t.Fatalf("pool %s has blocks of %d sectors, want %d bytes", pool, pt.DataBlockSize, block)
	}
}

// A new pool on block devices needs blank metadata: the engine refuses
// metadata it did not make (an old pool's, or anything else) with
// ErrStoreMismatch and says how to start over, without activating a pool.
// A pool's metadata with a state directory that never saw it is refused
// the same way.
func TestEngineBlockPoolNeedsBlankMetadata(t *testing.T) {
	cfg := ekBlockConfig(t)
	ctl := ekControl(t)
	ekWriteDevice(t, cfg.MetadataDevice, 0, ekPattern(7, 4*ekKiB))
	_, err := thinpool.Open(cfg)
	ekIs(t, "open on metadata that is not blank", err, thinpool.ErrStoreMismatch)
	if !strings.Contains(err.Error(), "zero its first 4 KiB") {
		t.Errorf("the error does not say how to start a new pool: %v", err)
	}
	if info, _ := ctl.Info(cfg.PoolName); info.Exists {
		t.Fatalf("a pool was activated on metadata that was refused")
	}

	ekWriteDevice(t, cfg.MetadataDevice, 0, make([]byte, 4*ekKiB))
	e := ekOpen(t, cfg)
	v := ekCreate(t, e, "kept", 4*ekMiB)
	ekClose(t, e)
	if err := ekTakeDown(cfg); err != nil {
		t.Fatal(err)
	}

	other := cfg
	other.StateDir = t.TempDir()
	_, err = thinpool.Open(other)
	ekIs(t, "open of a pool's metadata with a state directory that never saw it", err, thinpool.ErrStoreMismatch)
	if info, _ := ctl.Info(cfg.PoolName); info.Exists {
		t.Fatalf("a pool was activated for a state directory that does not belong to it")
	}

	e = ekOpen(t, cfg)
	if got, err := e.Get(v.ID); err != nil || got.Name != "kept" {
		t.Fatalf("the pool's own state directory lost %s: %+v %v", v.ID, got, err)
	}
}

// A pool that is read-only, out of data space or needs_check is unhealthy:
// Health says why, and creates, snapshots, copies, deletes and expansions
// are refused with ErrUnhealthy until it is well again.
func ekCheckRefused(t testing.TB, e *thinpool.Engine, v *thinpool.Volume, reason string) {
	t.Helper()
	ekCheckPromised(t, e)
	if got, err := e.Get(v.ID); err != nil || got.SizeBytes != v.SizeBytes {
		t.Fatalf("volume %s on the unhealthy pool: %+v %v", v.ID, got, err)
	}
	err := e.Health()
	ekIs(t, "health", err, thinpool.ErrUnhealthy)
	if !strings.Contains(err.Error(), reason) {
		t.Fatalf("health does not say %q: %v", reason, err)
	}
	_, err = e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: "refused", RequiredBytes: ekMiB})
	ekIs(t, "create on an unhealthy pool", err, thinpool.ErrUnhealthy)
	_, err = e.CreateSnapshot(t.Context(), "refused", v.ID, nil)
	ekIs(t, "snapshot on an unhealthy pool", err, thinpool.ErrUnhealthy)
	_, err = e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: "refused-clone", SourceID: v.ID})
	ekIs(t, "clone on an unhealthy pool", err, thinpool.ErrUnhealthy)
	_, err = e.Expand(t.Context(), v.ID, v.SizeBytes*2)
	ekIs(t, "expand on an unhealthy pool", err, thinpool.ErrUnhealthy)
	if got, err := e.Get(v.ID); err != nil || got.SizeBytes != v.SizeBytes {
		t.Fatalf("a refused expansion changed %s: %+v %v", v.ID, got, err)
	}
	ekIs(t, "delete on an unhealthy pool", e.Delete(t.Context(), v.ID), thinpool.ErrUnhealthy)
	if _, err := e.Get(v.ID); err != nil {
		t.Fatalf("a refused delete removed %s: %v", v.ID, err)
	}
}

func ekCheckWell(t testing.TB, e *thinpool.Engine, v *thinpool.Volume, name string) {
	t.Helper()
	if err := e.Health(); err != nil {
		t.Fatalf("pool still unhealthy: %v", err)
	}
	n := ekCreate(t, e, name, ekMiB)
	ekSnapshot(t, e, name, v.ID)
	ekDelete(t, e, n)
	ekCheckPromised(t, e)
}

// ekCheckPromised checks that Capacity's promised bytes are the sizes of
// the volumes and snapshots listed.
func ekCheckPromised(t testing.TB, e *thinpool.Engine) {
	t.Helper()
	var sum uint64
	for _, k := range []thinpool.Kind{thinpool.KindVolume, thinpool.KindSnapshot} {
		vs, _, err := e.List(k, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			sum += v.SizeBytes
		}
	}
	if c, err := e.Capacity(); err != nil || c.PromisedBytes != sum {
		t.Fatalf("capacity %+v (%v): promised bytes are not the %d bytes of the volumes and snapshots", c, err, sum)
	}
}

// A read-only pool, made so by reloading its table with read_only, is
// refused, also by an engine that starts on it, and usable again once it
// is read-write.
func TestEngineReadOnlyPool(t *testing.T) {
	ekEachKind(t, func(t *testing.T, cfg thinpool.Config) {
		ctl := ekControl(t)
		e := ekOpen(t, cfg)
		v := ekCreate(t, e, "v", 4*ekMiB)
		pt, sectors := ekPoolTable(t, ctl, cfg.PoolName)
		setReadOnly := func(ro bool) {
			t.Helper()
			pt.Features.ReadOnly = ro
			if err := ctl.ReloadPool(cfg.PoolName, pt, sectors); err != nil {
				t.Fatalf("reload pool with read_only=%v: %v", ro, err)
			}
		}

		setReadOnly(true)
		if st := ekStatus(t, ctl, cfg.PoolName); st.Mode != dm.PoolModeReadOnly {
			t.Fatalf("pool mode %q after loading read_only", st.Mode)
		}
		ekCheckRefused(t, e, v, "read-only")
		setReadOnly(false)
		ekCheckWell(t, e, v, "after-rw")

		// An engine that starts on a read-only pool refuses changes, and
		// recovers once the pool is writable.
		setReadOnly(true)
		ekClose(t, e)
		e = ekOpen(t, cfg)
		ekCheckRefused(t, e, v, "read-only")
		setReadOnly(false)
		ekCheckWell(t, e, v, "after-restart")
	})
}

// A loopback pool filled by a volume's writes goes out_of_data_space: the
// engine refuses creates with ErrNoSpace. Without ErrorIfNoSpace the
// writes wait in the kernel; Grow brings the pool back and they finish.
// With it, the writes fail at once; Grow brings the pool back too.
func TestEngineOutOfDataSpace(t *testing.T) {
	for _, errorIfNoSpace := range []bool{false, true} {
		t.Run(fmt.Sprintf("error_if_no_space=%v", errorIfNoSpace), func(t *testing.T) {
			cfg := ekLoopConfig(t, 64*ekMiB)
			cfg.ErrorIfNoSpace = errorIfNoSpace
			ctl := ekControl(t)
			e := ekOpen(t, cfg)
			spare := ekCreate(t, e, "spare", 4*ekMiB)
			v := ekCreate(t, e, "filler", 96*ekMiB)
			node := ekActivate(t, e, v)
			var writeErr error
			wrote := make(chan struct{})
			go func() {
				defer close(wrote)
				writeErr = ekFill(node, 72, 9) // more than the pool has
			}()
			ekFailQueuedWritesOnCleanup(t, ctl, cfg.PoolName, wrote)
			ekWaitPoolMode(t, ctl, cfg.PoolName, dm.PoolModeOutOfDataSpace)
			if errorIfNoSpace {
				<-wrote
				if err := writeErr; err == nil {
					t.Fatalf("writes past the end of a full pool with error_if_no_space succeeded")
				} else {
					t.Logf("writes to the full pool failed at once: %v", err)
				}
			}
			ekCheckFull(t, e, spare, nil)

			if err := e.Grow(t.Context(), 128*ekMiB); err != nil {
				t.Fatalf("grow the full pool: %v", err)
			}
			if !errorIfNoSpace {
				select {
				case <-wrote:
					if err := writeErr; err != nil {
						t.Fatalf("writes that waited for space failed after the pool grew: %v", err)
					}
				case <-time.After(2 * time.Minute):
					t.Fatalf("writes that waited for space did not finish after the pool grew")
				}
			}
			if st := ekStatus(t, ctl, cfg.PoolName); st.Mode != dm.PoolModeReadWrite {
				t.Fatalf("pool mode %q after growing, want rw", st.Mode)
			}
			ekDeactivate(t, e, v)
			ekCheckWell(t, e, spare, "after-grow")
			if !errorIfNoSpace {
				ekExpect(t, e, v, map[int64][]byte{0: ekPattern(9, ekMiB), 71 * ekMiB: ekPattern(9+71, ekMiB)})
			}
		})
	}
}

// ekWaitPoolMode waits, on the pool's dm events rather than by polling,
// until the pool is in mode.
func ekWaitPoolMode(t testing.TB, ctl *dm.Control, pool string, mode dm.PoolMode) {
	t.Helper()
	for {
		info, err := ctl.Info(pool)
		if err != nil {
			t.Fatal(err)
		}
		st := ekStatus(t, ctl, pool)
		if st.Mode == mode {
			return
		}
		if st.Mode != dm.PoolModeReadWrite {
			t.Fatalf("waiting for pool mode %s, the pool went %q: %+v", mode, st.Mode, st)
		}
		if _, err := ctl.WaitEvent(pool, info.EventNr); err != nil {
			t.Fatalf("wait for an event of pool %s: %v", pool, err)
		}
	}
}

// Thin-pool superblock fields (drivers/md/dm-thin-metadata.c): the
// checksum of the rest of the 4 KiB block, then the flags.
const (
	ekSuperblockCsumXor = 160774
	ekNeedsCheckFlag    = 1
)

func ekSuperblockChecksum(sb []byte) uint32 {
	// The kernel's crc32c(~0, ...) is Castagnoli without the final
	// inversion.
	return ^crc32.Checksum(sb[4:4096], crc32.MakeTable(crc32.Castagnoli)) ^ ekSuperblockCsumXor
}

// Metadata that the kernel marked needs_check (as it does after a
// metadata error) is checked by thin_check and activated, but the kernel
// keeps the pool read-only: the engine reports needs_check and refuses
// changes. Once thin_check has cleared the flag, the pool is well again.
func TestEngineNeedsCheck(t *testing.T) {
	cfg := ekLoopConfig(t, 64*ekMiB)
	ctl := ekControl(t)
	e := ekOpen(t, cfg)
	v := ekCreate(t, e, "v", 4*ekMiB)
	ekWrite(t, e, v, 0, ekPattern(3, ekMiB))
	ekClose(t, e)
	if err := ekTakeDown(cfg); err != nil {
		t.Fatal(err)
	}

	meta := filepath.Join(cfg.StateDir, ekMetadataFile)
	f, err := os.OpenFile(meta, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	sb := make([]byte, 4096)
	if _, err := f.ReadAt(sb, 0); err != nil {
		t.Fatal(err)
	}
	if got, want := binary.LittleEndian.Uint32(sb), ekSuperblockChecksum(sb); got != want {
		t.Fatalf("superblock checksum %#x, computed %#x: the test's idea of the superblock is wrong", got, want)
	}
	binary.LittleEndian.PutUint32(sb[4:], binary.LittleEndian.Uint32(sb[4:])|ekNeedsCheckFlag)
	binary.LittleEndian.PutUint32(sb, ekSuperblockChecksum(sb))
	if _, err := f.WriteAt(sb, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()

	e = ekOpen(t, cfg)
	if st := ekStatus(t, ctl, cfg.PoolName); !st.NeedsCheck {
		t.Fatalf("pool status %+v: the kernel did not see needs_check", st)
	}
	ekCheckRefused(t, e, v, "needs_check")
	ekExpect(t, e, v, map[int64][]byte{0: ekPattern(3, ekMiB)}) // reads still work
	ekClose(t, e)

	if err := ekTakeDown(cfg); err != nil {
		t.Fatal(err)
	}
	// On its loop device: thin_check needs O_DIRECT, which the state
	// directory's file system may not have.
	l, err := dm.AttachLoop(meta, dm.LoopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("thin_check", "--clear-needs-check-flag", l.Path).CombinedOutput()
	if dErr := l.Detach(); dErr != nil {
		t.Fatal(dErr)
	}
	if err != nil {
		t.Fatalf("thin_check --clear-needs-check-flag: %v: %s", err, out)
	}
	e = ekOpen(t, cfg)
	ekCheckWell(t, e, v, "after-check")
}

// thin_check runs before existing metadata is activated: damaged metadata
// (a superblock whose checksum no longer holds) makes Open fail with
// ErrUnhealthy and thin_check's findings, and no pool is activated on it.
// With the superblock restored the pool comes back whole.
func TestEngineDamagedMetadata(t *testing.T) {
	ekEachKind(t, func(t *testing.T, cfg thinpool.Config) {
		if _, err := exec.LookPath("thin_check"); err != nil {
			t.Skipf("thin_check is not installed: %v", err)
		}
		ctl := ekControl(t)
		e := ekOpen(t, cfg)
		v := ekCreate(t, e, "v", 4*ekMiB)
		ekWrite(t, e, v, ekMiB, ekPattern(5, ekMiB))
		ekClose(t, e)
		if err := ekTakeDown(cfg); err != nil {
			t.Fatal(err)
		}

		meta := cfg.MetadataDevice
		if meta == "" {
			meta = filepath.Join(cfg.StateDir, ekMetadataFile)
		}
		sb := ekReadDevice(t, meta, 0, 4096)
		damaged := slices.Clone(sb)
		for i := 16; i < 32; i++ { // the pool's uuid, under the checksum
			damaged[i] ^= 0x5a
		}
		ekWriteDevice(t, meta, 0, damaged)

		_, err := thinpool.Open(cfg)
		ekIs(t, "open on damaged metadata", err, thinpool.ErrUnhealthy)
		if !strings.Contains(err.Error(), "thin_check") {
			t.Fatalf("the error does not name thin_check: %v", err)
		}
		t.Logf("open on damaged metadata: %v", err)
		if info, _ := ctl.Info(cfg.PoolName); info.Exists {
			t.Fatalf("a pool was activated on damaged metadata")
		}

		ekWriteDevice(t, meta, 0, sb)
		e = ekOpen(t, cfg)
		ekExpect(t, e, v, map[int64][]byte{ekMiB: ekPattern(5, ekMiB)})
	})
}

// A loopback pool grows while a volume on it is mounted and written:
// status and Capacity follow at once, the metadata grows by the rule, and
// nothing written is lost. A larger PoolSizeBytes at Open grows it too; a
// smaller one changes nothing. A pool on block devices does not grow in
// place.
func TestEngineGrow(t *testing.T) {
	t.Run("loop", func(t *testing.T) {
		cfg := ekLoopConfig(t, 64*ekMiB)
		ctl := ekControl(t)
		e := ekOpen(t, cfg)
		v := ekCreate(t, e, "v", 256*ekMiB)
		node := ekActivate(t, e, v)
		dir := ekMkfsMount(t, node)
		w := kerneltest.StartFileWriter(t, dir)
		w.WaitFor(t, 10)

		if err := e.Grow(t.Context(), 1*ekGiB); err != nil {
			t.Fatalf("grow to 1 GiB: %v", err)
		}
		n := w.Done()
		w.WaitFor(t, n+10) // the mounted volume kept taking writes
		ekCheckPoolSize(t, ctl, e, cfg, 1*ekGiB, 134*ekMiB)
		if err := e.Grow(t.Context(), 512*ekMiB); err != nil {
			t.Fatalf("grow to less than the pool has: %v", err)
		}
		ekCheckPoolSize(t, ctl, e, cfg, 1*ekGiB, 134*ekMiB)

		total, err := w.Halt()
		if err != nil {
			t.Fatalf("writer: %v", err)
		}
		ekUnmount(t, dir)
		ekDeactivate(t, e, v)
		ekClose(t, e)

		cfg.PoolSizeBytes = 2 * ekGiB
		e = ekOpen(t, cfg)
		ekCheckPoolSize(t, ctl, e, cfg, 2*ekGiB, 135*ekMiB)
		ekClose(t, e)
		cfg.PoolSizeBytes = 64 * ekMiB
		e = ekOpen(t, cfg)
		ekCheckPoolSize(t, ctl, e, cfg, 2*ekGiB, 135*ekMiB)

		dir = ekMount(t, ekActivate(t, e, v), unix.MS_RDONLY)
		kerneltest.CheckFiles(t, dir, total)
		t.Logf("%d files written across the growth read back", total)
	})
	t.Run("block", func(t *testing.T) {
		e := ekOpen(t, ekBlockConfig(t))
		ekIs(t, "grow a pool on block devices", e.Grow(t.Context(), 4*ekGiB), thinpool.ErrInvalidArgument)
	})
}

func ekCheckPoolSize(t testing.TB, ctl *dm.Control, e *thinpool.Engine, cfg thinpool.Config, data, metadata uint64) {
	t.Helper()
	st := ekStatus(t, ctl, cfg.PoolName)
	if got := st.DataTotal * thinpool.DefaultBlockSizeBytes; got != data {
		t.Fatalf("pool status says %d data bytes, want %d", got, data)
	}
	c, err := e.Capacity()
	if err != nil {
		t.Fatal(err)
	}
	if c.DataBytes != data || c.MetadataBytes != metadata || c.BudgetBytes != uint64(thinpool.DefaultOverprovisionRatio*float64(data)) {
		t.Fatalf("capacity %+v: want %d data bytes, %d metadata bytes and the budget to follow", c, data, metadata)
	}
	for _, f := range []struct {
		name string
		size uint64
	}{{ekDataFile, data}, {ekMetadataFile, metadata}} {
		fi, err := os.Stat(filepath.Join(cfg.StateDir, f.name))
		if err != nil || uint64(fi.Size()) != f.size {
			t.Fatalf("%s: %v, want %d bytes", f.name, err, f.size)
		}
	}
}

// --- Volumes ---

// Restores from a snapshot and clones of a volume are instant (no data is
// copied: the pool's data use does not move), may be larger than the
// source but not smaller, and do not depend on it: the origin and the
// snapshot can be deleted and the copies still read back, each with its
// own writes. A snapshot of an inactive volume keeps what it held.
func TestEngineCopies(t *testing.T) {
	ekEachKind(t, func(t *testing.T, cfg thinpool.Config) {
		e := ekOpen(t, cfg)
		a, b := ekPattern(11, ekMiB), ekPattern(12, ekMiB)
		src := ekCreate(t, e, "src", 4*ekMiB)
		ekWrite(t, e, src, 0, a)
		ekWrite(t, e, src, 3*ekMiB, b)
		snap := ekSnapshot(t, e, "snap", src.ID) // of an inactive volume
		if snap.SizeBytes != src.SizeBytes || snap.SourceID != src.ID || snap.Kind != thinpool.KindSnapshot {
			t.Fatalf("snapshot %+v of %+v", snap, src)
		}
		c0, err := e.Capacity()
		if err != nil {
			t.Fatal(err)
		}

		type copyCase struct {
			name   string
			source *thinpool.Volume
			ask    uint64
			want   uint64
		}
		var copies []*thinpool.Volume
		for _, tc := range []copyCase{
			{"restore", snap, 0, 4 * ekMiB},
			{"restore-larger", snap, 8 * ekMiB, 8 * ekMiB},
			{"clone", src, 0, 4 * ekMiB},
			{"clone-larger", src, 6*ekMiB + 1, 6*ekMiB + 64*ekKiB},
		} {
			c, err := e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: tc.name, SourceID: tc.source.ID, RequiredBytes: tc.ask})
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if c.SizeBytes != tc.want || c.SourceID != tc.source.ID {
				t.Fatalf("%s: %+v, want %d bytes from %s", tc.name, c, tc.want, tc.source.ID)
			}
			copies = append(copies, c)
		}
		for _, tc := range []copyCase{
			{name: "restore-smaller", source: snap, ask: 2 * ekMiB},
			{name: "clone-smaller", source: src, ask: 4*ekMiB - 64*ekKiB},
		} {
			_, err := e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: tc.name, SourceID: tc.source.ID, RequiredBytes: tc.ask, LimitBytes: tc.ask})
			ekIs(t, tc.name, err, thinpool.ErrOutOfRange)
		}
		c1, err := e.Capacity()
		if err != nil {
			t.Fatal(err)
		}
		if c1.DataUsedBytes != c0.DataUsedBytes {
			t.Fatalf("copies used data: %d bytes before, %d after; they should share the source's blocks", c0.DataUsedBytes, c1.DataUsedBytes)
		}

		// The source changes after the snapshot and the copies.
		ekWrite(t, e, src, 0, b)
		// Delete the origin, then read the snapshot and the copies.
		ekDelete(t, e, src)
		if _, err := e.Get(src.ID); !errors.Is(err, thinpool.ErrNotFound) {
			t.Fatalf("deleted origin: %v, want ErrNotFound", err)
		}
		want := map[int64][]byte{0: a, 3 * ekMiB: b}
		ekExpect(t, e, snap, want)
		for _, c := range copies {
			w := maps.Clone(want)
			if c.SizeBytes > 4*ekMiB {
				w[4*ekMiB] = make([]byte, c.SizeBytes-4*ekMiB) // the growth reads as zeros
			}
			ekExpect(t, e, c, w)
		}
		// Then the snapshot; the restores stand alone, and each copy
		// keeps its own writes.
		ekDelete(t, e, snap)
		ekWrite(t, e, copies[0], 0, ekPattern(13, ekMiB))
		ekExpect(t, e, copies[0], map[int64][]byte{0: ekPattern(13, ekMiB), 3 * ekMiB: b})
		for _, c := range copies[1:] {
			ekExpect(t, e, c, want)
		}
	})
}

// A snapshot of a mounted volume under concurrent writes holds exactly the
// files finished before it, intact, and none started after it; the volume
// goes on taking writes.
func TestEngineSnapshotUnderWrites(t *testing.T) {
	ekEachKind(t, func(t *testing.T, cfg thinpool.Config) {
		e := ekOpen(t, cfg)
		v := ekCreate(t, e, "busy", 64*ekMiB)
		dir := ekMkfsMount(t, ekActivate(t, e, v))
		w := kerneltest.StartFileWriter(t, dir)
		w.WaitFor(t, 20)

		before := w.Done()
		s := ekSnapshot(t, e, "busy-snap", v.ID)
		after := w.Done()
		w.WaitFor(t, after+20)
		total, err := w.Halt()
		if err != nil {
			t.Fatalf("writer: %v", err)
		}
		ekUnmount(t, dir)
		ekDeactivate(t, e, v)

		_, err = e.Activate(t.Context(), s.ID, false)
		ekIs(t, "activate a snapshot writable", err, thinpool.ErrInvalidArgument)
		snapDir := ekMount(t, ekActivate(t, e, s), unix.MS_RDONLY)
		kerneltest.CheckFiles(t, snapDir, before)
		for i := after + 1; i < total; i++ {
			if _, err := os.Stat(kerneltest.FileName(snapDir, i)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("file %d, started after the snapshot, is in it (%v)", i, err)
			}
		}
		ekUnmount(t, snapDir)
		ekDeactivate(t, e, s)
		t.Logf("the snapshot holds the %d files finished before it; the volume went on to %d", before, total)
	})
}

// Expanding an active volume grows its device at once, and a mounted ext4
// on it can then be grown online; an inactive volume has the new size at
// its next activation. Smaller sizes change nothing; snapshots do not
// grow; the budget holds. A mounted volume is neither deactivated nor
// deleted: ErrInUse, naming the mount point.
func TestEngineExpand(t *testing.T) {
	ekEachKind(t, func(t *testing.T, cfg thinpool.Config) {
		e := ekOpen(t, cfg)
		v := ekCreate(t, e, "active", 32*ekMiB)
		node := ekActivate(t, e, v)
		dir := ekMkfsMount(t, node)
		if err := kerneltest.WriteSynced(filepath.Join(dir, "kept"), ekPattern(21, 100*ekKiB)); err != nil {
			t.Fatal(err)
		}

		for what, err := range map[string]error{"deactivate": e.Deactivate(t.Context(), v.ID), "delete": e.Delete(t.Context(), v.ID)} {
			ekIs(t, what+" a mounted volume", err, thinpool.ErrInUse)
			if !strings.Contains(err.Error(), "mounted at "+dir) {
				t.Fatalf("%s a mounted volume: %v, want the mount point %s named", what, err, dir)
			}
		}

		var before unix.Statfs_t
		if err := unix.Statfs(dir, &before); err != nil {
			t.Fatal(err)
		}
		g, err := e.Expand(t.Context(), v.ID, 64*ekMiB)
		if err != nil || g.SizeBytes != 64*ekMiB {
			t.Fatalf("expand the active volume: %+v %v", g, err)
		}
		if got := ekDeviceSize(t, node); got != 64*ekMiB {
			t.Fatalf("the active device is %d bytes after the expansion, want %d", got, 64*ekMiB)
		}
		if got, err := e.DeviceBytes(v.ID); err != nil || got != 64*ekMiB {
			t.Fatalf("DeviceBytes after the expansion = %d, %v; want %d", got, err, 64*ekMiB)
		}
		if out, err := exec.Command("resize2fs", node).CombinedOutput(); err != nil {
			t.Fatalf("online resize2fs %s: %v: %s", node, err, out)
		}
		var after unix.Statfs_t
		if err := unix.Statfs(dir, &after); err != nil {
			t.Fatal(err)
		}
		if after.Blocks*uint64(after.Bsize) <= 48*ekMiB || after.Blocks <= before.Blocks {
			t.Fatalf("the mounted ext4 is %d blocks of %d bytes after resize2fs (was %d)", after.Blocks, after.Bsize, before.Blocks)
		}
		if got, err := os.ReadFile(filepath.Join(dir, "kept")); err != nil || !bytes.Equal(got, ekPattern(21, 100*ekKiB)) {
			t.Fatalf("a file did not survive the online growth: %v", err)
		}
		ekUnmount(t, dir)
		ekDeactivate(t, e, v)
		if got, err := e.DeviceBytes(v.ID); !errors.Is(err, thinpool.ErrNotFound) {
			t.Fatalf("DeviceBytes of a deactivated volume = %d, %v; want ErrNotFound", got, err)
		}

		i := ekCreate(t, e, "inactive", 16*ekMiB)
		g, err = e.Expand(t.Context(), i.ID, 20*ekMiB+1)
		if err != nil || g.SizeBytes != 20*ekMiB+64*ekKiB {
			t.Fatalf("expand the inactive volume: %+v %v, want %d bytes", g, err, 20*ekMiB+64*ekKiB)
		}
		if got, err := e.Get(i.ID); err != nil || got.SizeBytes != g.SizeBytes {
			t.Fatalf("record after the expansion: %+v %v", got, err)
		}
		if got := ekDeviceSize(t, ekActivate(t, e, i)); got != g.SizeBytes {
			t.Fatalf("the next activation is %d bytes, want %d", got, g.SizeBytes)
		}
		ekDeactivate(t, e, i)

		if got, err := e.Expand(t.Context(), i.ID, ekMiB); err != nil || got.SizeBytes != g.SizeBytes {
			t.Fatalf("expand to less: %+v %v, want it unchanged", got, err)
		}
		s := ekSnapshot(t, e, "snap", i.ID)
		_, err = e.Expand(t.Context(), s.ID, 64*ekMiB)
		ekIs(t, "expand a snapshot", err, thinpool.ErrInvalidArgument)
		c, err := e.Capacity()
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Expand(t.Context(), i.ID, g.SizeBytes+c.AvailableBytes+ekMiB)
		ekIs(t, "expand past the budget", err, thinpool.ErrOverBudget)
		if got, err := e.Get(i.ID); err != nil || got.SizeBytes != g.SizeBytes {
			t.Fatalf("a refused expansion changed the record: %+v %v", got, err)
		}
	})
}

var ekSafeDMName = regexp.MustCompile(`^[a-z0-9-]+$`)

// Activate and Deactivate are idempotent; snapshots activate read-only;
// dm devices are named with safe characters, whatever the volume's name;
// a volume a process holds open is not deleted (ErrInUse), one active and
// not open is deactivated and deleted, and so is a snapshot active
// read-only; unknown ids are ErrNotFound.
func TestEngineActivation(t *testing.T) {
	cfg := ekLoopConfig(t, 128*ekMiB)
	ctl := ekControl(t)
	e := ekOpen(t, cfg)
	v := ekCreate(t, e, "pvc/ä ü\n../$(x) \"y\"", 4*ekMiB)
	s := ekSnapshot(t, e, "snap\x01*?", v.ID)

	p1 := ekActivate(t, e, v)
	p2 := ekActivate(t, e, v)
	if p1 != p2 {
		t.Fatalf("activating an active volume gave %s, then %s", p1, p2)
	}
	if p, err := e.DevicePath(v.ID); err != nil || p != p1 {
		t.Fatalf("device path %q %v, want %s", p, err, p1)
	}
	held, err := os.Open(p1)
	if err != nil {
		t.Fatal(err)
	}
	err = e.Delete(t.Context(), v.ID)
	held.Close()
	ekIs(t, "delete a volume a process holds open", err, thinpool.ErrInUse)
	if !strings.Contains(err.Error(), "by a process") {
		t.Fatalf("delete a volume a process holds open: %v, want the holder said", err)
	}
	// A device stacked on it, as LVM or dm-crypt would make: named.
	vinfo, err := ctl.Info(cfg.PoolName + "-" + v.ID)
	if err != nil {
		t.Fatal(err)
	}
	stacked := "ekstack-" + strings.TrimPrefix(cfg.PoolName, "ek-")
	if _, err := ctl.Activate(stacked, "", []dm.Target{{Length: 4 * ekMiB / 512, Type: "linear", Params: vinfo.Dev.String() + " 0"}},
		dm.ActivateOptions{}); err != nil {
		t.Fatalf("stack a linear device on the volume: %v", err)
	}
	err = e.Delete(t.Context(), v.ID)
	if rmErr := ctl.Remove(stacked, dm.RemoveOptions{}); rmErr != nil {
		t.Fatalf("remove the stacked device: %v", rmErr)
	}
	ekIs(t, "delete a volume a stacked device holds", err, thinpool.ErrInUse)
	if !strings.Contains(err.Error(), "(dm device "+stacked+")") {
		t.Fatalf("delete a volume a stacked device holds: %v, want %s named", err, stacked)
	}

	sp := ekActivate(t, e, s)
	if info, err := ctl.Info(cfg.PoolName + "-" + s.ID); err != nil || !info.ReadOnly {
		t.Fatalf("the snapshot's dm device is %+v (%v), want it read-only", info, err)
	}
	if f, err := os.OpenFile(sp, os.O_WRONLY, 0); err == nil {
		_, err = f.WriteAt(make([]byte, 4096), 0)
		f.Close()
		if err == nil {
			t.Fatalf("the snapshot's device %s takes writes", sp)
		}
	}
	devs, err := ctl.List()
	if err != nil {
		t.Fatal(err)
	}
	var ours int
	for _, d := range devs {
		if !strings.HasPrefix(d.Name, cfg.PoolName) {
			continue
		}
		ours++
		if !ekSafeDMName.MatchString(d.Name) {
			t.Errorf("dm device name %q has unsafe characters", d.Name)
		}
		if d.UUID != "" && !strings.HasPrefix(d.UUID, "CSI-THIN-") {
			t.Errorf("dm device %s has uuid %q, not marked as csi-thin's", d.Name, d.UUID)
		}
	}
	if ours != 3 {
		t.Fatalf("%d dm devices of the pool, want the pool, the volume and the snapshot", ours)
	}

	for range 2 {
		ekDeactivate(t, e, v)
		ekDeactivate(t, e, s)
	}
	if _, err := e.DevicePath(v.ID); !errors.Is(err, thinpool.ErrNotFound) {
		t.Fatalf("device path of an inactive volume: %v, want ErrNotFound", err)
	}
	const unknown = "vol-000000000000000000000000"
	_, err = e.Activate(t.Context(), unknown, false)
	ekIs(t, "activate an unknown id", err, thinpool.ErrNotFound)
	ekIs(t, "delete an unknown id", e.Delete(t.Context(), unknown), thinpool.ErrNotFound)
	// Active and not open, as a failed stage or a lost unstage leaves
	// them: deleted, devices and all.
	ekActivate(t, e, v)
	ekActivate(t, e, s)
	ekDelete(t, e, s)
	ekDelete(t, e, v)
	for _, id := range []string{v.ID, s.ID} {
		if info, err := ctl.Info(cfg.PoolName + "-" + id); err != nil || info.Exists {
			t.Fatalf("%s deleted, its device is %+v (%v)", id, info, err)
		}
	}
}

// The mode is part of an active device's state: a resize keeps it, and
// activating in the other mode reloads a device nothing holds open and
// refuses one held open, leaving its mode as it was.
func TestEngineActivationMode(t *testing.T) {
	cfg := ekLoopConfig(t, 128*ekMiB)
	ctl := ekControl(t)
	e := ekOpen(t, cfg)
	v := ekCreate(t, e, "v", 4*ekMiB)
	name := cfg.PoolName + "-" + v.ID
	check := func(when string, path string, readOnly bool, size uint64) {
		t.Helper()
		info, err := ctl.Info(name)
		if err != nil || info.ReadOnly != readOnly {
			t.Fatalf("%s: the device is %+v (%v), want read-only %v", when, info, err, readOnly)
		}
		if got := ekDeviceSize(t, path); got != size {
			t.Fatalf("%s: the device is %d bytes, want %d", when, got, size)
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteAt(ekPattern(3, 4096), 0)
			if err == nil {
				err = f.Sync()
			}
			f.Close()
		}
		if readOnly && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EROFS) {
			t.Fatalf("%s: a write to the read-only device: %v, want EPERM or EROFS", when, err)
		}
		if !readOnly && err != nil {
			t.Fatalf("%s: a write to the read-write device: %v", when, err)
		}
	}

	p, err := e.Activate(t.Context(), v.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Activate(t.Context(), v.ID, true)
	held.Close()
	ekIs(t, "activate read-only a device held open read-write", err, thinpool.ErrInUse)
	check("refused", p, false, 4*ekMiB)

	if _, err := e.Activate(t.Context(), v.ID, true); err != nil {
		t.Fatalf("activate read-only a read-write device nothing holds: %v", err)
	}
	check("reloaded read-only", p, true, 4*ekMiB)
	if _, err := e.Expand(t.Context(), v.ID, 8*ekMiB); err != nil {
		t.Fatal(err)
	}
	check("expanded", p, true, 8*ekMiB)
	if _, err := e.Activate(t.Context(), v.ID, false); err != nil {
		t.Fatalf("activate read-write a read-only device nothing holds: %v", err)
	}
	check("reloaded read-write", p, false, 8*ekMiB)
	ekDelete(t, e, v)
}

// List pages are stable: with volumes deleted and created between pages,
// every volume that lives through the listing is listed exactly once.
// Names are looked up per kind, and creating a name again returns the
// volume that has it when its source, parameters and size fit the
// request, ErrExists otherwise.
func TestEngineListAndNames(t *testing.T) {
	cfg := ekLoopConfig(t, 128*ekMiB)
	ctl := ekControl(t)
	e := ekOpen(t, cfg)
	const n = 10
	for i := range n {
		ekCreate(t, e, fmt.Sprintf("v%02d", i), ekMiB)
	}
	all, next, err := e.List(thinpool.KindVolume, "", 0)
	if err != nil || len(all) != n || next != "" {
		t.Fatalf("list all: %d volumes, next %q, %v", len(all), next, err)
	}
	ids := make([]string, n)
	for i, v := range all {
		ids[i] = v.ID
	}
	if !slices.IsSorted(ids) {
		t.Fatalf("volumes not listed in id order: %v", ids)
	}
	snap := ekSnapshot(t, e, all[0].Name, all[0].ID) // a snapshot may share a volume's name

	// Between pages: delete one already listed and two not yet listed,
	// and create two more.
	deletedUnseen := map[string]bool{ids[5]: true, ids[8]: true}
	seen := map[string]int{}
	var pages [][]string
	token := ""
	for page := 0; ; page++ {
		vs, next, err := e.List(thinpool.KindVolume, token, 3)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		if len(vs) > 3 {
			t.Fatalf("page %d has %d volumes, max 3", page, len(vs))
		}
		var p []string
		for _, v := range vs {
			seen[v.ID]++
			p = append(p, v.ID)
		}
		pages = append(pages, p)
		if page == 0 {
			ekDelete(t, e, all[1])
			for id := range deletedUnseen {
				ekDelete(t, e, &thinpool.Volume{ID: id})
			}
			ekCreate(t, e, "late-a", ekMiB)
			ekCreate(t, e, "late-b", ekMiB)
		}
		if next == "" {
			break
		}
		token = next
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("%s listed %d times (pages %v)", id, k, pages)
		}
		if deletedUnseen[id] {
			t.Errorf("%s, deleted before its page, was listed", id)
		}
	}
	for i, id := range ids {
		if i != 1 && !deletedUnseen[id] && seen[id] != 1 {
			t.Errorf("survivor %s was skipped (pages %v)", id, pages)
		}
	}
	if _, _, err := e.List(thinpool.KindVolume, snap.ID, 3); !errors.Is(err, thinpool.ErrInvalidToken) {
		t.Errorf("a snapshot id as a volume list token: %v, want ErrInvalidToken", err)
	}
	if ss, _, err := e.List(thinpool.KindSnapshot, "", 0); err != nil || len(ss) != 1 || ss[0].ID != snap.ID {
		t.Errorf("snapshots: %+v %v, want only %s", ss, err, snap.ID)
	}

	// Names.
	v3, err := e.GetByName(thinpool.KindVolume, all[3].Name)
	if err != nil || v3.ID != ids[3] {
		t.Fatalf("volume %s: %+v %v, want %s", all[3].Name, v3, err, ids[3])
	}
	if got, err := e.GetByName(thinpool.KindSnapshot, all[0].Name); err != nil || got.ID != snap.ID {
		t.Fatalf("snapshot %s: %+v %v", all[0].Name, got, err)
	}
	_, err = e.GetByName(thinpool.KindSnapshot, v3.Name)
	ekIs(t, "snapshot named like a volume", err, thinpool.ErrNotFound)
	_, err = e.GetByName(thinpool.KindVolume, all[1].Name)
	ekIs(t, "deleted volume by name", err, thinpool.ErrNotFound)

	tx := ekStatus(t, ctl, cfg.PoolName).TransactionID
	for _, tc := range []struct {
		name string
		req  thinpool.CreateRequest
		want error
	}{
		{"same size", thinpool.CreateRequest{Name: v3.Name, RequiredBytes: ekMiB}, nil},
		{"same size once rounded", thinpool.CreateRequest{Name: v3.Name, RequiredBytes: ekMiB - 1}, nil},
		{"a smaller size it holds", thinpool.CreateRequest{Name: v3.Name, RequiredBytes: 64 * ekKiB}, nil},
		{"other size", thinpool.CreateRequest{Name: v3.Name, RequiredBytes: 2 * ekMiB}, thinpool.ErrExists},
		{"a limit under its size", thinpool.CreateRequest{Name: v3.Name, LimitBytes: ekMiB - 64*ekKiB}, thinpool.ErrExists},
		{"other source", thinpool.CreateRequest{Name: v3.Name, RequiredBytes: ekMiB, SourceID: snap.ID}, thinpool.ErrExists},
		{"other parameters", thinpool.CreateRequest{Name: v3.Name, RequiredBytes: ekMiB, Parameters: map[string]string{"fsType": "xfs"}}, thinpool.ErrExists},
	} {
		got, err := e.CreateVolume(t.Context(), tc.req)
		if !errors.Is(err, tc.want) || (tc.want == nil && got.ID != v3.ID) {
			t.Errorf("create %s again with %s: %+v %v, want %v", v3.Name, tc.name, got, err, tc.want)
		}
	}
	if got, err := e.CreateSnapshot(t.Context(), snap.Name, all[0].ID, nil); err != nil || got.ID != snap.ID {
		t.Errorf("snapshot %s again of the same volume: %+v %v, want %s", snap.Name, got, err, snap.ID)
	}
	_, err = e.CreateSnapshot(t.Context(), snap.Name, ids[3], nil)
	ekIs(t, "snapshot again of another volume", err, thinpool.ErrExists)
	if got := ekStatus(t, ctl, cfg.PoolName).TransactionID; got != tx {
		t.Errorf("repeated and refused creates moved the pool's transaction id from %d to %d", tx, got)
	}
}

// The overprovisioning budget and the data reserve are two limits with
// two errors: a create larger than the budget has left is ErrOverBudget,
// and any create while the pool's free data is below the reserve is
// ErrNoSpace.
func TestEngineCapacityErrors(t *testing.T) {
	cfg := ekLoopConfig(t, 64*ekMiB)
	cfg.OverprovisionRatio = 2 // a budget of 128 MiB
	e := ekOpen(t, cfg)
	big := ekCreate(t, e, "big", 100*ekMiB)
	c, err := e.Capacity()
	if err != nil || c.BudgetBytes != 128*ekMiB || c.PromisedBytes != 100*ekMiB || c.AvailableBytes != 28*ekMiB {
		t.Fatalf("capacity %+v %v: want a 128 MiB budget, 100 MiB promised, 28 MiB available", c, err)
	}
	_, err = e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: "over", RequiredBytes: 28*ekMiB + 1})
	ekIs(t, "create over the budget", err, thinpool.ErrOverBudget)
	if errors.Is(err, thinpool.ErrNoSpace) {
		t.Fatalf("over the budget is also ErrNoSpace: %v", err)
	}
	_, err = e.CreateSnapshot(t.Context(), "over", big.ID, nil)
	ekIs(t, "snapshot over the budget", err, thinpool.ErrOverBudget)
	fits := ekCreate(t, e, "fits", 28*ekMiB)
	ekDelete(t, e, fits)

	// Write 62 of the pool's 64 MiB: under the 5% (3.2 MiB) reserve, short
	// of full.
	if err := ekFill(ekActivate(t, e, big), 62, 31); err != nil {
		t.Fatal(err)
	}
	ekDeactivate(t, e, big)
	c, err = e.Capacity()
	if err != nil || c.DataUsedBytes != 62*ekMiB || c.AvailableBytes != 0 {
		t.Fatalf("capacity %+v %v: want 62 MiB used and nothing available", c, err)
	}
	if err := e.Health(); err != nil {
		t.Fatalf("a pool under its reserve but not full is unhealthy: %v", err)
	}
	_, err = e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: "small", RequiredBytes: ekMiB})
	ekIs(t, "create below the reserve", err, thinpool.ErrNoSpace)
	if errors.Is(err, thinpool.ErrOverBudget) || !strings.Contains(err.Error(), "reserve") {
		t.Fatalf("below the reserve: %v, want only ErrNoSpace, naming the reserve", err)
	}
	_, err = e.CreateSnapshot(t.Context(), "small", big.ID, nil)
	ekIs(t, "snapshot below the reserve", err, thinpool.ErrNoSpace)

	ekDelete(t, e, big)
	ekCreate(t, e, "small", ekMiB)
}

// A create costs one create_thin and one set_transaction_id (the pool's
// transaction id moves by exactly one), one durable commit of the state
// database (its bbolt transaction id moves by exactly one), and starts no
// process (PATH is empty, and no child process is reaped). Snapshots,
// copies and deletes cost the same.
func TestEngineCreateCost(t *testing.T) {
	ekEachKind(t, func(t *testing.T, cfg thinpool.Config) {
		ctl := ekControl(t)
		e := ekOpen(t, cfg)
		db := filepath.Join(cfg.StateDir, ekDBFile)
		t.Setenv("PATH", "")

		children := ekChildren(t)
		var v *thinpool.Volume
		steps := []struct {
			name string
			op   func() error
		}{
			{"create", func() (err error) {
				v, err = e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: "v", RequiredBytes: 8 * ekMiB})
				return err
			}},
			{"create again", func() error {
				_, err := e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: "w", RequiredBytes: ekMiB})
				return err
			}},
			{"snapshot", func() error { _, err := e.CreateSnapshot(t.Context(), "s", v.ID, nil); return err }},
			{"clone", func() error {
				_, err := e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: "c", SourceID: v.ID})
				return err
			}},
			{"delete", func() error { return e.Delete(t.Context(), v.ID) }},
		}
		for _, step := range steps {
			tx, btx := ekStatus(t, ctl, cfg.PoolName).TransactionID, ekBoltTxID(t, db)
			if err := step.op(); err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			if got := ekStatus(t, ctl, cfg.PoolName).TransactionID; got != tx+1 {
				t.Errorf("%s moved the pool's transaction id from %d to %d, want one step", step.name, tx, got)
			}
			if got := ekBoltTxID(t, db); got != btx+1 {
				t.Errorf("%s committed the state database %d times, want once", step.name, got-btx)
			}
		}
		if got := ekChildren(t); got != children {
			t.Errorf("the engine started processes: children's page faults went from %d to %d", children, got)
		}
		// The check sees processes when there are some.
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatal(err)
		}
		if ekChildren(t) == children {
			t.Fatalf("a child process did not show in RUSAGE_CHILDREN: the check above proves nothing")
		}
	})
}

// ekChildren sums the page faults of every child process reaped so far:
// any process started and waited for adds to it.
func ekChildren(t testing.TB) int64 {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		t.Fatal(err)
	}
	return ru.Minflt + ru.Majflt
}

// ekBoltTxID is the transaction id of the bbolt database at path, the
// larger of its two meta pages' (go.etcd.io/bbolt/internal/common: a
// 16-byte page header, then magic, version, page size, flags, the root
// bucket (16), freelist, pgid, txid). Every committed write transaction
// moves it by one.
func ekBoltTxID(t testing.TB, path string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var best uint64
	pageSize := int64(0)
	for i := int64(0); i < 2; i++ {
		buf := make([]byte, 80)
		if _, err := f.ReadAt(buf, i*pageSize); err != nil {
			t.Fatal(err)
		}
		if magic := binary.NativeEndian.Uint32(buf[16:]); magic != 0xED0CDAED {
			t.Fatalf("%s: meta page %d has magic %#x: not a bbolt database the test understands", path, i, magic)
		}
		pageSize = int64(binary.NativeEndian.Uint32(buf[24:]))
		best = max(best, binary.NativeEndian.Uint64(buf[64:]))
	}
	return best
}
