package thinpool

import (
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

// testEngine is an engine over a fake kernel whose pool has 1 GiB of
// data in 64 KiB blocks, with its database in a temporary directory.
func testEngine(t *testing.T, fk *fakeKernel) *Engine {
	t.Helper()
	cfg, err := Config{StateDir: t.TempDir(), PoolSizeBytes: gib}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return startTestEngine(t, fk, cfg)
}

func startTestEngine(t *testing.T, fk *fakeKernel, cfg Config) *Engine {
	t.Helper()
	s, err := openStore(cfg.dbPath())
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(fk, s, cfg, "pool", dm.Dev{Major: 254, Minor: 0})
	e.deviceNode = func(d dm.Dev) (string, error) { return "/dev/fake-" + d.String(), nil }
	e.holders = func(d dm.Dev) ([]string, error) { return []string{"mounted at /fake/" + d.String()}, nil }
	e.fs = fk.filesystems()
	if err := e.start(); err != nil {
		s.close()
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// restart closes the engine as a crash would leave it and starts a new one
// on the same database and pool.
func restart(t *testing.T, e *Engine, fk *fakeKernel) *Engine {
	t.Helper()
	e.Close()
	return startTestEngine(t, fk, e.cfg)
}

// checkAgreement fails unless the records name exactly the pool's thin ids
// and the database's transaction id is the pool's.
func checkAgreement(t *testing.T, e *Engine, fk *fakeKernel) {
	t.Helper()
	records := map[uint32]string{}
	for _, kind := range []Kind{KindVolume, KindSnapshot} {
		vs, _, err := e.List(kind, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			if other, dup := records[v.ThinID]; dup {
				t.Fatalf("thin %d is named by %s and %s", v.ThinID, other, v.ID)
			}
			records[v.ThinID] = v.ID
		}
	}
	pool := fk.thinIDs()
	for id := range pool {
		if _, ok := records[id]; !ok {
			t.Errorf("leak: thin %d is in the pool but no record names it", id)
		}
	}
	for id, v := range records {
		if !pool[id] {
			t.Errorf("loss: %s names thin %d, which the pool does not have", v, id)
		}
	}
	if got := e.committed.Load(); got != fk.txid {
		t.Errorf("engine at transaction %d, pool at %d", got, fk.txid)
	}
}

func TestCreateCostsOneMessageOneTransactionOneCommit(t *testing.T) {
	fk := newFakeKernel()
	e := testEngine(t, fk)
	for i := 0; i < 5; i++ {
		before, statusBefore, quickBefore := e.store.commits.Load(), fk.count("status"), fk.count("status-nocommit")
		if _, err := e.CreateVolume(t.Context(), CreateRequest{Name: fmt.Sprint(i), RequiredBytes: mib}); err != nil {
			t.Fatal(err)
		}
		if n := e.store.commits.Load() - before; n != 1 {
			t.Fatalf("create %d made %d durable commits, want 1", i, n)
		}
		// A status read commits the pool's metadata: health and capacity
		// share one.
		if n := fk.count("status") - statusBefore; n != 1 {
			t.Fatalf("create %d read the pool's status %d times, want 1", i, n)
		}
		// And one read that does not commit, which says whether the
		// kernel kept the transaction id.
		if n := fk.count("status-nocommit") - quickBefore; n != 1 {
			t.Fatalf("create %d read the pool's status without a commit %d times, want 1", i, n)
		}
	}
	if fk.count("create_thin") != 5 || fk.count("set_transaction_id") != 5 || fk.txid != 5 {
		t.Fatalf("5 creates: %d create_thin, %d set_transaction_id, pool at transaction %d",
			fk.count("create_thin"), fk.count("set_transaction_id"), fk.txid)
	}
}

func TestSnapshotRestoreClone(t *testing.T) {
	fk := newFakeKernel()
	e := testEngine(t, fk)
	v, _ := e.CreateVolume(t.Context(), CreateRequest{Name: "v", RequiredBytes: gib})
	s, err := e.CreateSnapshot(t.Context(), "s", v.ID, nil)
	if err != nil || s.SizeBytes != gib || s.SourceID != v.ID || s.Kind != KindSnapshot {
		t.Fatalf("snapshot %+v, %v", s, err)
	}
	if again, err := e.CreateSnapshot(t.Context(), "s", v.ID, nil); err != nil || again.ID != s.ID {
		t.Fatalf("same snapshot again: %+v %v", again, err)
	}
	other, _ := e.CreateVolume(t.Context(), CreateRequest{Name: "other", RequiredBytes: gib})
	if _, err := e.CreateSnapshot(t.Context(), "s", other.ID, nil); !errors.Is(err, ErrExists) {
		t.Fatalf("snapshot name reused for another volume: %v", err)
	}
	if _, err := e.CreateSnapshot(t.Context(), "of-a-snapshot", s.ID, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("snapshot of a snapshot: %v", err)
	}
	if _, err := e.CreateSnapshot(t.Context(), "s2", "vol-missing", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("snapshot of a missing volume: %v", err)
	}

	cases := []struct {
		name string
		req  CreateRequest
		want error
		size uint64
	}{
		{"restore at the source's size", CreateRequest{Name: "r1", SourceID: s.ID}, nil, gib},
		{"restore larger", CreateRequest{Name: "r2", SourceID: s.ID, RequiredBytes: 2 * gib}, nil, 2 * gib},
		{"restore, required below the source: the source's size", CreateRequest{Name: "r3", SourceID: s.ID, RequiredBytes: gib / 2}, nil, gib},
		{"restore, limit below the source", CreateRequest{Name: "r4", SourceID: s.ID, RequiredBytes: gib / 2, LimitBytes: gib / 2}, ErrOutOfRange, 0},
		{"clone", CreateRequest{Name: "c1", SourceID: v.ID, RequiredBytes: gib}, nil, gib},
		{"missing source", CreateRequest{Name: "c2", SourceID: "snap-missing"}, ErrNotFound, 0},
		{"restore of a volume's id", CreateRequest{Name: "r5", SourceID: v.ID, SourceKind: KindSnapshot}, ErrNotFound, 0},
		{"clone of a snapshot's id", CreateRequest{Name: "c3", SourceID: s.ID, SourceKind: KindVolume}, ErrNotFound, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := e.CreateVolume(t.Context(), c.req)
			if c.want != nil {
				if !errors.Is(err, c.want) {
					t.Fatalf("got %v, want %v", err, c.want)
				}
				return
			}
			if err != nil || r.SizeBytes != c.size || r.SourceID != c.req.SourceID {
				t.Fatalf("got %+v, %v", r, err)
			}
		})
	}
	// Deleting the origin leaves its snapshot and clone.
	if err := e.Delete(t.Context(), v.ID); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"r1", "c1"} {
		if _, err := e.GetByName(KindVolume, name); err != nil {
			t.Fatalf("%s after its source was deleted: %v", name, err)
		}
	}
	if _, err := e.Get(s.ID); err != nil {
		t.Fatalf("snapshot after its volume was deleted: %v", err)
	}
	checkAgreement(t, e, fk)
}

func TestSnapshotSuspendsAnActiveOriginOnlyAroundCreateSnap(t *testing.T) {
	fk := newFakeKernel()
	e := testEngine(t, fk)
	v, _ := e.CreateVolume(t.Context(), CreateRequest{Name: "v", RequiredBytes: gib})
	if _, err := e.Activate(t.Context(), v.ID, false); err != nil {
		t.Fatal(err)
	}
	// The fake panics on create_snap of an active origin not suspended.
	if _, err := e.CreateSnapshot(t.Context(), "s", v.ID, nil); err != nil {
		t.Fatal(err)
	}
	if info, _ := fk.Info(e.dmName(v.ID)); info.Suspended {
		t.Fatal("origin left suspended")
	}
	if fk.count("suspend") != 1 || fk.count("resume") != 1 {
		t.Fatalf("%d suspends, %d resumes", fk.count("suspend"), fk.count("resume"))
	}
	// An inactive origin is not suspended at all.
	w, _ := e.CreateVolume(t.Context(), CreateRequest{Name: "w", RequiredBytes: gib})
	if _, err := e.CreateSnapshot(t.Context(), "t", w.ID, nil); err != nil || fk.count("suspend") != 1 {
		t.Fatalf("snapshot of an inactive volume: %v, %d suspends", err, fk.count("suspend"))
	}
	// A failed create_snap still resumes the origin, and nothing is left.
	fk.failNext("create_snap", kerr("message create_snap", "pool", unix.ENOSPC))
	if _, err := e.CreateSnapshot(t.Context(), "u", v.ID, nil); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("got %v, want ENOSPC", err)
	}
	if info, _ := fk.Info(e.dmName(v.ID)); info.Suspended {
		t.Fatal("origin left suspended after a failed snapshot")
	}
	checkAgreement(t, e, fk)
}

