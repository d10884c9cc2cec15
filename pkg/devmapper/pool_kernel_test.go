package devmapper_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/csi-thin/csi-thin/internal/kerneltest"
	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

const (
	blockSectors = 128 // 64 KiB data blocks
	sectorSize   = 512
)

// testPool is a live thin-pool for one test, removed with everything on it
// when the test ends.
type testPool struct {
	ctl         *dm.Control
	name        string
	dev         dm.Dev
	table       dm.PoolTable
	dataSectors uint64
	dataLoop    *dm.LoopDevice // nil on block devices
	dataFile    string
}

func openControl(t testing.TB) *dm.Control {
	t.Helper()
	kerneltest.Require(t)
	ctl, err := dm.Open()
	if err != nil {
		t.Fatalf("open control: %v", err)
	}
	t.Cleanup(func() { ctl.Close() })
	return ctl
}

// poolKinds runs f once on a pool over loop devices on sparse files and
// once on a pool over the harness's block devices.
func poolKinds(t *testing.T, f func(t *testing.T, p *testPool)) {
	t.Run("loop", func(t *testing.T) { f(t, newLoopPool(t, 1<<30)) })
	t.Run("block", func(t *testing.T) { f(t, newBlockPool(t)) })
}

func poolName(t testing.TB) string {
	n := "csi-thin-test-" + strings.ReplaceAll(t.Name(), "/", "-")
	if len(n) > 100 {
		n = n[:100]
	}
	return n
}

func newLoopPool(t testing.TB, dataBytes int64) *testPool {
	ctl := openControl(t)
	dataFile := kerneltest.SparseFile(t, "data", dataBytes)
	metaFile := kerneltest.SparseFile(t, "meta", 64<<20)
	data, err := dm.AttachLoop(dataFile, dm.LoopOptions{})
	if err != nil {
		t.Fatalf("attach data: %v", err)
	}
	t.Cleanup(func() { detach(t, data) })
	meta, err := dm.AttachLoop(metaFile, dm.LoopOptions{})
	if err != nil {
		t.Fatalf("attach metadata: %v", err)
	}
	t.Cleanup(func() { detach(t, meta) })
	p := startPool(t, ctl, meta.DevNo(), data.DevNo(), uint64(dataBytes)/sectorSize)
	p.dataLoop, p.dataFile = data, dataFile
	return p
}

func detach(t testing.TB, l *dm.LoopDevice) {
	if err := l.Detach(); err != nil {
		t.Errorf("detach %s: %v", l.Path, err)
	}
}

func newBlockPool(t testing.TB) *testPool {
	ctl := openControl(t)
	devs := kerneltest.BlockDevices(t, 2)
	data, meta := devs[0], devs[1]
	// A pool formats its metadata only when the superblock is zeroed.
	zero(t, meta, 0, 1<<20)
	size, err := dm.BlockDeviceSize(data)
	if err != nil {
		t.Fatal(err)
	}
	return startPool(t, ctl, devNo(t, meta), devNo(t, data), size/sectorSize)
}

func devNo(t testing.TB, path string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return dm.DevFromUint64(st.Rdev).String()
}

func zero(t testing.TB, path string, off, n int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, n), off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func startPool(t testing.TB, ctl *dm.Control, meta, data string, dataSectors uint64) *testPool {
	t.Helper()
	p := &testPool{
		ctl:         ctl,
		name:        poolName(t),
		table:       dm.PoolTable{MetadataDev: meta, DataDev: data, DataBlockSize: blockSectors, LowWaterMark: 0},
		dataSectors: dataSectors,
	}
	dev, err := ctl.CreatePool(p.name, "CSI-THIN-TEST-"+p.name, p.table, dataSectors)
	if err != nil {
		t.Fatalf("create pool: %v", err)
	}
	p.dev = dev
	t.Cleanup(func() { removeAll(t, ctl, p.name) })
	return p
}

// removeAll removes the pool and every device whose table uses it.
func removeAll(t testing.TB, ctl *dm.Control, pool string) {
	info, err := ctl.Info(pool)
	if err != nil || !info.Exists {
		return
	}
	devs, err := ctl.List()
	if err != nil {
		t.Errorf("list: %v", err)
		return
	}
	for _, d := range devs {
		deps, err := ctl.Deps(d.Name)
		if err != nil {
			continue
		}
		for _, dep := range deps {
			if dep == info.Dev {
				if err := ctl.Remove(d.Name, dm.RemoveOptions{}); err != nil {
					t.Errorf("remove %s: %v", d.Name, err)
				}
			}
		}
	}
	if err := ctl.Remove(pool, dm.RemoveOptions{}); err != nil {
		t.Errorf("remove pool %s: %v", pool, err)
	}
}

// thin creates thin id in the pool and activates it as a device of the
// given size, returning the device's node.
func (p *testPool) thin(t testing.TB, id uint32, sectors uint64) (string, string) {
	t.Helper()
	if err := p.ctl.CreateThin(p.name, id); err != nil {
		t.Fatalf("create_thin %d: %v", id, err)
	}
	return p.activate(t, id, sectors, "")
}

