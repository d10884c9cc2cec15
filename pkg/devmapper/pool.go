package devmapper

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrTransactionMismatch: set_transaction_id named an old id that is not
// the pool's current one; the pool is unchanged.
var ErrTransactionMismatch = errors.New("transaction id mismatch")

// poolTargets is the one-target table of a thin-pool dataSectors long.
func poolTargets(t PoolTable, dataSectors uint64) ([]Target, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if dataSectors < uint64(t.DataBlockSize) {
		return nil, invalidf("pool of %d sectors is smaller than one data block of %d sectors", dataSectors, t.DataBlockSize)
	}
	return []Target{{Start: 0, Length: dataSectors, Type: "thin-pool", Params: t.Params()}}, nil
}

// CreatePool creates and activates a thin-pool device over t's metadata
// and data devices, dataSectors long. It is marked pool-internal for udev.
// Whether the metadata is new or an existing pool's, the kernel decides:
// zeroed metadata is formatted, existing metadata is opened.
//
// The table itself is always loaded read-write: the kernel refuses a
// thin-pool in a read-only table ("target type may not be included in a
// read-only table"). A read-only pool is the read_only feature of t.
func (c *Control) CreatePool(name, uuid string, t PoolTable, dataSectors uint64) (Dev, error) {
	targets, err := poolTargets(t, dataSectors)
	if err != nil {
		return Dev{}, err
	}
	return c.Activate(name, uuid, targets, ActivateOptions{Udev: UdevPoolInternal})
}

// ReloadPool swaps in a new table for a live pool, typically a larger
// dataSectors after its data device grew. Thin devices on the pool stay
// active; their I/O waits while the pool is suspended. The kernel refuses
// to shrink a pool.
func (c *Control) ReloadPool(name string, t PoolTable, dataSectors uint64) error {
	targets, err := poolTargets(t, dataSectors)
	if err != nil {
		return err
	}
	return c.Reload(name, targets, ActivateOptions{Udev: UdevPoolInternal}) // read-write table: see CreatePool
}

// PoolStatus reads and parses the pool's status. The kernel commits the
// pool's metadata first, so the figures are current.
func (c *Control) PoolStatus(name string) (PoolStatus, error) {
	return c.poolStatus(name, false)
}

// PoolStatusNoCommit reads the pool's status as PoolStatus does, but
// without the metadata commit a status read makes (DM_NOFLUSH_FLAG): the
// mode is current, the usage may not count changes not yet committed.
func (c *Control) PoolStatusNoCommit(name string) (PoolStatus, error) {
	return c.poolStatus(name, true)
}

func (c *Control) poolStatus(name string, noFlush bool) (PoolStatus, error) {
	line, err := c.singleStatus(name, "thin-pool", noFlush)
	if err != nil {
		return PoolStatus{}, err
	}
	st, err := ParsePoolStatus(line)
	if err != nil {
		return PoolStatus{}, &Error{Op: "status", Device: name, Err: err}
	}
	return st, nil
}

// singleStatus returns the status line of a device whose table is one
// target of the given type; noFlush as Status takes it.
func (c *Control) singleStatus(name, targetType string, noFlush bool) (string, error) {
	ts, err := c.Status(name, noFlush)
	if err != nil {
		return "", err
	}
	if len(ts) != 1 || ts[0].Type != targetType {
		return "", &Error{Op: "status", Device: name, Err: fmt.Errorf(
			"%w: device is not a single %s target (it has %d targets)", unix.EINVAL, targetType, len(ts))}
	}
	return ts[0].Params, nil
}

func validateThinID(id uint32) error {
	if id > MaxThinID {
		return invalidf("thin device id %d is larger than %d", id, MaxThinID)
	}
	return nil
}

// CreateThin creates thin device id in the pool, empty. An id in use fails
// with ErrExists.
func (c *Control) CreateThin(pool string, id uint32) error {
	if err := validateThinID(id); err != nil {
		return err
	}
	_, err := c.Message(pool, 0, fmt.Sprintf("create_thin %d", id))
	return err
}

// CreateSnap creates thin device id as a copy-on-write snapshot of
// originID. An active origin must be suspended around the call (see
// Suspend) so that the snapshot holds everything written before it.
func (c *Control) CreateSnap(pool string, id, originID uint32) error {
	if err := validateThinID(id); err != nil {
		return err
	}
	if err := validateThinID(originID); err != nil {
		return err
	}
	_, err := c.Message(pool, 0, fmt.Sprintf("create_snap %d %d", id, originID))
	return err
}

// DeleteThin deletes thin device id and frees the blocks only it mapped.
// An id that does not exist fails with ErrNotFound; an active one with
// ErrBusy.
func (c *Control) DeleteThin(pool string, id uint32) error {
	if err := validateThinID(id); err != nil {
		return err
	}
	_, err := c.Message(pool, 0, fmt.Sprintf("delete %d", id))
	return err
}

// ReserveMetadataSnap takes a metadata snapshot of the pool: the kernel
// commits, copies the superblock into a block of its own and holds the
// trees that copy names, so that they stay as they are, readable from the
// metadata device while the pool goes on changing. The pool status then
// gives the copy's block (HeldMetadataRoot), and so does the live
// superblock's held_root. A pool holds one at a time: while one is held,
// another fails with ErrBusy.
func (c *Control) ReserveMetadataSnap(pool string) error {
	_, err := c.Message(pool, 0, "reserve_metadata_snap")
	return err
}

// ReleaseMetadataSnap drops the pool's metadata snapshot and frees the
// metadata blocks only it held. With none held it fails with EINVAL.
func (c *Control) ReleaseMetadataSnap(pool string) error {
	_, err := c.Message(pool, 0, "release_metadata_snap")
	return err
}

// SetTransactionID moves the pool's transaction id from oldID to newID. It
// is a compare-and-swap: when the pool is not at oldID it fails with
// ErrTransactionMismatch and changes nothing.
func (c *Control) SetTransactionID(pool string, oldID, newID uint64) error {
	_, err := c.Message(pool, 0, fmt.Sprintf("set_transaction_id %d %d", oldID, newID))
	if err == nil || !isErrno(err, unix.EINVAL) {
		return err
	}
	st, stErr := c.PoolStatus(pool)
	if stErr == nil && st.TransactionID != oldID {
		return fmt.Errorf("%w: the pool is at %d, not %d: %w", ErrTransactionMismatch, st.TransactionID, oldID, err)
	}
	return err
}