func TestActivateDeactivateDelete(t *testing.T) {
	fk := newFakeKernel()
	e := testEngine(t, fk)
	v, _ := e.CreateVolume(t.Context(), CreateRequest{Name: "v", RequiredBytes: gib})
	a1, err := e.ActivateDevice(t.Context(), v.ID, false)
	if err != nil || !a1.Activated {
		t.Fatalf("first activate: %+v %v, want it activated", a1, err)
	}
	if a2, err := e.ActivateDevice(t.Context(), v.ID, false); err != nil || a2.Path != a1.Path || a2.Activated {
		t.Fatalf("second activate: %+v %v, want %q active before", a2, err, a1.Path)
	}
	fk.setOpen(e.dmName(v.ID), 1)
	for what, err := range map[string]error{"deactivate": e.Deactivate(t.Context(), v.ID), "delete": e.Delete(t.Context(), v.ID)} {
		if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "mounted at /fake/") {
			t.Fatalf("%s of an open volume: %v, want ErrInUse naming the mount", what, err)
		}
	}
	fk.setOpen(e.dmName(v.ID), 0)
	for i := 0; i < 2; i++ {
		if err := e.Deactivate(t.Context(), v.ID); err != nil {
			t.Fatalf("deactivate %d: %v", i, err)
		}
	}
	s, _ := e.CreateSnapshot(t.Context(), "s", v.ID, nil)
	if _, err := e.Activate(t.Context(), s.ID, false); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("read-write activation of a snapshot: %v", err)
	}
	if _, err := e.Activate(t.Context(), s.ID, true); err != nil {
		t.Fatalf("read-only activation of a snapshot: %v", err)
	}
	// Active but not open: deleted, and its device with it.
	if _, err := e.Activate(t.Context(), v.ID, false); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{v.ID, s.ID} {
		if err := e.Delete(t.Context(), id); err != nil {
			t.Fatalf("delete of %s, active and not open: %v", id, err)
		}
		if info, _ := fk.Info(e.dmName(id)); info.Exists {
			t.Fatalf("%s deleted, its device left active", id)
		}
	}
	if err := e.Delete(t.Context(), v.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := e.Activate(t.Context(), v.ID, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("activate of a deleted volume: %v", err)
	}
	checkAgreement(t, e, fk)
}