// activate activates thin id as "<pool>-<id>" and returns its name and node.
func (p *testPool) activate(t testing.TB, id uint32, sectors uint64, external string) (string, string) {
	t.Helper()
	name := fmt.Sprintf("%s-%d", p.name, id)
	dev, err := p.ctl.ActivateThin(name, "", dm.ThinTable{PoolDev: p.dev.String(), DeviceID: id, ExternalOrigin: external}, sectors, false)
	if err != nil {
		t.Fatalf("activate thin %d: %v", id, err)
	}
	node, err := dm.DeviceNode(dev.Major, dev.Minor)
	if err != nil {
		t.Fatalf("node of %s: %v", dev, err)
	}
	return name, node
}

func (p *testPool) deactivate(t testing.TB, name string) {
	t.Helper()
	if err := p.ctl.Remove(name, dm.RemoveOptions{}); err != nil {
		t.Fatalf("remove %s: %v", name, err)
	}
}

func (p *testPool) status(t testing.TB) dm.PoolStatus {
	t.Helper()
	st, err := p.ctl.PoolStatus(p.name)
	if err != nil {
		t.Fatalf("pool status: %v", err)
	}
	return st
}

// fill is n bytes that differ for every seed and offset.
func fill(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed ^ byte(i) ^ byte(i>>8) ^ byte(i>>16)
	}
	return b
}

func writeAt(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatalf("write %s at %d: %v", path, off, err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func readAt(t testing.TB, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatalf("read %s at %d: %v", path, off, err)
	}
	return b
}

func mkfsMount(t testing.TB, node string) string {
	t.Helper()
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-E", "nodiscard", node).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v: %s", node, err, out)
	}
	return mount(t, node, 0, "")
}

func mount(t testing.TB, node string, flags uintptr, data string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount(node, dir, "ext4", flags, data); err != nil {
		t.Fatalf("mount %s: %v", node, err)
	}
	return dir
}

func unmount(t testing.TB, dir string) {
	t.Helper()
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatalf("unmount %s: %v", dir, err)
	}
}

func TestPoolThinWriteRead(t *testing.T) {
	poolKinds(t, func(t *testing.T, p *testPool) {
		const size = 64 << 20
		st := p.status(t)
		if st.TransactionID != 0 || st.DataUsed != 0 || st.DataTotal != p.dataSectors/blockSectors || st.Mode != dm.PoolModeReadWrite {
			t.Fatalf("new pool status %+v", st)
		}
		if err := st.Healthy(); err != nil {
			t.Fatalf("new pool is not healthy: %v", err)
		}
		// Two thin devices, each with its own pattern, read back after
		// deactivation so nothing comes from the page cache.
		for id := uint32(1); id <= 2; id++ {
			name, node := p.thin(t, id, size/sectorSize)
			writeAt(t, node, 0, fill(byte(id), 1<<20))
			writeAt(t, node, size-(1<<20), fill(byte(id+10), 1<<20))
			p.deactivate(t, name)
		}
		for id := uint32(1); id <= 2; id++ {
			name, node := p.activate(t, id, size/sectorSize, "")
			if !bytes.Equal(readAt(t, node, 0, 1<<20), fill(byte(id), 1<<20)) ||
				!bytes.Equal(readAt(t, node, size-(1<<20), 1<<20), fill(byte(id+10), 1<<20)) {
				t.Fatalf("thin %d does not read back what was written", id)
			}
			if !bytes.Equal(readAt(t, node, 8<<20, 4096), make([]byte, 4096)) {
				t.Fatalf("thin %d: a never-written block is not zero", id)
			}
			ts, err := p.ctl.ThinStatus(name)
			if err != nil {
				t.Fatal(err)
			}
			if ts.MappedSectors != 2*(1<<20)/sectorSize || !ts.HasHighestMapped || ts.HighestMappedSector != size/sectorSize-1 {
				t.Fatalf("thin %d status %+v", id, ts)
			}
		}
		if used := p.status(t).DataUsed; used != 2*2*(1<<20)/(blockSectors*sectorSize) {
			t.Fatalf("pool data used = %d blocks, want 64", used)
		}
	})
}

// A reload whose table the pool refuses as it resumes (a data device
// smaller than the metadata records) leaves the old table live and the
// pool running, not suspended with its volumes' I/O hanging.
func TestReloadRefusedAtResumeKeepsTheOldTable(t *testing.T) {
	poolKinds(t, func(t *testing.T, p *testPool) {
		_, node := p.thin(t, 1, 8<<20/sectorSize)
		want := fill(7, 1<<20)
		writeAt(t, node, 0, want)

		err := p.ctl.ReloadPool(p.name, p.table, p.dataSectors/2)
		if err == nil {
			t.Fatal("reloading the pool with half its data device succeeded")
		}
		t.Logf("the pool refused the smaller table: %v", err)
		info, err := p.ctl.Info(p.name)
		if err != nil {
			t.Fatal(err)
		}
		if info.Suspended {
			t.Fatal("the pool is left suspended after a refused reload")
		}
		ts, err := p.ctl.Table(p.name)
		if err != nil || len(ts) != 1 || ts[0].Length != p.dataSectors {
			t.Fatalf("live table after a refused reload: %+v %v, want the old one of %d sectors", ts, err, p.dataSectors)
		}
		if st := p.status(t); st.Usable() != nil {
			t.Fatalf("pool after a refused reload: %v", st.Usable())
		}
		writeAt(t, node, 1<<20, want) // I/O goes through: nothing hangs
		if got := readAt(t, node, 0, len(want)); !bytes.Equal(got, want) {
			t.Fatal("data written before the refused reload reads back changed")
		}
	})
}
