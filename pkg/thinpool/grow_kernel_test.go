package thinpool_test

// Growth of loopback pools in the real kernel: explicit grows that are
// retried after a failure halfway.

import (
	"os"
	"path/filepath"
	"testing"
)

// A grow that failed after it had truncated the backing files but before
// the loop devices took the new size (LOOP_SET_CAPACITY failed) leaves
// files larger than their loop devices. The next Grow must still refresh
// the loop devices, or the pool's table cannot be loaded at the new size.
func TestEngineGrowAfterFailedRefresh(t *testing.T) {
	cfg := ekLoopConfig(t, 64*ekMiB)
	ctl := ekControl(t)
	e := ekOpen(t, cfg)
	v := ekCreate(t, e, "v", 32*ekMiB)
	ekWrite(t, e, v, 0, ekPattern(4, ekMiB))

	// What the failed grow did: the files are at the new sizes, the loop
	// devices at the old ones.
	for _, f := range []struct {
		name string
		size int64
	}{{ekDataFile, 128 * ekMiB}, {ekMetadataFile, 134 * ekMiB}} {
		if err := os.Truncate(filepath.Join(cfg.StateDir, f.name), f.size); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Grow(t.Context(), 128*ekMiB); err != nil {
		t.Fatalf("grow after a failed loop capacity refresh: %v", err)
	}
	ekCheckPoolSize(t, ctl, e, cfg, 128*ekMiB, 134*ekMiB)
	ekExpect(t, e, v, map[int64][]byte{0: ekPattern(4, ekMiB)})
}