// The mode is part of an active device's state: a resize keeps it, and
// activating in the other mode reloads a device nothing has open and
// refuses an open one.
func TestActivationMode(t *testing.T) {
	fk := newFakeKernel()
	e := testEngine(t, fk)
	v, _ := e.CreateVolume(t.Context(), CreateRequest{Name: "v", RequiredBytes: gib})
	name := e.dmName(v.ID)
	readOnly := func() bool { info, _ := fk.Info(name); return info.ReadOnly }
	if _, err := e.Activate(t.Context(), v.ID, true); err != nil || !readOnly() {
		t.Fatalf("read-only activation: %v, read-only %v", err, readOnly())
	}
	if _, err := e.Expand(t.Context(), v.ID, 2*gib); err != nil || !readOnly() {
		t.Fatalf("expand: %v, read-only %v after it", err, readOnly())
	}
	fk.setOpen(name, 1)
	if _, err := e.Activate(t.Context(), v.ID, false); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("read-write activation of an open read-only device: %v, want ErrInUse", err)
	}
	if !readOnly() || fk.count("reload_thin") != 0 {
		t.Fatal("an open read-only device was reloaded")
	}
	fk.setOpen(name, 0)
	a, err := e.ActivateDevice(t.Context(), v.ID, false)
	if err != nil || a.Activated || readOnly() || fk.count("reload_thin") != 1 {
		t.Fatalf("read-write activation of a closed read-only device: %+v %v, read-only %v", a, err, readOnly())
	}
	if _, err := e.Activate(t.Context(), v.ID, false); err != nil || fk.count("reload_thin") != 1 {
		t.Fatalf("same mode again: %v, %d reloads", err, fk.count("reload_thin"))
	}
}

func TestExpand(t *testing.T) {
	fk := newFakeKernel()
	e := testEngine(t, fk)
	v, _ := e.CreateVolume(t.Context(), CreateRequest{Name: "v", RequiredBytes: gib})
	if _, err := e.Activate(t.Context(), v.ID, false); err != nil {
		t.Fatal(err)
	}
	g, err := e.Expand(t.Context(), v.ID, 2*gib+1)
	if err != nil || g.SizeBytes != 2*gib+64*kib {
		t.Fatalf("expand: %+v %v", g, err)
	}
	if ts, _ := fk.Table(e.dmName(v.ID)); ts[0].Length != g.SizeBytes/512 {
		t.Fatalf("active device is %d sectors, want %d", ts[0].Length, g.SizeBytes/512)
	}
	if same, err := e.Expand(t.Context(), v.ID, gib); err != nil || same.SizeBytes != g.SizeBytes {
		t.Fatalf("shrink request: %+v %v", same, err)
	}
	e = restart(t, e, fk)
	if got, _ := e.Get(v.ID); got.SizeBytes != g.SizeBytes {
		t.Fatalf("size after restart %d", got.SizeBytes)
	}
	s, _ := e.CreateSnapshot(t.Context(), "s", v.ID, nil)
	if _, err := e.Expand(t.Context(), s.ID, 4*gib); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("expand of a snapshot: %v", err)
	}
}

func TestCapacityRefusesPastBudgetAndReserve(t *testing.T) {
	fk := newFakeKernel() // 1 GiB of data; budget 10 GiB
	e := testEngine(t, fk)
	if _, err := e.CreateVolume(t.Context(), CreateRequest{Name: "a", RequiredBytes: 9 * gib}); err != nil {
		t.Fatal(err)
	}
	c, err := e.Capacity()
	if err != nil || c.BudgetBytes != 10*gib || c.PromisedBytes != 9*gib || c.AvailableBytes != gib {
		t.Fatalf("capacity %+v %v", c, err)
	}
	if _, err := e.CreateVolume(t.Context(), CreateRequest{Name: "b", RequiredBytes: gib + 64*kib}); !errors.Is(err, ErrOverBudget) || errors.Is(err, ErrNoSpace) {
		t.Fatalf("past the budget: %v", err)
	}
	if _, err := e.CreateVolume(t.Context(), CreateRequest{Name: "b", RequiredBytes: gib}); err != nil {
		t.Fatalf("up to the budget: %v", err)
	}
	if err := e.Delete(t.Context(), mustByName(t, e, "b").ID); err != nil {
		t.Fatal(err)
	}
	fk.mu.Lock()
	fk.status.DataUsed = fk.status.DataTotal * 96 / 100
	fk.mu.Unlock()
	if _, err := e.CreateVolume(t.Context(), CreateRequest{Name: "c", RequiredBytes: mib}); !errors.Is(err, ErrNoSpace) || errors.Is(err, ErrOverBudget) {
		t.Fatalf("data past the reserve: %v", err)
	}
	if c, _ := e.Capacity(); c.AvailableBytes != 0 {
		t.Fatalf("available %d with data past the reserve", c.AvailableBytes)
	}
	fk.mu.Lock()
	fk.status.DataUsed, fk.status.MetadataUsed = 0, fk.status.MetadataTotal*95/100
	fk.mu.Unlock()
	if _, err := e.CreateSnapshot(t.Context(), "s", mustByName(t, e, "a").ID, nil); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("metadata past the reserve: %v", err)
	}
	checkAgreement(t, e, fk)
}

func mustByName(t *testing.T, e *Engine, name string) *Volume {
	t.Helper()
	v, err := e.GetByName(KindVolume, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestListPagesAreStable(t *testing.T) {
	fk := newFakeKernel()
	e := testEngine(t, fk)
	all := map[string]bool{}
	for i := 0; i < 10; i++ {
		v, _ := e.CreateVolume(t.Context(), CreateRequest{Name: fmt.Sprint(i), RequiredBytes: mib})
		all[v.ID] = true
	}
	if _, err := e.CreateSnapshot(t.Context(), "s", mustByName(t, e, "0").ID, nil); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	deleted := map[string]bool{}
	token := ""
	for pages := 0; ; pages++ {
		vs, next, err := e.List(KindVolume, token, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) > 3 {
			t.Fatalf("page of %d", len(vs))
		}
		for _, v := range vs {
			if seen[v.ID] || deleted[v.ID] || v.Kind != KindVolume {
				t.Fatalf("%s listed twice, after its delete, or as a volume", v.ID)
			}
			seen[v.ID] = true
		}
		// Deleting a volume already listed, and one not yet listed,
		// between pages shifts nothing.
		for id := range all {
			if !deleted[id] && len(deleted) < 2*(pages+1) {
				if err := e.Delete(t.Context(), id); err != nil {
					t.Fatal(err)
				}
				deleted[id] = true
				break
			}
		}
		if next == "" {
			break
		}
		token = next
	}
	for id := range all {
		if !seen[id] && !deleted[id] {
			t.Errorf("%s was skipped", id)
		}
	}
	if _, _, err := e.List(KindVolume, "bogus", 3); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("bogus token: %v", err)
	}
	if _, _, err := e.List(KindSnapshot, "vol-0", 3); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("volume token for snapshots: %v", err)
	}
	snaps, _, err := e.List(KindSnapshot, "", 0)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots %v %v", snaps, err)
	}
}

