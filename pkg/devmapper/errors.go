package devmapper

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Sentinel errors, for errors.Is. The kernel's errno stays reachable too:
// errors.Is(err, unix.EBUSY) holds for an error built from EBUSY.
var (
	// ErrExists: a dm device with that name, or a thin device with that
	// id, already exists.
	ErrExists = errors.New("already exists")
	// ErrNotFound: no dm device with that name, no thin device with that
	// id, or no loop device backing that file.
	ErrNotFound = errors.New("not found")
	// ErrBusy: the device is open or in use and cannot be removed.
	ErrBusy = errors.New("device or resource busy")
	// ErrInvalidArgument: an argument was refused before any ioctl.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnsupported: the running kernel's device-mapper is too old for the
	// operation.
	ErrUnsupported = errors.New("not supported by this kernel")
	// ErrStopped: an EventWaiter's Wait returned because the waiter was
	// stopped or closed, not because of an event.
	ErrStopped = errors.New("event waiter stopped")
)

// opCreate is the operation name of DM_DEV_CREATE, whose EBUSY means the
// name is taken rather than that a device is in use.
const opCreate = "create"

// Error is a failed kernel operation: which operation on which device, and
// the errno (or other cause) the kernel gave.
type Error struct {
	Op     string // "create", "remove", "message create_thin 7", "loop attach", ...
	Device string // dm name, device path or file the operation was on
	Err    error  // usually a unix.Errno
}

func (e *Error) Error() string {
	if e.Device == "" {
		return fmt.Sprintf("devmapper %s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("devmapper %s %s: %v", e.Op, e.Device, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Is maps the errno to the package's sentinels. The meaning of EBUSY
// depends on the operation: a taken name for create, an open device
// otherwise.
func (e *Error) Is(target error) bool {
	var errno unix.Errno
	if !errors.As(e.Err, &errno) {
		return false
	}
	switch target {
	case ErrExists:
		return errno == unix.EEXIST || (errno == unix.EBUSY && e.Op == opCreate)
	case ErrNotFound:
		return errno == unix.ENXIO || errno == unix.ENODATA || errno == unix.ENOENT
	case ErrBusy:
		return errno == unix.EBUSY && e.Op != opCreate
	}
	return false
}

// invalidf returns an ErrInvalidArgument with a message that says what is
// wrong.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}
