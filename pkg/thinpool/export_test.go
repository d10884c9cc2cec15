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
