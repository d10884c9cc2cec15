package devmapper_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

func TestSentinelErrorsFromTheKernel(t *testing.T) {
	poolKinds(t, func(t *testing.T, p *testPool) {
		name, _ := p.thin(t, 1, 1<<20)
		cases := []struct {
			what     string
			err      error
			sentinel error
			errno    unix.Errno
		}{
			{"create_thin of an id in use", p.ctl.CreateThin(p.name, 1), dm.ErrExists, unix.EEXIST},
			{"create_snap onto an id in use", p.ctl.CreateSnap(p.name, 1, 1), dm.ErrExists, unix.EEXIST},
			{"create of a taken dm name", func() error { _, err := p.ctl.Create(name, ""); return err }(), dm.ErrExists, unix.EBUSY},
			{"remove of a missing device", p.ctl.Remove("csi-thin-test-missing", dm.RemoveOptions{}), dm.ErrNotFound, unix.ENXIO},
			{"status of a missing device", func() error { _, err := p.ctl.Status("csi-thin-test-missing", false); return err }(), dm.ErrNotFound, unix.ENXIO},
			{"delete of a thin id that does not exist", p.ctl.DeleteThin(p.name, 99), dm.ErrNotFound, unix.ENODATA},
			{"message to a missing pool", p.ctl.CreateThin("csi-thin-test-missing", 1), dm.ErrNotFound, unix.ENXIO},
			{"remove of an open device", p.ctl.Remove(p.name, dm.RemoveOptions{}), dm.ErrBusy, unix.EBUSY},
			{"delete of an active thin device", p.ctl.DeleteThin(p.name, 1), dm.ErrBusy, unix.EBUSY},
		}
		for _, c := range cases {
			if !errors.Is(c.err, c.sentinel) || !errors.Is(c.err, c.errno) {
				t.Errorf("%s: got %v, want %v with errno %v", c.what, c.err, c.sentinel, c.errno)
				continue
			}
			for _, other := range []error{dm.ErrExists, dm.ErrNotFound, dm.ErrBusy} {
				if other != c.sentinel && errors.Is(c.err, other) {
					t.Errorf("%s: %v also matches %v", c.what, c.err, other)
				}
			}
			var e *dm.Error
			if !errors.As(c.err, &e) || e.Op == "" || e.Device == "" {
				t.Errorf("%s: %v does not say which operation on which device failed", c.what, c.err)
			}
		}
		// Refused before any ioctl.
		for _, err := range []error{
			p.ctl.CreateThin(p.name, dm.MaxThinID+1),
			func() error { _, err := p.ctl.Create(strings.Repeat("x", dm.MaxNameLen+1), ""); return err }(),
			func() error { _, err := p.ctl.Create("a/b", ""); return err }(),
		} {
			if !errors.Is(err, dm.ErrInvalidArgument) {
				t.Errorf("got %v, want ErrInvalidArgument", err)
			}
		}
	})
}

