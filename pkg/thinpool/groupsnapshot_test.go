package thinpool

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// groupFixture is an engine over a fake kernel with three volumes: a and
// b active with filesystems mounted, c inactive.
type groupFixture struct {
	t       *testing.T
	fk      *fakeKernel
	e       *Engine
	a, b, c *Volume
}

func newGroupFixture(t *testing.T) *groupFixture {
	fk := newFakeKernel()
	f := &groupFixture{t: t, fk: fk, e: testEngine(t, fk)}
	mk := func(name string) *Volume {
		v, err := f.e.CreateVolume(t.Context(), CreateRequest{Name: name, RequiredBytes: 64 * mib})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	f.a, f.b, f.c = mk("a"), mk("b"), mk("c")
	for _, v := range []*Volume{f.a, f.b} {
		if _, err := f.e.Activate(t.Context(), v.ID, false); err != nil {
			t.Fatal(err)
		}
		fk.mount(f.e.dmName(v.ID), "/mnt/"+v.Name)
	}
	return f
}

func (f *groupFixture) sources() []string { return []string{f.a.ID, f.b.ID, f.c.ID} }

// checkReleased fails unless no device is suspended and no filesystem
// frozen.
func (f *groupFixture) checkReleased() {
	f.t.Helper()
	for _, v := range []*Volume{f.a, f.b} {
		if info, _ := f.fk.Info(f.e.dmName(v.ID)); info.Suspended {
			f.t.Errorf("%s is still suspended", v.Name)
		}
		if f.fk.isFrozen("/mnt/" + v.Name) {
			f.t.Errorf("the filesystem of %s is still frozen", v.Name)
		}
	}
}

// The window freezes every mounted member, then suspends every active
// one, takes every snapshot, then resumes all and thaws all; the group
// costs one durable commit and one transaction id step.
func TestGroupSnapshotWindowOrderAndOneTransaction(t *testing.T) {
	f := newGroupFixture(t)
	e, fk := f.e, f.fk
	commits, txids, before := e.store.commits.Load(), fk.count("set_transaction_id"), len(fk.eventLog())
	g, err := e.CreateGroupSnapshot(t.Context(), "g", f.sources(), nil)
	if err != nil {
		t.Fatal(err)
	}
	da, db := e.dmName(f.a.ID), e.dmName(f.b.ID)
	want := []string{
		"freeze /mnt/a", "freeze /mnt/b", "suspend " + da, "suspend " + db,
		fmt.Sprint("create_snap ", f.a.ThinID), fmt.Sprint("create_snap ", f.b.ThinID), fmt.Sprint("create_snap ", f.c.ThinID),
		"resume " + da, "resume " + db, "thaw /mnt/a", "thaw /mnt/b",
	}
	if got := fk.eventLog()[before:]; !slices.Equal(got, want) {
		t.Errorf("the window ran\n%q\nwant\n%q", got, want)
	}
	if n := e.store.commits.Load() - commits; n != 1 {
		t.Errorf("the group made %d durable commits, want 1", n)
	}
	if n := fk.count("set_transaction_id") - txids; n != 1 {
		t.Errorf("the group took %d transaction id steps, want 1", n)
	}
	if len(g.Members) != 3 {
		t.Fatalf("%d members", len(g.Members))
	}
	st := e.GroupSnapshotStats()
	if st.Created != 1 || st.Suspends != 1 || st.SuspendBuckets[len(st.SuspendBuckets)-1].Count != 1 || st.MaxSuspend < st.LastSuspend {
		t.Errorf("stats after one group: %+v", st)
	}
	f.checkReleased()
	checkAgreement(t, e, fk)
	// The group and its members survive a restart.
	e = restart(t, e, fk)
	got, err := e.GetGroupSnapshot(g.ID)
	if err != nil || !slices.Equal(got.SnapshotIDs, g.SnapshotIDs) {
		t.Fatalf("after a restart: %+v, %v", got, err)
	}
}

// A window that passes its deadline at any stage undoes the group: no
// snapshot, no thin device, every member resumed and thawed.
func TestGroupSnapshotDeadline(t *testing.T) {
	for _, stage := range []string{"frozen", "suspended", "created"} {
		t.Run(stage, func(t *testing.T) {
			f := newGroupFixture(t)
			e := f.e
			clock := time.Now()
			e.now = func() time.Time { return clock }
			e.groupHook = func(s string) {
				if s == stage {
					clock = clock.Add(e.cfg.GroupSnapshotTimeout + time.Second)
				}
			}
			_, err := e.CreateGroupSnapshot(t.Context(), "g", f.sources(), nil)
			if !errors.Is(err, ErrGroupDeadline) {
				t.Fatalf("got %v, want ErrGroupDeadline", err)
			}
			if snaps, _, _ := e.List(KindSnapshot, "", 0); len(snaps) != 0 {
				t.Errorf("%d snapshots after the abort", len(snaps))
			}
			f.checkReleased()
			checkAgreement(t, e, f.fk)
			if st := e.GroupSnapshotStats(); st.Aborted != 1 || st.Created != 0 {
				t.Errorf("stats after an abort: %+v", st)
			}
			// A retry with time to spare succeeds.
			e.groupHook = nil
			if _, err := e.CreateGroupSnapshot(t.Context(), "g", f.sources(), nil); err != nil {
				t.Fatalf("retry: %v", err)
			}
			checkAgreement(t, e, f.fk)
		})
	}
}

// Failures inside the window leave the pool as it was, or to the
// recovery, and release every member.
func TestGroupSnapshotFailures(t *testing.T) {
	cases := []struct {
		op   string
		err  error
		want error
	}{
		{"freeze", kerr("freeze", "/mnt/a", unix.EOPNOTSUPP), ErrCannotGroup},
		{"suspend", kerr("suspend", "x", unix.EIO), unix.EIO},
		{"create_snap", kerr("message create_snap", "pool", unix.ENOSPC), unix.ENOSPC},
		{"set_transaction_id", kerr("message set_transaction_id", "pool", unix.EIO), unix.EIO},
	}
	for _, c := range cases {
		t.Run(c.op, func(t *testing.T) {
			f := newGroupFixture(t)
			f.fk.failNext(c.op, c.err)
			_, err := f.e.CreateGroupSnapshot(t.Context(), "g", f.sources(), nil)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if snaps, _, _ := f.e.List(KindSnapshot, "", 0); len(snaps) != 0 {
				t.Errorf("%d snapshots after a failed group", len(snaps))
			}
			f.checkReleased()
			checkAgreement(t, f.e, f.fk)
		})
	}
}

// A crash at each step of a group's change leaves, after the restart,
// the whole group or none.
func TestGroupSnapshotRecoveryAfterCrash(t *testing.T) {
	for applied := 0; applied <= 3; applied++ {
		for _, txid := range []bool{false, true} {
			if txid && applied < 3 {
				continue
			}
			t.Run(fmt.Sprintf("%d created, txid %v", applied, txid), func(t *testing.T) {
				f := newGroupFixture(t)
				e, fk := f.e, f.fk
				committed := e.committed.Load()
				g := &Group{ID: newGroupID(), Name: "g", SourceIDs: f.sources(), State: stateCreating, TxID: committed + 1}
				var members []*Volume
				for _, src := range []*Volume{f.a, f.b, f.c} {
					m := &Volume{ID: newID(KindSnapshot), Kind: KindSnapshot, Name: "g", SourceID: src.ID, SizeBytes: src.SizeBytes,
						GroupID: g.ID, State: stateCreating, TxID: committed + 1}
					members = append(members, m)
					g.SnapshotIDs = append(g.SnapshotIDs, m.ID)
				}
				if err := e.store.writeIntent(committed, members, []*Group{g}); err != nil {
					t.Fatal(err)
				}
				srcs := []*Volume{f.a, f.b, f.c}
				for i := 0; i < applied; i++ {
					fk.Suspend(e.dmName(srcs[i].ID), dm.SuspendOptions{}) // as the window had them
					if err := fk.CreateSnap("pool", members[i].ThinID, srcs[i].ThinID); err != nil {
						t.Fatal(err)
					}
				}
				if txid {
					if err := fk.SetTransactionID("pool", committed, committed+1); err != nil {
						t.Fatal(err)
					}
				}
				fk.frozen["/mnt/a"] = true
				e = restart(t, e, fk)
				f.e = e
				checkAgreement(t, e, fk)
				f.checkReleased()
				got, err := e.GetGroupSnapshot(g.ID)
				snaps, _, _ := e.List(KindSnapshot, "", 0)
				if txid {
					if err != nil || len(got.Members) != 3 || len(snaps) != 3 {
						t.Fatalf("committed group after the restart: %v, %d snapshots; want all 3", err, len(snaps))
					}
				} else if !errors.Is(err, ErrNotFound) || len(snaps) != 0 {
					t.Fatalf("uncommitted group after the restart: %v, %d snapshots; want none", err, len(snaps))
				}
				// The retry converges on one group.
				r1, err := e.CreateGroupSnapshot(t.Context(), "g", f.sources(), nil)
				if err != nil {
					t.Fatal(err)
				}
				if txid && r1.ID != g.ID {
					t.Errorf("the retry made %s, want the committed %s", r1.ID, g.ID)
				}
				if err := e.DeleteGroupSnapshot(t.Context(), r1.ID); err != nil {
					t.Fatal(err)
				}
				checkAgreement(t, e, fk)
			})
		}
	}
}
