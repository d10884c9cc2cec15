package thinpool

import (
	"errors"
	"fmt"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// failedChange explains a change whose pool message or transaction id
// failed because the pool has meanwhile left write mode. The kernel commits
// its metadata after each message and ignores a commit that fails there:
// it aborts the transaction and turns the pool read-only (or fails it), so
// the message seems to succeed and the next one, set_transaction_id, is
// refused with a bare EOPNOTSUPP. Read again, the pool says what happened:
// the error is then ErrUnhealthy with the pool's reason, and the journal
// settles the change once the pool is repaired.
func (e *Engine) failedChange(err error) error {
	if errors.Is(err, ErrUnhealthy) {
		return err
	}
	st, sErr := e.k.PoolStatus(e.pool)
	if sErr == nil && !st.Fail && !st.Error && !st.NeedsCheck && st.Mode != dm.PoolModeReadOnly {
		return err
	}
	return fmt.Errorf("%w; the journal settles this change once the pool is repaired (%w)", e.healthOf(st, sErr), err)
}