// crashAt leaves the database and pool as a crash after step would, for a
// change to v: 1 intent recorded, 2 pool changed, 3 transaction id moved.
func crashAt(t *testing.T, e *Engine, fk *fakeKernel, v *Volume, step int) {
	t.Helper()
	committed := e.committed.Load()
	v.TxID = committed + 1
	if err := e.store.writeIntent(committed, of(v), nil); err != nil {
		t.Fatal(err)
	}
	if step >= 2 {
		var err error
		if v.State == stateDeleting {
			err = fk.DeleteThin("pool", v.ThinID)
		} else {
			err = fk.CreateThin("pool", v.ThinID)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if step >= 3 {
		if err := fk.SetTransactionID("pool", committed, committed+1); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecoveryAfterCrashAtEachStep(t *testing.T) {
	cases := []struct {
		op         string
		step       int
		wantExists bool // after recovery
	}{
		{"create", 1, false},
		{"create", 2, false},
		{"create", 3, true},
		{"delete", 1, false},
		{"delete", 2, false},
		{"delete", 3, false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s step %d", c.op, c.step), func(t *testing.T) {
			fk := newFakeKernel()
			e := testEngine(t, fk)
			keep, _ := e.CreateVolume(t.Context(), CreateRequest{Name: "keep", RequiredBytes: gib})
			var v *Volume
			if c.op == "create" {
				v = &Volume{ID: newID(KindVolume), Kind: KindVolume, Name: "x", SizeBytes: gib, State: stateCreating}
			} else {
				x, _ := e.CreateVolume(t.Context(), CreateRequest{Name: "x", RequiredBytes: gib})
				d := *x
				d.State = stateDeleting
				v = &d
			}
			crashAt(t, e, fk, v, c.step)
			e = restart(t, e, fk)
			checkAgreement(t, e, fk)
			got, err := e.GetByName(KindVolume, "x")
			if c.wantExists != (err == nil) {
				t.Fatalf("after recovery: %+v, %v; want exists=%v", got, err, c.wantExists)
			}
			if c.wantExists && got.ID != v.ID {
				t.Fatalf("recovered %s, want %s", got.ID, v.ID)
			}
			if _, err := e.Get(keep.ID); err != nil {
				t.Fatalf("an unrelated volume was lost: %v", err)
			}
			// The engine works on after recovery, and a retried create
			// returns one volume.
			r1, err := e.CreateVolume(t.Context(), CreateRequest{Name: "x", RequiredBytes: gib})
			if err != nil {
				t.Fatal(err)
			}
			if r2, _ := e.CreateVolume(t.Context(), CreateRequest{Name: "x", RequiredBytes: gib}); r2.ID != r1.ID {
				t.Fatalf("retried create gave %s, then %s", r1.ID, r2.ID)
			}
			checkAgreement(t, e, fk)
		})
	}
}

func TestStartRefusesADatabaseOfAnotherPool(t *testing.T) {
	fk := newFakeKernel()
	e := testEngine(t, fk)
	e.CreateVolume(t.Context(), CreateRequest{Name: "a", RequiredBytes: gib})
	e.Close()
	fk.txid = 7 // the pool has a history the database does not
	s, err := openStore(e.cfg.dbPath())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	e2 := newEngine(fk, s, e.cfg, "pool", dm.Dev{Major: 254})
	if err := e2.start(); !errors.Is(err, ErrStoreMismatch) {
		t.Fatalf("got %v, want ErrStoreMismatch", err)
	}
}

func TestFailuresMidChange(t *testing.T) {
	eio := kerr("message", "pool", unix.EIO)
	cases := []struct {
		name   string
		failOp string
		run    func(e *Engine) error
		// after the failure and one more operation, does "x" exist?
		wantX bool
	}{
		{"create_thin fails", "create_thin", func(e *Engine) error {
			_, err := e.CreateVolume(t.Context(), CreateRequest{Name: "x", RequiredBytes: gib})
			return err
		}, false},
		{"set_transaction_id fails after create_thin", "set_transaction_id", func(e *Engine) error {
			_, err := e.CreateVolume(t.Context(), CreateRequest{Name: "x", RequiredBytes: gib})
			return err
		}, false},
		{"delete fails", "delete", func(e *Engine) error { return e.Delete(t.Context(), mustByName2(e, "x")) }, true},
		{"set_transaction_id fails after delete", "set_transaction_id", func(e *Engine) error { return e.Delete(t.Context(), mustByName2(e, "x")) }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fk := newFakeKernel()
			e := testEngine(t, fk)
			if c.failOp == "delete" || c.name == "set_transaction_id fails after delete" {
				e.CreateVolume(t.Context(), CreateRequest{Name: "x", RequiredBytes: gib})
			}
			fk.failNext(c.failOp, eio)
			if err := c.run(e); !errors.Is(err, unix.EIO) {
				t.Fatalf("got %v, want the kernel's EIO", err)
			}
			if _, err := e.CreateVolume(t.Context(), CreateRequest{Name: "y", RequiredBytes: gib}); err != nil {
				t.Fatalf("the next change: %v", err)
			}
			if _, err := e.GetByName(KindVolume, "x"); (err == nil) != c.wantX {
				t.Fatalf("x exists: %v, want %v", err == nil, c.wantX)
			}
			checkAgreement(t, e, fk)
		})
	}
}

func mustByName2(e *Engine, name string) string {
	v, err := e.GetByName(KindVolume, name)
	if err != nil {
		return "vol-missing"
	}
	return v.ID
}

func TestUnhealthyPoolRefusesChanges(t *testing.T) {
	cases := []struct {
		name  string
		set   func(*dm.PoolStatus)
		state string
	}{
		{"read-only", func(s *dm.PoolStatus) { s.Mode = dm.PoolModeReadOnly }, StateReadOnly},
		{"out of data space and read-only", func(s *dm.PoolStatus) {
			s.Mode, s.DataUsed = dm.PoolModeReadOnly, s.DataTotal
		}, StateReadOnly},
		{"needs_check", func(s *dm.PoolStatus) { s.NeedsCheck = true }, StateNeedsCheck},
		{"fail", func(s *dm.PoolStatus) { *s = dm.PoolStatus{Fail: true} }, StateFail},
		{"error", func(s *dm.PoolStatus) { *s = dm.PoolStatus{Error: true} }, StateError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fk := newFakeKernel()
			e := testEngine(t, fk)
			v, _ := e.CreateVolume(t.Context(), CreateRequest{Name: "v", RequiredBytes: gib})
			fk.mu.Lock()
			c.set(&fk.status)
			fk.mu.Unlock()
			if err := e.Health(); !errors.Is(err, ErrUnhealthy) || PoolState(err) != c.state {
				t.Fatalf("health: %v (state %s), want ErrUnhealthy in state %s", err, PoolState(err), c.state)
			}
			if _, err := e.CreateVolume(t.Context(), CreateRequest{Name: "w", RequiredBytes: gib}); !errors.Is(err, ErrUnhealthy) {
				t.Fatalf("create on an unhealthy pool: %v", err)
			}
			if err := e.Delete(t.Context(), v.ID); !errors.Is(err, ErrUnhealthy) {
				t.Fatalf("delete on an unhealthy pool: %v", err)
			}
			if _, err := e.Get(v.ID); err != nil {
				t.Fatalf("reads still work: %v", err)
			}
			if n := len(fk.thinIDs()); n != 1 {
				t.Fatalf("pool has %d thin devices", n)
			}
		})
	}
}

// A pool out of data space takes deletes, of volumes and snapshots, and
// refuses what needs space (creates, snapshots, copies, expansions) with
// ErrNoSpace; an engine that starts on it recovers as usual.
func TestFullPoolTakesDeletesRefusesCreates(t *testing.T) {
	ctx := t.Context()
	fk := newFakeKernel()
	e := testEngine(t, fk)
	v, _ := e.CreateVolume(ctx, CreateRequest{Name: "v", RequiredBytes: gib})
	w, _ := e.CreateVolume(ctx, CreateRequest{Name: "w", RequiredBytes: gib})
	s, _ := e.CreateSnapshot(ctx, "s", v.ID, nil)
	fk.mu.Lock()
	fk.status.Mode, fk.status.DataUsed = dm.PoolModeOutOfDataSpace, fk.status.DataTotal
	fk.mu.Unlock()

	err := e.Health()
	if !errors.Is(err, ErrNoSpace) || errors.Is(err, ErrUnhealthy) || PoolState(err) != StateOutOfDataSpace {
		t.Fatalf("health of a full pool: %v (state %s), want ErrNoSpace, not ErrUnhealthy", err, PoolState(err))
	}
	if !strings.Contains(err.Error(), "delete volumes or snapshots") {
		t.Fatalf("health of a full pool does not say what to do: %v", err)
	}
	refused := map[string]func() error{
		"create":   func() error { _, err := e.CreateVolume(ctx, CreateRequest{Name: "x", RequiredBytes: gib}); return err },
		"snapshot": func() error { _, err := e.CreateSnapshot(ctx, "x", v.ID, nil); return err },
		"restore":  func() error { _, err := e.CreateVolume(ctx, CreateRequest{Name: "r", SourceID: s.ID}); return err },
		"clone":    func() error { _, err := e.CreateVolume(ctx, CreateRequest{Name: "c", SourceID: v.ID}); return err },
		"expand":   func() error { _, err := e.Expand(ctx, v.ID, 2*gib); return err },
	}
	for op, f := range refused {
		if err := f(); !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "out of data space") {
			t.Errorf("%s on a full pool: %v, want ErrNoSpace saying the pool is out of data space", op, err)
		}
	}
	if c, err := e.Capacity(); err != nil || c.AvailableBytes != 0 {
		t.Fatalf("capacity of a full pool %+v (%v): want nothing available", c, err)
	}
	if got, _ := e.Get(v.ID); got.SizeBytes != gib {
		t.Fatalf("a refused expansion changed %s: %+v", v.ID, got)
	}

	// The engine restarts on the full pool and still takes deletes.
	e = restart(t, e, fk)
	for _, id := range []string{s.ID, w.ID} {
		if err := e.Delete(ctx, id); err != nil {
			t.Fatalf("delete %s on a full pool: %v", id, err)
		}
		if _, err := e.Get(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s after its delete: %v", id, err)
		}
	}
	if c, _ := e.Capacity(); c.PromisedBytes != gib {
		t.Fatalf("promised %d bytes after the deletes, want the %d of the one volume left", c.PromisedBytes, uint64(gib))
	}
	checkAgreement(t, e, fk)
}

