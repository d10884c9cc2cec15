// Package csierr maps csi-thin's errors to the CSI spec's gRPC codes, in
// one place. The controller and node services return the engine's errors
// as they are and status errors only for what they refuse themselves; the
// driver's interceptor gives every reply its code through Status, and the
// services' unit tests check the code a caller would see through Code.
package csierr

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// Status is err with its CSI code: a status error as it is, any other
// error with Code's code. The message keeps the whole error, which says
// what went wrong and what to do. Nil stays nil.
func Status(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(Code(err), err.Error())
}

// Code is the CSI code of err: a status error's own code, else the one
// its engine or kernel error maps to; OK for nil, Internal for anything
// unknown.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
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
	case errors.Is(err, thinpool.ErrOutOfRange):
		return codes.OutOfRange
	case errors.Is(err, thinpool.ErrNoSpace), errors.Is(err, thinpool.ErrOverBudget):
		return codes.ResourceExhausted
	case errors.Is(err, thinpool.ErrInvalidToken):
		return codes.Aborted
	case errors.Is(err, thinpool.ErrInUse), errors.Is(err, thinpool.ErrCannotGroup):
		return codes.FailedPrecondition
	case errors.Is(err, thinpool.ErrGroupDeadline):
		return codes.DeadlineExceeded
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
