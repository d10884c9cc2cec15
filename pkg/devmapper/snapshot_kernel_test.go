package devmapper_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/csi-thin/csi-thin/internal/kerneltest"
	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// halt stops the writer and returns how many files it finished.
func halt(t testing.TB, w *kerneltest.FileWriter) int {
	t.Helper()
	n, err := w.Halt()
	if err != nil {
		t.Fatalf("writer: %v", err)
	}
	return n
}

// snapshotActive takes a consistent snapshot of an active origin: suspend
// (freezing its filesystem), create_snap, resume.
func snapshotActive(t testing.TB, p *testPool, originName string, id, originID uint32) {
	t.Helper()
	if err := p.ctl.Suspend(originName, dm.SuspendOptions{}); err != nil {
		t.Fatalf("suspend %s: %v", originName, err)
	}
	info, err := p.ctl.Info(originName)
	if err != nil || !info.Suspended {
		t.Fatalf("origin not suspended: %+v %v", info, err)
	}
	snapErr := p.ctl.CreateSnap(p.name, id, originID)
	if err := p.ctl.Resume(originName, 0); err != nil {
		t.Fatalf("resume %s: %v", originName, err)
	}
	if snapErr != nil {
		t.Fatalf("create_snap %d of %d: %v", id, originID, snapErr)
	}
}

func TestSnapshotOfMountedDeviceUnderWrites(t *testing.T) {
	poolKinds(t, func(t *testing.T, p *testPool) {
		const size = 256 << 20
		name, node := p.thin(t, 1, size/sectorSize)
		dir := mkfsMount(t, node)
		w := kerneltest.StartFileWriter(t, dir)
		w.WaitFor(t, 20)

		before := w.Done()
		snapshotActive(t, p, name, 2, 1)
		after := w.Done()
		w.WaitFor(t, after+20) // the origin keeps taking writes after the snapshot
		total := halt(t, w)
		unmount(t, dir)

		_, snapNode := p.activate(t, 2, size/sectorSize, "")
		snapDir := mount(t, snapNode, unix.MS_RDONLY, "")
		defer unmount(t, snapDir)
		kerneltest.CheckFiles(t, snapDir, before)
		for i := after + 1; i < total; i++ {
			if _, err := os.Stat(kerneltest.FileName(snapDir, i)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("file %d, started after the snapshot, is in it (%v)", i, err)
			}
		}
		t.Logf("snapshot holds the %d files finished before it; the origin went on to %d", before, total)
	})
}

func TestSetTransactionIDIsCompareAndSwap(t *testing.T) {
	poolKinds(t, func(t *testing.T, p *testPool) {
		if err := p.ctl.SetTransactionID(p.name, 0, 1); err != nil {
			t.Fatalf("0 -> 1: %v", err)
		}
		err := p.ctl.SetTransactionID(p.name, 0, 2)
		if !errors.Is(err, dm.ErrTransactionMismatch) || !errors.Is(err, unix.EINVAL) {
			t.Fatalf("0 -> 2 on a pool at 1: got %v, want ErrTransactionMismatch with EINVAL", err)
		}
		if got := p.status(t).TransactionID; got != 1 {
			t.Fatalf("a failed swap changed the transaction id to %d", got)
		}
		if err := p.ctl.SetTransactionID(p.name, 1, 7); err != nil {
			t.Fatalf("1 -> 7: %v", err)
		}
		if got := p.status(t).TransactionID; got != 7 {
			t.Fatalf("transaction id = %d, want 7", got)
		}
	})
}

func TestGrowLoopPoolWhileMounted(t *testing.T) {
	const small, large = 256 << 20, 768 << 20
	p := newLoopPool(t, small)
	name, node := p.thin(t, 1, 2*large/sectorSize) // overprovisioned
	dir := mkfsMount(t, node)
	w := kerneltest.StartFileWriter(t, dir)
	w.WaitFor(t, 10)

	if err := os.Truncate(p.dataFile, large); err != nil {
		t.Fatal(err)
	}
	if err := p.dataLoop.RefreshCapacity(); err != nil {
		t.Fatalf("refresh loop capacity: %v", err)
	}
	if got, err := p.dataLoop.Size(); err != nil || got != large {
		t.Fatalf("loop size after refresh = %d, %v", got, err)
	}
	if err := p.ctl.ReloadPool(p.name, p.table, large/sectorSize); err != nil {
		t.Fatalf("reload pool: %v", err)
	}
	n := w.Done()
	w.WaitFor(t, n+20) // the mounted device kept working across the reload
	total := halt(t, w)

	st := p.status(t)
	if st.DataTotal != large/(blockSectors*sectorSize) {
		t.Fatalf("pool data total = %d blocks after growth, want %d", st.DataTotal, large/(blockSectors*sectorSize))
	}
	if err := st.Healthy(); err != nil {
		t.Fatalf("pool unhealthy after growth: %v", err)
	}
	unmount(t, dir)
	dir = mount(t, node, unix.MS_RDONLY, "")
	defer unmount(t, dir)
	kerneltest.CheckFiles(t, dir, total)
	// A smaller table than the data the pool has is refused, and the
	// pool keeps its size.
	if err := p.ctl.ReloadPool(p.name, p.table, small/sectorSize); err == nil {
		t.Fatalf("shrinking the pool was accepted")
	}
	if got := p.status(t).DataTotal; got != large/(blockSectors*sectorSize) {
		t.Fatalf("a refused shrink changed the pool to %d blocks", got)
	}
	_ = name
}

