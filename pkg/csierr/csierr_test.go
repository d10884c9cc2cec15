package csierr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// outOfRange is the engine's error for a range that holds no size.
func outOfRange() error {
	_, err := thinpool.VolumeSize(thinpool.CreateRequest{RequiredBytes: 2 << 20, LimitBytes: 1 << 20}, 0, 64<<10)
	return err
}

func TestStatus(t *testing.T) {
	cases := []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("create: %w", thinpool.ErrNotFound), codes.NotFound},
		{fmt.Errorf("x: %w", thinpool.ErrExists), codes.AlreadyExists},
		{fmt.Errorf("%w: no snapshot has id %q", thinpool.ErrSourceNotFound, "snap-1"), codes.NotFound},
		{thinpool.ErrNoSpace, codes.ResourceExhausted},
		{thinpool.ErrOverBudget, codes.ResourceExhausted},
		{thinpool.ErrInvalidArgument, codes.InvalidArgument},
		{fmt.Errorf("size: %w", thinpool.ErrOutOfRange), codes.OutOfRange},
		{outOfRange(), codes.OutOfRange},
		{thinpool.ErrInvalidToken, codes.Aborted},
		{thinpool.ErrInUse, codes.FailedPrecondition},
		{thinpool.ErrUnhealthy, codes.Unavailable},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{errors.New("mkfs failed"), codes.Internal},
		// The kernel interface's errors, as the engine passes them on.
		{fmt.Errorf("activate: %w", &dm.Error{Op: "create", Device: "pool-vol-1", Err: unix.EBUSY}), codes.AlreadyExists},
		{fmt.Errorf("remove: %w", &dm.Error{Op: "remove", Device: "pool-vol-1", Err: unix.EBUSY}), codes.FailedPrecondition},
		{fmt.Errorf("delete: %w", &dm.Error{Op: "message delete 7", Device: "pool", Err: unix.ENODATA}), codes.NotFound},
		{fmt.Errorf("status: %w", &dm.Error{Op: "status", Device: "pool-vol-1", Err: unix.ENXIO}), codes.NotFound},
		{fmt.Errorf("loop: %w: file name too long", dm.ErrInvalidArgument), codes.InvalidArgument},
		{fmt.Errorf("remove: %w: deferred remove needs 4.27", dm.ErrUnsupported), codes.FailedPrecondition},
		{&dm.Error{Op: "message create_thin 7", Device: "pool", Err: unix.EIO}, codes.Internal},
		// The engine's own error wins over the kernel's it wraps.
		{fmt.Errorf("%w: status of pool: %w", thinpool.ErrUnhealthy, &dm.Error{Op: "status", Err: unix.ENXIO}), codes.Unavailable},
		{status.Error(codes.OutOfRange, "too big"), codes.OutOfRange},
	}
	for _, c := range cases {
		got := Status(c.err)
		if Code(c.err) != c.want {
			t.Errorf("%v: Code %v, want %v", c.err, Code(c.err), c.want)
		}
		if status.Code(got) != c.want {
			t.Errorf("%v: code %v, want %v", c.err, status.Code(got), c.want)
		}
		want := c.err.Error()
		if s, ok := status.FromError(c.err); ok {
			want = s.Message()
		}
		if status.Convert(got).Message() != want {
			t.Errorf("%v: message %q lost the error", c.err, status.Convert(got).Message())
		}
	}
	if Status(nil) != nil || Code(nil) != codes.OK {
		t.Error("nil became an error")
	}
}