func TestStartResumesDevicesLeftSuspended(t *testing.T) {
	fk := newFakeKernel()
	e := testEngine(t, fk)
	v, _ := e.CreateVolume(t.Context(), CreateRequest{Name: "v", RequiredBytes: gib})
	e.Activate(t.Context(), v.ID, false)
	fk.Suspend(e.dmName(v.ID), dm.SuspendOptions{}) // as a crash mid-snapshot leaves it
	e = restart(t, e, fk)
	if info, _ := fk.Info(e.dmName(v.ID)); info.Suspended {
		t.Fatal("device still suspended after start")
	}
}

// TestConcurrentOperations runs 200 goroutines creating, snapshotting,
// restoring and deleting over 50 names at once, while others read the
// pool's capacity, usage and health, which take no lock; afterwards the
// records and the pool agree, and no name has two volumes.
func TestConcurrentOperations(t *testing.T) {
	fk := newFakeKernel()
	fk.status.DataTotal = 1 << 24 // room for everything
	e := testEngine(t, fk)
	const workers, names, ops = 200, 50, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	unexpected := []error{}
	var readers sync.WaitGroup
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for range 200 {
				_, cErr := e.Capacity()
				_, uErr := e.Usage()
				if err := errors.Join(cErr, uErr, e.Health()); err != nil {
					mu.Lock()
					unexpected = append(unexpected, err)
					mu.Unlock()
				}
			}
		}()
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed))
			for i := 0; i < ops; i++ {
				name := fmt.Sprint("n", r.Intn(names))
				var err error
				switch r.Intn(4) {
				case 0:
					_, err = e.CreateVolume(t.Context(), CreateRequest{Name: name, RequiredBytes: mib})
				case 1:
					if v, gerr := e.GetByName(KindVolume, name); gerr == nil {
						_, err = e.CreateSnapshot(t.Context(), name, v.ID, nil)
					}
				case 2:
					if s, gerr := e.GetByName(KindSnapshot, name); gerr == nil {
						_, err = e.CreateVolume(t.Context(), CreateRequest{Name: name + "-r", SourceID: s.ID})
					}
				case 3:
					kind := []Kind{KindVolume, KindSnapshot}[r.Intn(2)]
					if v, gerr := e.GetByName(kind, name); gerr == nil {
						err = e.Delete(t.Context(), v.ID)
					}
				}
				// Racing callers may find a source or victim gone, or a
				// name taken from another source: those are the answers
				// the caller deserves, not failures.
				if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrExists) {
					mu.Lock()
					unexpected = append(unexpected, err)
					mu.Unlock()
				}
			}
		}(int64(w))
	}
	wg.Wait()
	readers.Wait()
	for _, err := range unexpected {
		t.Error(err)
	}
	checkAgreement(t, e, fk)
	for _, kind := range []Kind{KindVolume, KindSnapshot} {
		vs, _, _ := e.List(kind, "", 0)
		byName := map[string]string{}
		for _, v := range vs {
			if other, dup := byName[v.Name]; dup {
				t.Fatalf("%s %q is both %s and %s", kind, v.Name, other, v.ID)
			}
			byName[v.Name] = v.ID
		}
	}
	e = restart(t, e, fk)
	checkAgreement(t, e, fk)
	t.Logf("%d pool transactions, %d thin devices left", fk.txid, len(fk.thinIDs()))
}

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"loop defaults", Config{StateDir: dir, PoolSizeBytes: gib}, true},
		{"relative state dir", Config{StateDir: "state", PoolSizeBytes: gib}, false},
		{"no state dir", Config{PoolSizeBytes: gib}, false},
		{"tiny loop pool", Config{StateDir: dir, PoolSizeBytes: mib}, false},
		{"data device without metadata", Config{StateDir: dir, DataDevice: "/dev/sdb"}, false},
		{"both devices", Config{StateDir: dir, DataDevice: "/dev/sdb", MetadataDevice: "/dev/sdc"}, true},
		{"block size not 64 KiB steps", Config{StateDir: dir, PoolSizeBytes: gib, BlockSizeBytes: 96 * kib}, false},
		{"block size 1 MiB", Config{StateDir: dir, PoolSizeBytes: gib, BlockSizeBytes: mib}, true},
		{"block size too large", Config{StateDir: dir, PoolSizeBytes: gib, BlockSizeBytes: 2 * gib}, false},
		{"ratio below 1", Config{StateDir: dir, PoolSizeBytes: gib, OverprovisionRatio: 0.5}, false},
		{"reserve 100%", Config{StateDir: dir, PoolSizeBytes: gib, DataReservePercent: 100}, false},
		{"pool name with a slash", Config{StateDir: dir, PoolSizeBytes: gib, PoolName: "a/b"}, false},
		{"pool name too long", Config{StateDir: dir, PoolSizeBytes: gib, PoolName: string(make([]byte, 120))}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.cfg.withDefaults()
			if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrInvalidArgument)) {
				t.Fatalf("got %v, want ok=%v", err, c.ok)
			}
			if c.ok && (got.PoolName == "" || got.BlockSizeBytes == 0 || got.OverprovisionRatio == 0) {
				t.Fatalf("defaults not filled: %+v", got)
			}
		})
	}
}

