package thinpool_test

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// Retries of operations that a failure left halfway must finish them.

// TestEngineDeleteThinDeviceAlreadyGone deletes a volume whose thin device
// the pool no longer has, the state recovery accepts: the kernel answers
// the delete message with ENODATA, the delete succeeds and the record
// goes, also after a restart.
func TestEngineDeleteThinDeviceAlreadyGone(t *testing.T) {
	cfg := ekLoopConfig(t, 256*ekMiB)
	e := ekOpen(t, cfg)
	keep := ekCreate(t, e, "keep", 16*ekMiB)
	v := ekCreate(t, e, "gone", 16*ekMiB)
	ctl := ekControl(t)
	if err := ctl.DeleteThin(cfg.PoolName, v.ThinID); err != nil {
		t.Fatalf("delete thin device %d behind the engine: %v", v.ThinID, err)
	}
	if err := ctl.DeleteThin(cfg.PoolName, v.ThinID); !errors.Is(err, unix.ENODATA) {
		t.Fatalf("a second delete of thin device %d: %v, want ENODATA", v.ThinID, err)
	}
	ekDelete(t, e, v)
	if _, err := e.Get(v.ID); !errors.Is(err, thinpool.ErrNotFound) {
		t.Fatalf("the record is still there: %v", err)
	}
	ekCheckPromised(t, e)

	ekClose(t, e)
	e = ekOpen(t, cfg)
	if _, err := e.Get(v.ID); !errors.Is(err, thinpool.ErrNotFound) {
		t.Fatalf("the record is back after a restart: %v", err)
	}
	if _, err := e.Get(keep.ID); err != nil {
		t.Fatalf("an unrelated volume was lost: %v", err)
	}
	ekCheckPromised(t, e)
	v2 := ekCreate(t, e, "gone", 16*ekMiB)
	ekDelete(t, e, v2)
}

// TestEngineSnapshotRetryResumesOrigin retries a snapshot of an active
// volume whose origin was left suspended, as a resume that failed after
// create_snap leaves it: the retry finds the snapshot taken, resumes the
// origin, and I/O to the origin completes again; so does an activation of
// the origin.
func TestEngineSnapshotRetryResumesOrigin(t *testing.T) {
	cfg := ekLoopConfig(t, 256*ekMiB)
	e := ekOpen(t, cfg)
	v := ekCreate(t, e, "origin", 16*ekMiB)
	path := ekActivate(t, e, v)
	t.Cleanup(func() { ekDeactivate(t, e, v) })
	s := ekSnapshot(t, e, "snap", v.ID)

	ctl := ekControl(t)
	name := cfg.PoolName + "-" + v.ID
	t.Cleanup(func() { // whatever the engine did, for the teardown
		if info, err := ctl.Info(name); err == nil && info.Suspended {
			ctl.Resume(name, 0)
		}
	})
	if err := ctl.Suspend(name, dm.SuspendOptions{}); err != nil {
		t.Fatal(err)
	}
	if info, err := ctl.Info(name); err != nil || !info.Suspended {
		t.Fatalf("origin after suspend: %+v %v", info, err)
	}
	again := ekSnapshot(t, e, "snap", v.ID)
	if again.ID != s.ID {
		t.Fatalf("the retry gave %s, want %s", again.ID, s.ID)
	}
	if info, err := ctl.Info(name); err != nil || info.Suspended {
		t.Fatalf("origin after the retry returned OK: %+v %v; want it resumed", info, err)
	}
	want := ekPattern(7, 64*ekKiB)
	ekWriteDevice(t, path, 0, want)
	if got := ekReadDevice(t, path, 0, len(want)); !bytes.Equal(got, want) {
		t.Fatal("the origin does not read back what was written after the retry")
	}

	// An activation of the origin, as a stage after the failed snapshot
	// would do, resumes it too.
	if err := ctl.Suspend(name, dm.SuspendOptions{}); err != nil {
		t.Fatal(err)
	}
	if again := ekActivate(t, e, v); again != path {
		t.Fatalf("activated again at %s, was %s", again, path)
	}
	if info, err := ctl.Info(name); err != nil || info.Suspended {
		t.Fatalf("origin after its activation returned OK: %+v %v; want it resumed", info, err)
	}
	ekWriteDevice(t, path, 64*ekKiB, want)
}
