package thinpool

import (
	"fmt"
	"testing"

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