func TestMetadataSize(t *testing.T) {
	cases := []struct {
		data, block, want uint64
	}{
		{64 * mib, 64 * kib, 133 * mib},       // 96 KiB of mappings + 4 MiB + 128 MiB for 16,384 devices, in whole MiB
		{100 * gib, 64 * kib, 282 * mib},      // 1,638,400 blocks × 96 B + 4 MiB + 128 MiB
		{100 * gib, mib, 142 * mib},           // bigger blocks, fewer mappings
		{1 << 50, 64 * kib, maxMetadataBytes}, // capped at the kernel's limit
		{0, 64 * kib, 132 * mib},              // room for devices even with no data
	}
	for _, c := range cases {
		if got := metadataSize(c.data, c.block); got != c.want {
			t.Errorf("metadataSize(%d, %d) = %d, want %d", c.data, c.block, got, c.want)
		}
	}
}

func TestStorePath(t *testing.T) {
	c := Config{StateDir: "/var/lib/csi-thin"}
	if c.dbPath() != filepath.Join("/var/lib/csi-thin", "csi-thin.db") {
		t.Fatal(c.dbPath())
	}
}

// TestCondition: Condition tells a healthy volume, an unknown one, a
// problem of its pool and one of its own device apart, the last by
// ErrDeviceFailed.
func TestCondition(t *testing.T) {
	tests := []struct {
		name     string
		active   bool
		fault    func(fk *fakeKernel, name string) // with fk.mu held
		id       string                            // "" for the volume's
		want     []error
		wantNot  []error
		poolWant string // PoolState of the error
	}{
		{name: "inactive healthy volume"},
		{name: "active healthy volume", active: true},
		{
			name: "device status unreadable", active: true,
			fault: func(fk *fakeKernel, name string) { fk.failOps["thin_status"] = kerr("status", name, unix.EIO) },
			want:  []error{ErrDeviceFailed, ErrUnhealthy, unix.EIO},
		},
		{
			name: "device reports failure", active: true,
			fault: func(fk *fakeKernel, name string) { fk.devs[name].failed = true },
			want:  []error{ErrDeviceFailed, ErrUnhealthy},
		},
		{
			name: "pool needs_check", active: true,
			fault:    func(fk *fakeKernel, _ string) { fk.status.NeedsCheck = true },
			want:     []error{ErrUnhealthy},
			wantNot:  []error{ErrDeviceFailed},
			poolWant: StateNeedsCheck,
		},
		{
			name:     "pool full",
			fault:    func(fk *fakeKernel, _ string) { fk.status.Mode = dm.PoolModeOutOfDataSpace },
			want:     []error{ErrNoSpace},
			wantNot:  []error{ErrDeviceFailed, ErrUnhealthy},
			poolWant: StateOutOfDataSpace,
		},
		{name: "unknown volume", id: "vol-missing", want: []error{ErrNotFound}, wantNot: []error{ErrDeviceFailed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fk := newFakeKernel()
			e := testEngine(t, fk)
			v, err := e.CreateVolume(t.Context(), CreateRequest{Name: "v", RequiredBytes: gib})
			if err != nil {
				t.Fatal(err)
			}
			if tt.active {
				if _, err := e.Activate(t.Context(), v.ID, false); err != nil {
					t.Fatal(err)
				}
			}
			if tt.fault != nil {
				fk.mu.Lock()
				tt.fault(fk, e.dmName(v.ID))
				fk.mu.Unlock()
			}
			id := v.ID
			if tt.id != "" {
				id = tt.id
			}
			err = e.Condition(id)
			if len(tt.want) == 0 && err != nil {
				t.Fatalf("Condition = %v, want nil", err)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("Condition = %v, want it to match %v", err, w)
				}
			}
			for _, w := range tt.wantNot {
				if errors.Is(err, w) {
					t.Errorf("Condition = %v matches %v", err, w)
				}
			}
			if tt.poolWant != "" && PoolState(err) != tt.poolWant {
				t.Errorf("PoolState(%v) = %s, want %s", err, PoolState(err), tt.poolWant)
			}
		})
	}
}

