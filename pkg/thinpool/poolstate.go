package thinpool

import (
	"errors"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// States of the pool, as PoolState names them.
const (
	StateReadWrite      = "rw"                // healthy: every change is taken
	StateOutOfDataSpace = "out_of_data_space" // full: deletes are taken, creates refused with ErrNoSpace
	StateReadOnly       = "read_only"         // metadata may not change: every change refused with ErrUnhealthy
	StateNeedsCheck     = "needs_check"       // metadata wants thin_check: every change refused
	StateFail           = "fail"              // fail mode: all I/O fails, every change refused
	StateError          = "error"             // the kernel cannot read the metadata: every change refused
	StateUnreadable     = "unreadable"        // the pool's status cannot be read or is not understood
)

// PoolStates are every state PoolState may name.
var PoolStates = []string{
	StateReadWrite, StateOutOfDataSpace, StateReadOnly, StateNeedsCheck, StateFail, StateError, StateUnreadable,
}

// stateError is an error of Health with the pool's state.
type stateError struct {
	state string
	err   error
}

func (e *stateError) Error() string { return e.err.Error() }
func (e *stateError) Unwrap() error { return e.err }

// PoolState is the state of the pool as an error of Health names it:
// StateReadWrite for nil; for an error that names none, what its sentinel
// says, StateUnreadable when it says nothing.
func PoolState(health error) string {
	var se *stateError
	switch {
	case health == nil:
		return StateReadWrite
	case errors.As(health, &se):
		return se.state
	case errors.Is(health, ErrNoSpace):
		return StateOutOfDataSpace
	}
	return StateUnreadable
}

// stateOf names the state of a status read, the most urgent first: a
// needs_check pool is also read-only.
func stateOf(st dm.PoolStatus) string {
	switch {
	case st.Fail:
		return StateFail
	case st.Error:
		return StateError
	case st.NeedsCheck:
		return StateNeedsCheck
	case st.Mode == dm.PoolModeReadOnly:
		return StateReadOnly
	case st.Mode == dm.PoolModeOutOfDataSpace:
		return StateOutOfDataSpace
	case st.Mode == dm.PoolModeReadWrite:
		return StateReadWrite
	}
	return StateUnreadable
}
