package thinpool

import (
	"errors"
	"fmt"
)

// Errors callers test with errors.Is; messages say what to do.
var (
	// ErrNotFound: no volume or snapshot with that id or name.
	ErrNotFound = errors.New("not found")
	// ErrSourceNotFound: no snapshot or volume here has the id a copy is
	// to be made from; it may be on another node. It matches ErrNotFound.
	ErrSourceNotFound = fmt.Errorf("source %w", ErrNotFound)
	// ErrExists: the name is taken by a volume or snapshot that does not
	// answer the request: another source, other parameters, or a volume's
	// size outside the range asked (see (*Volume).Answers).
	ErrExists = errors.New("exists with different parameters")
	// ErrNoSpace: the pool is out of data space, or its free data or
	// metadata space is below its reserve, so nothing new may be created
	// until space is freed (deletes still work) or the pool grows.
	ErrNoSpace = errors.New("pool is out of space")
	// ErrOverBudget: the size asked for is more than the pool's virtual
	// budget (overprovision ratio × pool size) has left.
	ErrOverBudget = errors.New("pool's overprovisioning budget is exhausted")
	// ErrInUse: the volume's device is open on this node (a filesystem on
	// it is mounted, a process or a stacked device holds it) and must be
	// closed first; the error names the holder where the kernel tells.
	ErrInUse = errors.New("in use")
	// ErrUnhealthy: the pool's metadata may not change (read-only,
	// needs_check, fail) or its status cannot be read, so it takes no
	// change at all, deletes included; the error says why and what to do.
	ErrUnhealthy = errors.New("pool is unhealthy")
	// ErrDeviceFailed: Condition found the pool fine but the volume's
	// own active thin device failed, or its status cannot be read. Such an
	// error matches ErrUnhealthy too.
	ErrDeviceFailed = errors.New("thin device failed")
	// ErrInvalidArgument: a request the engine refuses as given.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrOutOfRange: a create's size range holds no size the volume can
	// have (its limit is below the required size, the source's size, the
	// filesystem's minimum or a whole block); the message, which is the
	// error's whole text, says which limit to raise.
	ErrOutOfRange = errors.New("size out of range")
	// ErrInvalidToken: a list continuation token the engine did not give.
	ErrInvalidToken = errors.New("invalid list token")
	// ErrCannotGroup: the volumes cannot be snapshotted together as
	// asked, such as a member whose filesystem cannot be frozen; the
	// error says which and why.
	ErrCannotGroup = errors.New("volumes cannot be snapshotted together")
	// ErrGroupDeadline: a group snapshot's members stayed frozen and
	// suspended past the group snapshot timeout; it was undone, and a
	// retry may succeed.
	ErrGroupDeadline = errors.New("group snapshot deadline passed")
	// ErrStoreMismatch: the database and the pool's metadata tell
	// different histories; the engine refuses to guess.
	ErrStoreMismatch = errors.New("state database and pool disagree")
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// rangeError is an ErrOutOfRange that reads as its message alone.
type rangeError struct{ msg string }

func (e *rangeError) Error() string { return e.msg }
func (e *rangeError) Unwrap() error { return ErrOutOfRange }

func outOfRangef(format string, args ...any) error {
	return &rangeError{fmt.Sprintf(format, args...)}
}

// deviceError is an error of Condition about a volume's thin device, not
// its pool: it matches ErrDeviceFailed besides what it wraps, and reads as
// what it wraps.
type deviceError struct{ err error }

func (e *deviceError) Error() string   { return e.err.Error() }
func (e *deviceError) Unwrap() []error { return []error{e.err, ErrDeviceFailed} }