// TestDeviceBytes: the size of an active device is the one the kernel
// maps, which follows an expand; an inactive volume has none.
func TestDeviceBytes(t *testing.T) {
	tests := []struct {
		name    string
		active  bool
		expand  uint64 // 0: none
		fail    error  // of the table read
		want    uint64
		wantErr error
	}{
		{name: "active", active: true, want: gib},
		{name: "expanded while active", active: true, expand: 2*gib + 1, want: 2*gib + 64*kib},
		{name: "inactive", wantErr: ErrNotFound},
		{name: "table unreadable", active: true, fail: kerr("status", "pool-vol", unix.EIO), wantErr: unix.EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fk := newFakeKernel()
			e := testEngine(t, fk)
			v, err := e.CreateVolume(t.Context(), CreateRequest{Name: "v", RequiredBytes: gib})
			if err != nil {
				t.Fatal(err)
			}
			if tt.active {
				if _, err := e.Activate(t.Context(), v.ID, false); err != nil {
					t.Fatal(err)
				}
			}
			if tt.expand != 0 {
				if _, err := e.Expand(t.Context(), v.ID, tt.expand); err != nil {
					t.Fatal(err)
				}
			}
			if tt.fail != nil {
				fk.failNext("table", tt.fail)
			}
			got, err := e.DeviceBytes(v.ID)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("DeviceBytes = %d, %v; want %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("DeviceBytes = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestBlockSizeBytes(t *testing.T) {
	if e := testEngine(t, newFakeKernel()); e.BlockSizeBytes() != 64*kib {
		t.Fatalf("block size %d", e.BlockSizeBytes())
	}
}

// TestPromisedAfterRecoveryAtRunTime fails a change halfway so that the
// engine recovers it at run time, not at start: the budget's promised
// bytes must then be what a start on the same database totals.
func TestPromisedAfterRecoveryAtRunTime(t *testing.T) {
	eio := kerr("message", "pool", unix.EIO)
	cases := []struct {
		name   string
		failOp string
		run    func(e *Engine, x *Volume) error
		want   uint64 // promised bytes after the failure: "keep" and what of x is left
	}{
		// Recovery finishes the delete the caller saw fail.
		{"set_transaction_id fails after delete", "set_transaction_id", func(e *Engine, x *Volume) error { return e.Delete(t.Context(), x.ID) }, gib},
		// Recovery rolls the create back.
		{"set_transaction_id fails after create", "set_transaction_id", func(e *Engine, _ *Volume) error {
			_, err := e.CreateVolume(t.Context(), CreateRequest{Name: "y", RequiredBytes: gib})
			return err
		}, 2 * gib},
		{"delete fails", "delete", func(e *Engine, x *Volume) error { return e.Delete(t.Context(), x.ID) }, 2 * gib},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fk := newFakeKernel()
			e := testEngine(t, fk)
			if _, err := e.CreateVolume(t.Context(), CreateRequest{Name: "keep", RequiredBytes: gib}); err != nil {
				t.Fatal(err)
			}
			x, err := e.CreateVolume(t.Context(), CreateRequest{Name: "x", RequiredBytes: gib})
			if err != nil {
				t.Fatal(err)
			}
			fk.failNext(c.failOp, eio)
			if err := c.run(e, x); !errors.Is(err, unix.EIO) {
				t.Fatalf("got %v, want the kernel's EIO", err)
			}
			// The next change runs on the recovered pool.
			if _, err := e.CreateVolume(t.Context(), CreateRequest{Name: "z", RequiredBytes: gib}); err != nil {
				t.Fatal(err)
			}
			running, err := e.Capacity()
			if err != nil {
				t.Fatal(err)
			}
			started, err := restart(t, e, fk).Capacity()
			if err != nil {
				t.Fatal(err)
			}
			if running.PromisedBytes != started.PromisedBytes || running.PromisedBytes != c.want+gib {
				t.Fatalf("promised %d bytes while running, %d after a start: want %d", running.PromisedBytes, started.PromisedBytes, c.want+gib)
			}
		})
	}
}

// TestDeleteOfAThinDeviceAlreadyGone deletes a record whose thin device
// the pool no longer has (ENODATA), the state recovery accepts: the delete
// succeeds and the record goes, instead of failing on every retry.
func TestDeleteOfAThinDeviceAlreadyGone(t *testing.T) {
	fk := newFakeKernel()
	e := testEngine(t, fk)
	keep, _ := e.CreateVolume(t.Context(), CreateRequest{Name: "keep", RequiredBytes: gib})
	x, err := e.CreateVolume(t.Context(), CreateRequest{Name: "x", RequiredBytes: gib})
	if err != nil {
		t.Fatal(err)
	}
	if err := fk.DeleteThin("pool", x.ThinID); err != nil {
		t.Fatal(err)
	}
	if err := e.Delete(t.Context(), x.ID); err != nil {
		t.Fatalf("delete of a record whose thin device is gone: %v", err)
	}
	if _, err := e.Get(x.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the record is still there: %v", err)
	}
	if err := e.Delete(t.Context(), x.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a second delete: %v, want ErrNotFound", err)
	}
	if c, _ := e.Capacity(); c.PromisedBytes != keep.SizeBytes {
		t.Fatalf("promised %d bytes, want %d", c.PromisedBytes, keep.SizeBytes)
	}
	checkAgreement(t, e, fk)
	e = restart(t, e, fk)
	if _, err := e.Get(keep.ID); err != nil {
		t.Fatal(err)
	}
	checkAgreement(t, e, fk)
}

// TestRetryResumesASourceLeftSuspended: a snapshot or copy of an active
// volume whose resume fails is taken, and its caller sees the error. Its
// retry, which finds it taken, and an activation of the volume resume the
// volume, and fail for as long as it will not resume: no OK leaves the
// volume suspended.
func TestRetryResumesASourceLeftSuspended(t *testing.T) {
	eio := kerr("resume", "pool-vol", unix.EIO)
	snapshot := func(e *Engine, srcID string) (string, error) {
		v, err := e.CreateSnapshot(t.Context(), "s", srcID, nil)
		if err != nil {
			return "", err
		}
		return v.ID, nil
	}
	clone := func(e *Engine, srcID string) (string, error) {
		v, err := e.CreateVolume(t.Context(), CreateRequest{Name: "c", SourceID: srcID})
		if err != nil {
			return "", err
		}
		return v.ID, nil
	}
	activate := func(e *Engine, srcID string) (string, error) { return e.Activate(t.Context(), srcID, false) }
	cases := []struct {
		name         string
		first, retry func(e *Engine, srcID string) (string, error)
	}{
		{"snapshot, retried", snapshot, snapshot},
		{"clone, retried", clone, clone},
		{"snapshot, then activation", snapshot, activate},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fk := newFakeKernel()
			e := testEngine(t, fk)
			src, _ := e.CreateVolume(t.Context(), CreateRequest{Name: "src", RequiredBytes: gib})
			if _, err := e.Activate(t.Context(), src.ID, false); err != nil {
				t.Fatal(err)
			}
			suspended := func() bool {
				info, err := fk.Info(e.dmName(src.ID))
				if err != nil || !info.Exists {
					t.Fatalf("source device: %+v %v", info, err)
				}
				return info.Suspended
			}
			fk.failNext("resume", eio)
			if _, err := c.first(e, src.ID); !errors.Is(err, unix.EIO) {
				t.Fatalf("with a failing resume: %v, want the kernel's EIO", err)
			}
			if !suspended() {
				t.Fatal("the source is not suspended after its resume failed")
			}

			// The source still will not resume: the retry fails.
			fk.failNext("resume", eio)
			if _, err := c.retry(e, src.ID); !errors.Is(err, unix.EIO) || !suspended() {
				t.Fatalf("retry while the source will not resume: %v (suspended %v), want the kernel's EIO", err, suspended())
			}
			// It resumes: the retry returns what was taken.
			got, err := c.retry(e, src.ID)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if suspended() {
				t.Fatalf("the retry returned %s, and the source is still suspended", got)
			}
			if again, err := c.retry(e, src.ID); err != nil || again != got {
				t.Fatalf("a further retry gave %q, %v; want %s", again, err, got)
			}
			checkAgreement(t, e, fk)
		})
	}
}

