package thinpool

import (
	"context"
	"errors"
	"testing"
)

// TestMetadataSnapshotNeverLeftHeld: whatever becomes of a read of a
// block map, the pool is left holding no metadata snapshot: one a crash
// left is released at start, one held by no reader of this process is
// released before a reserve, and one whose trees cannot be read is
// released at once.
func TestMetadataSnapshotNeverLeftHeld(t *testing.T) {
	fk := newFakeKernel()
	e := testEngine(t, fk)
	v, err := e.CreateVolume(t.Context(), CreateRequest{Name: "v", RequiredBytes: 64 * mib})
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.CreateSnapshot(t.Context(), "s", v.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	held := func() bool {
		st, err := fk.PoolStatus("pool")
		if err != nil {
			t.Fatal(err)
		}
		return st.HasHeldMetadataRoot
	}

	// Left held by a crash: released at start.
	if err := fk.ReserveMetadataSnap("pool"); err != nil {
		t.Fatal(err)
	}
	e = restart(t, e, fk)
	if held() {
		t.Fatal("a metadata snapshot left by an earlier run is still held after the start")
	}

	// Held by someone else when a read begins: released, reserved anew;
	// the unit test's engine has no metadata device to read, so the read
	// fails, and releases what it reserved.
	if err := fk.ReserveMetadataSnap("pool"); err != nil {
		t.Fatal(err)
	}
	err = e.Allocated(t.Context(), s.ID, 0, func(Extent) error { return nil })
	if err == nil {
		t.Fatal("a read without a metadata device succeeded")
	}
	if held() {
		t.Fatalf("the pool holds a metadata snapshot after a failed read (%v)", err)
	}
	if e.meta.cur != nil {
		t.Fatal("the engine keeps a lease after a failed read")
	}

	// A reserve the kernel refuses: the error says so, nothing is held.
	fk.failNext("reserve_metadata_snap", errors.New("refused"))
	if err := e.Delta(t.Context(), s.ID, s.ID, 0, func(Extent) error { return nil }); err == nil {
		t.Fatal("a delta succeeded though the reserve failed")
	}
	if held() {
		t.Fatal("a refused reserve left a metadata snapshot held")
	}

	// Reads of unknown snapshots and of volumes never reserve.
	for _, id := range []string{"snap-nosuch", v.ID} {
		if err := e.Allocated(t.Context(), id, 0, func(Extent) error { return nil }); !errors.Is(err, ErrNotFound) {
			t.Errorf("allocated map of %s: %v, want ErrNotFound", id, err)
		}
	}
	// A read whose context has ended waits for nothing and holds nothing.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := e.Allocated(ctx, s.ID, 0, func(Extent) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("read with a cancelled context: %v, want context.Canceled", err)
	}
	if held() {
		t.Fatal("a cancelled read left a metadata snapshot held")
	}
}
