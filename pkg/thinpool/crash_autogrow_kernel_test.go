package thinpool_test

// Crash tests of auto-grow in a real kernel: TestCrashAutoGrow re-executes
// this test binary as TestCrashAutoGrowChild, which writes into a volume on
// a small pool with a maximum size until the pool's low water event grows
// it, with one grow failpoint armed, so that the child is SIGKILLed in the
// middle of an auto-grow, in the goroutine that waits for the pool's
// events. The parent then opens the engine, which must finish the grow.
//
//	KERNEL_TEST_PKGS=./pkg/thinpool KERNEL_TEST_RUN='TestCrashAutoGrow$' test/kernel/test.sh

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/csi-thin/csi-thin/internal/failpoint"
	"github.com/csi-thin/csi-thin/internal/kerneltest"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

const (
	cagChildEnv  = "CSI_THIN_CRASH_AUTOGROW_CHILD"
	cagRuns      = 5 // kills per failpoint: each run makes, fills and tears down a pool
	cagPoolBytes = 64 * ekMiB
	cagMaxBytes  = 512 * ekMiB
	cagSynced    = 30 * ekMiB // below the low water mark (half the pool free), synced
	cagCrossing  = 16 * ekMiB // then past it, into a second volume
)

// cagPoints are the steps of a grow, in order.
var cagPoints = []string{"grow.after-intent", "grow.after-truncate", "grow.after-refresh", "grow.after-reload"}

type cagSpec struct{ StateDir, Pool string }

func cagConfig(s cagSpec) thinpool.Config {
	return thinpool.Config{StateDir: s.StateDir, PoolName: s.Pool, PoolSizeBytes: cagPoolBytes, MaxSizeBytes: cagMaxBytes, ErrorIfNoSpace: true}
}

// TestCrashAutoGrowChild is the process TestCrashAutoGrow kills; it does
// nothing unless TestCrashAutoGrow started it. It writes and syncs below
// the low water mark, then writes past it, and waits for the pool to
// grow.
func TestCrashAutoGrowChild(t *testing.T) {
	raw := os.Getenv(cagChildEnv)
	if raw == "" {
		t.Skip("runs only as a child of TestCrashAutoGrow")
	}
	var spec cagSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	e, err := thinpool.Open(cagConfig(spec))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	v, err := e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: "v", RequiredBytes: cagMaxBytes})
	if err != nil {
		t.Fatal(err)
	}
	node, err := e.Activate(t.Context(), v.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if r := agWrite(node, cagSynced, 7); r.err != nil {
		t.Fatal(r.err)
	}
	w, err := e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: "w", RequiredBytes: 64 * ekMiB})
	if err != nil {
		t.Fatal(err)
	}
	wNode, err := e.Activate(t.Context(), w.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if r := agWrite(wNode, cagCrossing, 8); r.err != nil {
		t.Fatal(r.err)
	}
	deadline := time.Now().Add(time.Minute)
	for e.GrowStats().Grows["auto"] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the pool did not grow within a minute of crossing its low water mark")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// After a SIGKILL at each step of an auto-grow, the restarted engine
// (without a maximum size, so that only the journal grows the pool) has
// the grown pool: its table, data file and loop device at one size, larger
// than before; the volumes' records are intact and what the child synced
// before the grow reads back.
func TestCrashAutoGrow(t *testing.T) {
	kerneltest.Require(t)
	if v := os.Getenv(failpoint.EnvVar); v != "" {
		t.Fatalf("%s=%s is set: the crash test arms failpoints in its children only; unset it", failpoint.EnvVar, v)
	}
	start := time.Now()
	kills := 0
	for _, point := range cagPoints {
		t.Run(point, func(t *testing.T) {
			for run := 0; run < cagRuns; run++ {
				cagRun(t, point)
				kills++
			}
		})
	}
	t.Logf("%d kills in auto-grows (%d per step), %.1f s", kills, cagRuns, time.Since(start).Seconds())
}

func cagRun(t *testing.T, point string) {
	t.Helper()
	spec := cagSpec{StateDir: kerneltest.ScratchDir(t), Pool: ekPoolName(t)}
	cfg := cagConfig(spec)
	if err := ekTakeDown(cfg); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashAutoGrowChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), failpoint.EnvVar+"="+point, cagChildEnv+"="+string(raw))
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	killed := errors.As(err, &exitErr) && exitErr.Sys().(syscall.WaitStatus).Signaled() &&
		exitErr.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
	if !killed {
		t.Fatalf("the child was not killed at %s (%v); its output:\n%s", point, err, out)
	}

	// Reopened without a maximum size, the engine does not grow the pool
	// by itself: only the journaled grow can have grown it.
	ctl := ekControl(t)
	reopen := cfg
	reopen.MaxSizeBytes = 0
	e, err := thinpool.Open(reopen)
	if err != nil {
		t.Fatalf("open after a kill at %s: %v", point, err)
	}
	defer func() {
		e.Close()
		if err := ekTakeDown(cfg); err != nil {
			t.Errorf("tear down: %v", err)
		}
	}()
	if err := e.Health(); err != nil {
		t.Fatalf("after a kill at %s: %v", point, err)
	}
	st := ekStatus(t, ctl, cfg.PoolName)
	data := st.DataTotal * thinpool.DefaultBlockSizeBytes
	fi, err := os.Stat(filepath.Join(cfg.StateDir, ekDataFile))
	if err != nil {
		t.Fatal(err)
	}
	if data <= cagPoolBytes || uint64(fi.Size()) != data {
		t.Fatalf("after a kill at %s the pool has %d data bytes and its file %d: want both the same, above %d",
			point, data, fi.Size(), uint64(cagPoolBytes))
	}
	v, err := e.GetByName(thinpool.KindVolume, "v")
	if err != nil {
		t.Fatalf("after a kill at %s: the volume's record: %v", point, err)
	}
	node := ekActivate(t, e, v)
	if got := ekDeviceSize(t, node); got != cagMaxBytes {
		t.Fatalf("volume of %d bytes, want %d", got, uint64(cagMaxBytes))
	}
	agCheck(t, node, cagSynced, 7)
	ekDeactivate(t, e, v)
	if _, err := e.GetByName(thinpool.KindVolume, "w"); err != nil {
		t.Fatalf("after a kill at %s: the second volume's record: %v", point, err)
	}
}