// A snapshot of an active volume on a pool that takes no copy is refused
// before the volume is suspended: on a full pool that queues writes, the
// suspend's flush would wait for space the refused change never frees.
func TestSnapshotRefusedBeforeTheSourceIsSuspended(t *testing.T) {
	for _, c := range []struct {
		name string
		set  func(*dm.PoolStatus)
		want error
	}{
		{"full", func(s *dm.PoolStatus) { s.Mode, s.DataUsed = dm.PoolModeOutOfDataSpace, s.DataTotal }, ErrNoSpace},
		{"failed", func(s *dm.PoolStatus) { *s = dm.PoolStatus{Fail: true} }, ErrUnhealthy},
	} {
		t.Run(c.name, func(t *testing.T) {
			fk := newFakeKernel()
			e := testEngine(t, fk)
			v, err := e.CreateVolume(t.Context(), CreateRequest{Name: "v", RequiredBytes: mib})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.Activate(t.Context(), v.ID, false); err != nil {
				t.Fatal(err)
			}
			fk.mu.Lock()
			c.set(&fk.status)
			fk.mu.Unlock()
			if _, err := e.CreateSnapshot(t.Context(), "s", v.ID, nil); !errors.Is(err, c.want) {
				t.Fatalf("snapshot on a %s pool: %v, want %v", c.name, err, c.want)
			}
			if n := fk.count("suspend"); n != 0 {
				t.Fatalf("the source was suspended %d times for a snapshot the pool refuses", n)
			}
		})
	}
}
