package thinpool

import (
	"errors"
	"strings"
	"testing"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

func TestAutoGrowConfig(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		cfg  Config
		want string // in the error; empty: valid
	}{
		{"auto-grow", Config{StateDir: dir, PoolSizeBytes: gib, MaxSizeBytes: 10 * gib}, ""},
		{"maximum is the size", Config{StateDir: dir, PoolSizeBytes: gib, MaxSizeBytes: gib}, ""},
		{"maximum below the size", Config{StateDir: dir, PoolSizeBytes: 2 * gib, MaxSizeBytes: gib}, "below the pool size"},
		{"maximum on block devices", Config{StateDir: dir, DataDevice: "/dev/sdb", MetadataDevice: "/dev/sdc", MaxSizeBytes: gib}, "loopback pools only"},
		{"step above 100%", Config{StateDir: dir, PoolSizeBytes: gib, GrowPercent: 150}, "grow step"},
		{"step below 1%", Config{StateDir: dir, PoolSizeBytes: gib, GrowPercent: 0.5}, "grow step"},
		{"reserve of 100%", Config{StateDir: dir, PoolSizeBytes: gib, FSReservePercent: 100}, "file system reserve"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.cfg.withDefaults()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want an invalid-argument error saying %q", err, c.want)
			case c.want == "" && (got.GrowPercent != DefaultGrowPercent || got.FSReservePercent != DefaultFSReservePercent):
				t.Fatalf("defaults not filled: %+v", got)
			}
		})
	}
}

// The low water mark is one grow step of free data or 256 MiB, whichever
// is more, at most half the pool; a loopback pool that does not grow by
// itself has none, a pool on block devices always has one.
func TestLowWaterBlocks(t *testing.T) {
	grows := Config{BlockSizeBytes: 64 * kib, GrowPercent: 20, MaxSizeBytes: 100 * gib}
	fixed := Config{BlockSizeBytes: 64 * kib, GrowPercent: 20}
	cases := []struct {
		name string
		cfg  Config
		loop bool
		data uint64
		want uint64 // blocks
	}{
		{"small pool: half", grows, true, 128 * mib, 1024},
		{"middle: the floor", grows, true, gib, 4096},
		{"large: one step", grows, true, 10 * gib, 32768},
		{"loop without a maximum", fixed, true, 10 * gib, 0},
		{"block devices", fixed, false, 10 * gib, 32768},
	}
	for _, c := range cases {
		if got := c.cfg.lowWaterBlocks(c.loop, c.data); got != c.want {
			t.Errorf("%s: lowWaterBlocks(%v, %d) = %d, want %d", c.name, c.loop, c.data, got, c.want)
		}
	}
	if got := grows.growStep(128 * mib); got != 26240*kib {
		t.Errorf("growStep(128 MiB) = %d, want 20%% rounded up to whole 64 KiB blocks, 26240 KiB", got)
	}
}

// A pool that may grow queues the writes that find it full, whatever
// error_if_no_space says, for the grow that follows. When its watcher
// fails, none follows: the pool is given error_if_no_space again, so that
// such writes fail at once instead of after the kernel's no_space_timeout,
// and no later reload queues them again.
func TestWatcherFailureLoadsErrorIfNoSpace(t *testing.T) {
	fk := newFakeKernel()
	cfg, err := Config{StateDir: t.TempDir(), PoolSizeBytes: 128 * mib, MaxSizeBytes: gib, ErrorIfNoSpace: true}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	e := startTestEngine(t, fk, cfg)
	e.backing = &backing{loop: true, dataBytes: 128 * mib, dataDev: dm.Dev{Major: 7}, metaDev: dm.Dev{Major: 7, Minor: 1}}
	e.poolMu.lock()
	if err := e.reloadLocked(e.backing.dataBytes); err != nil {
		t.Fatal(err)
	}
	e.poolMu.unlock()
	if fk.status.ErrorIfNoSpace {
		t.Fatal("a pool that may grow has error_if_no_space in its table")
	}
	e.watchFailed(errors.New("the pool's events cannot be read"))
	if !fk.status.ErrorIfNoSpace {
		t.Fatal("the pool still queues writes after its watcher failed")
	}
	e.poolMu.lock()
	defer e.poolMu.unlock()
	if e.mayGrowLocked(e.backing.dataBytes) {
		t.Fatal("a pool whose watcher failed may still grow by itself")
	}
}
