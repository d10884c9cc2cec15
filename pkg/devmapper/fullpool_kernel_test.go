package devmapper_test

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// noFlushStatus reads the pool's status without the commit a status read
// otherwise makes.
func (p *testPool) noFlushStatus(t testing.TB) dm.PoolStatus {
	t.Helper()
	ts, err := p.ctl.Status(p.name, true)
	if err != nil || len(ts) != 1 {
		t.Fatalf("pool status (noflush): %v %v", ts, err)
	}
	st, err := dm.ParsePoolStatus(ts[0].Params)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// writeUntilFull writes MiB after MiB to a device with O_DIRECT until a
// write fails, and returns the error.
func writeUntilFull(t testing.TB, path string, maxMiB int) error {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT|unix.O_DSYNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	for i := range maxMiB {
		copy(buf, fill(byte(i), len(buf)))
		if _, err := f.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// A pool out of data space takes the messages csi-thin sends (create_thin,
// delete, set_transaction_id), and the commit that follows a delete that
// frees blocks puts it back in write mode: a status read that does not
// commit already shows rw, with no resume or reload. A delete that frees
// nothing leaves it out of data space.
func TestOutOfDataSpacePoolTakesMessages(t *testing.T) {
	p := newLoopPool(t, 16<<20)
	p.table.Features.ErrorIfNoSpace = true
	if err := p.ctl.ReloadPool(p.name, p.table, p.dataSectors); err != nil {
		t.Fatalf("reload with error_if_no_space: %v", err)
	}
	name1, node1 := p.thin(t, 1, 16<<20/sectorSize)
	writeAt(t, node1, 0, fill(1, 8<<20))
	p.deactivate(t, name1)
	_, node2 := p.thin(t, 2, 64<<20/sectorSize)
	if err := writeUntilFull(t, node2, 64); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("writing past the end of the pool: %v, want ENOSPC", err)
	}
	st := p.status(t)
	if st.Mode != dm.PoolModeOutOfDataSpace {
		t.Fatalf("pool mode %q after filling it, want out_of_data_space", st.Mode)
	}
	for _, step := range []struct {
		what string
		f    func() error
	}{
		{"set_transaction_id", func() error { return p.ctl.SetTransactionID(p.name, st.TransactionID, st.TransactionID+1) }},
		{"create_thin", func() error { return p.ctl.CreateThin(p.name, 3) }},
		{"delete of an empty thin device", func() error { return p.ctl.DeleteThin(p.name, 3) }},
	} {
		if err := step.f(); err != nil {
			t.Fatalf("%s on a pool out of data space: %v", step.what, err)
		}
		if got := p.noFlushStatus(t); got.Mode != dm.PoolModeOutOfDataSpace {
			t.Fatalf("pool mode %q after %s, which frees nothing: want still out_of_data_space", got.Mode, step.what)
		}
	}
	if err := p.ctl.DeleteThin(p.name, 1); err != nil {
		t.Fatalf("delete on a pool out of data space: %v", err)
	}
	got := p.noFlushStatus(t)
	if got.Mode != dm.PoolModeReadWrite || got.DataUsed >= got.DataTotal {
		t.Fatalf("pool mode %q, %d of %d blocks used after the delete's commit: want rw with free blocks", got.Mode, got.DataUsed, got.DataTotal)
	}
	t.Logf("after the delete, before any other commit: mode %s, %d of %d blocks used", got.Mode, got.DataUsed, got.DataTotal)
	if err := writeUntilFull(t, node2, 4); err != nil {
		t.Fatalf("write after the delete freed space: %v", err)
	}
}
