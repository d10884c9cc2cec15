package thinpool

import (
	"fmt"
	"sync"
	"testing"
	"time"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// WithoutArmPoll makes the engines opened until t ends wait for their
// pool's events as on a kernel whose device-mapper has no DM_DEV_ARM_POLL.
func WithoutArmPoll(t testing.TB) {
	old := openEventWaiter
	openEventWaiter = func() (*dm.EventWaiter, error) {
		return nil, &dm.Error{Op: "arm poll", Device: dm.ControlPath,
			Err: fmt.Errorf("%w: interface 4.37 taken away by the test", dm.ErrUnsupported)}
	}
	t.Cleanup(func() { openEventWaiter = old })
}

// NewTestEngine is an engine over the unit tests' fake kernel, closed
// when t ends, and what makes its volume id's active device held open.
func NewTestEngine(t *testing.T) (e *Engine, hold func(id string) (release func())) {
	fk := newFakeKernel()
	e = testEngine(t, fk)
	return e, func(id string) func() {
		fk.setOpen(e.dmName(id), 1)
		return func() { fk.setOpen(e.dmName(id), 0) }
	}
}

// SkewGroupClock makes e's clock, by which group snapshots keep their
// deadline, jump d ahead each time a group snapshot's window reaches
// stage ("frozen", "suspended", "created"), until t ends: a test passes
// the deadline there without waiting for it.
func SkewGroupClock(t testing.TB, e *Engine, stage string, d time.Duration) {
	var mu sync.Mutex
	skew := time.Duration(0)
	e.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return time.Now().Add(skew)
	}
	e.groupHook = func(s string) {
		if s == stage {
			mu.Lock()
			skew += d
			mu.Unlock()
		}
	}
	t.Cleanup(func() { e.now, e.groupHook = time.Now, nil })
}