func TestDeviceQueries(t *testing.T) {
	p := newLoopPool(t, 256<<20)
	ctl := p.ctl
	if v := ctl.Version(); v[0] != 4 || v[1] < 27 {
		t.Fatalf("interface version %s", v)
	}
	tv, err := ctl.TargetVersions()
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"thin-pool", "thin", "linear"} {
		if _, ok := tv[typ]; !ok {
			t.Errorf("target %s missing from %v", typ, tv)
		}
	}

	// The pool's table reads back as it was built, and its deps are its
	// two devices.
	table, err := ctl.Table(p.name)
	if err != nil || len(table) != 1 || table[0].Type != "thin-pool" || table[0].Length != p.dataSectors {
		t.Fatalf("pool table %+v, %v", table, err)
	}
	parsed, err := dm.ParsePoolParams(table[0].Params)
	if err != nil || parsed != p.table {
		t.Fatalf("pool table params %q parse to %+v (%v), want %+v", table[0].Params, parsed, err, p.table)
	}
	deps, err := ctl.Deps(p.name)
	if err != nil || len(deps) != 2 {
		t.Fatalf("pool deps %v, %v", deps, err)
	}
	got := map[string]bool{deps[0].String(): true, deps[1].String(): true}
	if !got[p.table.DataDev] || !got[p.table.MetadataDev] {
		t.Fatalf("pool deps %v, want %s and %s", deps, p.table.DataDev, p.table.MetadataDev)
	}

	// A table of several targets: two thin devices laid end to end.
	for _, id := range []uint32{1, 2} {
		if err := ctl.CreateThin(p.name, id); err != nil {
			t.Fatal(err)
		}
	}
	multi := p.name + "-multi"
	targets := []dm.Target{
		{Start: 0, Length: 2048, Type: "thin", Params: fmt.Sprintf("%s 1", p.dev)},
		{Start: 2048, Length: 4096, Type: "thin", Params: fmt.Sprintf("%s 2", p.dev)},
	}
	dev, err := ctl.Activate(multi, "CSI-THIN-TEST-multi", targets, dm.ActivateOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("activate two-target device: %v", err)
	}
	if table, err := ctl.Table(multi); err != nil || len(table) != 2 || table[0] != targets[0] || table[1] != targets[1] {
		t.Fatalf("two-target table %+v, %v", table, err)
	}
	status, err := ctl.Status(multi, false)
	if err != nil || len(status) != 2 || status[1].Start != 2048 || status[1].Params != "0 -" {
		t.Fatalf("two-target status %+v, %v", status, err)
	}
	info, err := ctl.Info(multi)
	if err != nil || !info.Exists || !info.LiveTable || info.InactiveTable || !info.ReadOnly ||
		info.Suspended || info.TargetCount != 2 || info.Dev != dev || info.UUID != "CSI-THIN-TEST-multi" || info.Name != multi {
		t.Fatalf("info %+v, %v", info, err)
	}
	if err := ctl.Load(multi, targets[:1], true); err != nil {
		t.Fatal(err)
	}
	if info, _ := ctl.Info(multi); !info.InactiveTable {
		t.Fatalf("a loaded table is not reported inactive: %+v", info)
	}
	if inactive, err := ctl.InactiveTable(multi); err != nil || len(inactive) != 1 {
		t.Fatalf("inactive table %+v, %v", inactive, err)
	}
	if err := ctl.ClearInactive(multi); err != nil {
		t.Fatal(err)
	}
	if err := ctl.Suspend(multi, dm.SuspendOptions{NoFlush: true, SkipFreeze: true}); err != nil {
		t.Fatal(err)
	}
	if info, _ := ctl.Info(multi); !info.Suspended || info.InactiveTable {
		t.Fatalf("after suspend: %+v", info)
	}
	if err := ctl.Resume(multi, 0); err != nil {
		t.Fatal(err)
	}

	list, err := ctl.List()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]dm.Device{}
	for _, d := range list {
		found[d.Name] = d
	}
	if d, ok := found[multi]; !ok || d.Dev != dev || d.UUID != "CSI-THIN-TEST-multi" {
		t.Fatalf("list %+v lacks %s (%s)", list, multi, dev)
	}
	if d, ok := found[p.name]; !ok || d.Dev != p.dev {
		t.Fatalf("list %+v lacks the pool", list)
	}
	if info, err := ctl.Info("csi-thin-test-missing"); err != nil || info.Exists {
		t.Fatalf("info of a missing device: %+v, %v", info, err)
	}
}

func TestWaitEventOnLowWaterMark(t *testing.T) {
	p := newLoopPool(t, 64<<20)
	blocks := p.dataSectors / blockSectors
	// Raise an event as soon as fewer than all but two blocks are free.
	p.table.LowWaterMark = blocks - 2
	if err := p.ctl.ReloadPool(p.name, p.table, p.dataSectors); err != nil {
		t.Fatal(err)
	}
	info, err := p.ctl.Info(p.name)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan dm.Info, 1)
	errs := make(chan error, 1)
	go func() {
		i, err := p.ctl.WaitEvent(p.name, info.EventNr)
		if err != nil {
			errs <- err
			return
		}
		got <- i
	}()
	select {
	case i := <-got:
		t.Fatalf("WaitEvent returned before any event: %+v", i)
	case <-time.After(200 * time.Millisecond):
	}
	_, node := p.thin(t, 1, 32<<20/sectorSize)
	writeAt(t, node, 0, fill(1, 4*blockSectors*sectorSize))
	select {
	case i := <-got:
		if i.EventNr == info.EventNr {
			t.Fatalf("event number did not move: %+v", i)
		}
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(time.Minute):
		t.Fatal("no event after crossing the low water mark")
	}
}

// BenchmarkThinCreateDelete measures create_thin and delete, the two pool
// messages behind every volume create and delete. Run it with
// -test.benchtime=1000x to create and delete 1,000 thin devices.
func BenchmarkThinCreateDelete(b *testing.B) {
	p := newLoopPool(b, 1<<30)
	b.Run("create_thin", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := p.ctl.CreateThin(p.name, uint32(i)); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		for i := 0; i < b.N; i++ {
			if err := p.ctl.DeleteThin(p.name, uint32(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("delete", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := p.ctl.CreateThin(p.name, uint32(i)); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := p.ctl.DeleteThin(p.name, uint32(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("create_activate_remove_delete", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			id := uint32(i)
			name := fmt.Sprintf("%s-b%d", p.name, i)
			if err := p.ctl.CreateThin(p.name, id); err != nil {
				b.Fatal(err)
			}
			if _, err := p.ctl.ActivateThin(name, "", dm.ThinTable{PoolDev: p.dev.String(), DeviceID: id}, 1<<21, false); err != nil {
				b.Fatal(err)
			}
			if err := p.ctl.Remove(name, dm.RemoveOptions{}); err != nil {
				b.Fatal(err)
			}
			if err := p.ctl.DeleteThin(p.name, id); err != nil {
				b.Fatal(err)
			}
		}
	})
}