func TestRemoveOpenDeviceAndDeferredRemove(t *testing.T) {
	poolKinds(t, func(t *testing.T, p *testPool) {
		name, node := p.thin(t, 1, 64<<20/sectorSize)
		f, err := os.Open(node)
		if err != nil {
			t.Fatal(err)
		}
		err = p.ctl.Remove(name, dm.RemoveOptions{})
		if !errors.Is(err, dm.ErrBusy) || !errors.Is(err, unix.EBUSY) {
			f.Close()
			t.Fatalf("remove of an open device: got %v, want ErrBusy", err)
		}
		if err := p.ctl.Remove(name, dm.RemoveOptions{Deferred: true}); err != nil {
			f.Close()
			t.Fatalf("deferred remove: %v", err)
		}
		info, err := p.ctl.Info(name)
		if err != nil || !info.Exists || !info.DeferredRemove || info.OpenCount != 1 {
			f.Close()
			t.Fatalf("after deferred remove, info = %+v, %v", info, err)
		}
		f.Close()
		waitGone(t, p.ctl, name)

		// A cancelled deferred remove leaves the device in place.
		name, node = p.activate(t, 1, 64<<20/sectorSize, "")
		f, err = os.Open(node)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.ctl.Remove(name, dm.RemoveOptions{Deferred: true}); err != nil {
			t.Fatal(err)
		}
		if err := p.ctl.CancelDeferredRemove(name); err != nil {
			t.Fatalf("cancel deferred remove: %v", err)
		}
		f.Close()
		info, err = p.ctl.Info(name)
		if err != nil || !info.Exists || info.DeferredRemove {
			t.Fatalf("after cancel and close, info = %+v, %v", info, err)
		}
		if err := p.ctl.CancelDeferredRemove(name); err != nil {
			t.Fatalf("cancel with none pending: %v", err)
		}
		p.deactivate(t, name)
		if err := p.ctl.CancelDeferredRemove(name); !errors.Is(err, dm.ErrNotFound) {
			t.Fatalf("cancel on a removed device: got %v, want ErrNotFound", err)
		}
	})
}

// waitGone waits for a deferred remove, which the kernel runs on a
// workqueue after the last close.
func waitGone(t testing.TB, ctl *dm.Control, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := ctl.Info(name)
		if err != nil {
			t.Fatal(err)
		}
		if !info.Exists {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("device still there 10s after its last opener closed: %+v", info)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExternalOrigin(t *testing.T) {
	poolKinds(t, func(t *testing.T, p *testPool) {
		const size = 16 << 20
		// The origin: a read-only loop device over a file full of a pattern.
		originFile := filepath.Join(t.TempDir(), "origin")
		if err := os.WriteFile(originFile, fill(0xA5, size), 0o600); err != nil {
			t.Fatal(err)
		}
		origin, err := dm.AttachLoop(originFile, dm.LoopOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}

		if err := p.ctl.CreateThin(p.name, 1); err != nil {
			t.Fatal(err)
		}
		name, node := p.activate(t, 1, size/sectorSize, origin.DevNo())
		own := fill(0x3C, 1<<20)
		writeAt(t, node, 4<<20, own)
		p.deactivate(t, name)
		name, node = p.activate(t, 1, size/sectorSize, origin.DevNo())

		want := fill(0xA5, size)
		copy(want[4<<20:], own)
		got := readAt(t, node, 0, size)
		p.deactivate(t, name)
		detach(t, origin)
		if !bytes.Equal(got, want) {
			t.Fatalf("thin over an external origin does not read origin + own writes")
		}
		if got, err := os.ReadFile(originFile); err != nil || !bytes.Equal(got, fill(0xA5, size)) {
			t.Fatalf("the external origin was changed (%v)", err)
		}
	})
}

// A metadata snapshot shows in the pool status while it is held; the pool
// holds one at a time, and a release with none held is refused.
func TestMetadataSnapReserveRelease(t *testing.T) {
	poolKinds(t, func(t *testing.T, p *testPool) {
		_, node := p.thin(t, 1, 8<<20/sectorSize)
		writeAt(t, node, 0, fill(3, 1<<20))
		if st := p.status(t); st.HasHeldMetadataRoot {
			t.Fatalf("a new pool holds a metadata snapshot at %d", st.HeldMetadataRoot)
		}
		if err := p.ctl.ReserveMetadataSnap(p.name); err != nil {
			t.Fatalf("reserve_metadata_snap: %v", err)
		}
		st := p.status(t)
		if !st.HasHeldMetadataRoot || st.HeldMetadataRoot == 0 {
			t.Fatalf("after reserve_metadata_snap the status holds no snapshot: %+v", st)
		}
		err := p.ctl.ReserveMetadataSnap(p.name)
		if !errors.Is(err, dm.ErrBusy) || !errors.Is(err, unix.EBUSY) {
			t.Fatalf("a second reserve_metadata_snap: got %v, want ErrBusy", err)
		}
		if got := p.status(t); got.HeldMetadataRoot != st.HeldMetadataRoot {
			t.Fatalf("the refused reserve moved the held root from %d to %d", st.HeldMetadataRoot, got.HeldMetadataRoot)
		}
		if err := p.ctl.ReleaseMetadataSnap(p.name); err != nil {
			t.Fatalf("release_metadata_snap: %v", err)
		}
		if st := p.status(t); st.HasHeldMetadataRoot {
			t.Fatalf("after release_metadata_snap the status still holds %d", st.HeldMetadataRoot)
		}
		if err := p.ctl.ReleaseMetadataSnap(p.name); !errors.Is(err, unix.EINVAL) {
			t.Fatalf("release_metadata_snap with none held: got %v, want EINVAL", err)
		}
	})
}
