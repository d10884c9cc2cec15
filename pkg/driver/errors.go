package driver

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// toStatus maps an error to its CSI code, in one place: the services
// return status errors for the requests they refuse themselves and the
// engine's errors as they are. The message keeps the whole error, which
// says what went wrong and what to do.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codeOf(err), err.Error())
}

func codeOf(err error) codes.Code {
	switch {
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, thinpool.ErrInvalidArgument):
		return codes.InvalidArgument
	case errors.Is(err, thinpool.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, thinpool.ErrExists):
		return codes.AlreadyExists
	case errors.Is(err, thinpool.ErrNoSpace), errors.Is(err, thinpool.ErrOverBudget):
		return codes.ResourceExhausted
	case errors.Is(err, thinpool.ErrInvalidToken):
		return codes.Aborted
	case errors.Is(err, thinpool.ErrInUse):
		return codes.FailedPrecondition
	case errors.Is(err, thinpool.ErrUnhealthy):
		return codes.Unavailable
	// The kernel interface's own errors, where the engine passes one on
	// as it is: after the engine's, which say more.
	case errors.Is(err, dm.ErrInvalidArgument):
		return codes.InvalidArgument
	case errors.Is(err, dm.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, dm.ErrExists):
		return codes.AlreadyExists
	case errors.Is(err, dm.ErrBusy):
		return codes.FailedPrecondition // open or in use: release it first
	case errors.Is(err, dm.ErrUnsupported):
		return codes.FailedPrecondition // the node's kernel must be upgraded
	}
	return codes.Internal
}
