package thinpool_test

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

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
