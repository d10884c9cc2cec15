package thinpool

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/internal/failpoint"
	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// Failpoints between the steps of every journaled change, for the crash
// tests: after the intent is durable, after the pool changed, after the
// transaction id moved.
type stepPoints struct{ afterIntent, afterApply, afterTxID *failpoint.Point }

func newStepPoints(op string) stepPoints {
	return stepPoints{
		afterIntent: failpoint.New(op + ".after-intent"),
		afterApply:  failpoint.New(op + ".after-apply"),
		afterTxID:   failpoint.New(op + ".after-txid"),
	}
}

var (
	fpCreate   = newStepPoints("create")
	fpSnapshot = newStepPoints("snapshot")
	fpDelete   = newStepPoints("delete")
	// Around a snapshot of an active origin: suspended (before the
	// intent), snapshot taken (origin not yet resumed).
	fpSnapshotSuspended = failpoint.New("snapshot.origin-suspended")
	fpSnapshotTaken     = failpoint.New("snapshot.taken-before-resume")
	// Recovery itself can crash: after it deleted a rolled-back thin id,
	// before the store forgot the intent.
	fpRecoverDeleted = failpoint.New("recover.after-delete")
	// A resize is recorded before the active device is reloaded.
	fpExpandRecorded = failpoint.New("expand.after-record")
)

// change is one journaled change to the pool: one intent, one pool
// transaction. It holds one record (a create, a snapshot, a delete) or
// several (a group snapshot's members, with the group's record), which the
// journal completes or rolls back together.
type change struct {
	points stepPoints
	// records are written with State creating or deleting, and all get
	// the change's transaction id; groups likewise.
	records []*Volume
	groups  []*Group
	// check runs under the pool lock before anything is written: the
	// capacity checks, so that concurrent creates cannot both pass.
	check func(dm.PoolStatus) error
	// apply changes the pool, once the records have their thin ids. It
	// returns an error only when the pool is unchanged, so a change of
	// several thin devices undoes its own first steps when a later one
	// fails; a failure after the change (an origin that would not
	// resume) is returned as late, after the change is committed.
	apply func() (late error, err error)
	// done runs under the pool lock once the pool has the change.
	done func()
}

// of is a change of the one record v.
func of(v *Volume) []*Volume { return []*Volume{v} }

// subject names a change in logs and errors: its group, or its record.
func (c *change) subject() string {
	if len(c.groups) > 0 {
		return c.groups[0].ID
	}
	return c.records[0].ID
}

// journaled runs one change: record the intent durably, change the pool,
// advance the pool's transaction id by compare-and-swap. The transaction
// id is the commit point: recovery completes a change the pool reached
// and rolls back one it did not, all of its records together. Completion
// is recorded lazily, in the next intent's commit, so a change costs one
// durable commit.
//
// ctx bounds the wait for the pool lock only. A change whose ctx ends
// first returns ctx's error, wrapped, and has changed nothing; once the
// intent is written, the change runs to its end or its rollback whatever
// becomes of ctx, as the journal has it.
func (e *Engine) journaled(ctx context.Context, c change) error {
	if err := e.poolMu.lockCtx(ctx); err != nil {
		return waitPoolErr(err)
	}
	defer e.poolMu.unlock()
	return e.journaledLocked(c)
}

// journaledLocked is journaled with the pool lock held.
func (e *Engine) journaledLocked(c change) error {
	recovering := e.dirty
	st, err := e.usableLocked()
	if err != nil {
		return err
	}
	if recovering {
		// The recovery may have settled an earlier try of this create,
		// which the caller's look-up could not see while it was pending.
		if err := e.settledEarlier(c); err != nil {
			return err
		}
	}
	if c.check != nil {
		if err := c.check(st); err != nil {
			return err
		}
	}
	committed := e.committed.Load()
	tx := committed + 1
	for _, v := range c.records {
		v.TxID = tx
		if v.State == stateCreating {
			v.CreatedTx = tx
		}
	}
	for _, g := range c.groups {
		g.TxID = tx
	}
	if err := e.store.writeIntent(committed, c.records, c.groups); err != nil {
		e.dirty = true
		return fmt.Errorf("record the intent in the state database: %w", err)
	}
	c.points.afterIntent.Hit()

	late, err := c.apply()
	var partly *partlyApplied
	if errors.As(err, &partly) {
		// The pool is changed in part: the recovery finishes the change
		// or rolls it back, as the journal has it.
		return e.abandonLocked(c.subject(), err)
	}
	if err != nil {
		if dropErr := e.store.dropIntent(c.records, c.groups); dropErr != nil {
			e.dirty = true
			klog.ErrorS(dropErr, "Could not drop the intent of a failed change; recovering before the next one", "id", c.subject())
		}
		return e.failedChange(err)
	}
	c.points.afterApply.Hit()

	if err := e.k.SetTransactionID(e.pool, committed, tx); err != nil {
		return e.abandonLocked(c.subject(), fmt.Errorf("advance the pool's transaction id from %d to %d: %w", committed, tx, err))
	}
	// The kernel commits its metadata after each message and ignores a
	// commit that fails: it aborts the transaction and leaves write mode.
	// So set_transaction_id can succeed and not be kept. A pool still in
	// write mode kept it (a read that does not commit says so); one that
	// left it may have dropped it, and the change is settled when the pool
	// is repaired. The caller is not told it succeeded meanwhile.
	if st, err := e.k.PoolStatusNoCommit(e.pool); err != nil || st.Usable() != nil {
		return e.abandonLocked(c.subject(), fmt.Errorf("the pool left write mode as transaction %d was committed, and the kernel may have dropped it (%v)",
			tx, errors.Join(err, st.Usable())))
	}
	e.committed.Store(tx)
	c.points.afterTxID.Hit()
	if c.done != nil {
		c.done()
	}
	if st.Mode == dm.PoolModeOutOfDataSpace {
		e.afterFullLocked(c.subject())
	}
	for _, v := range c.records {
		klog.V(2).InfoS("Pool change committed", "id", v.ID, "name", v.Name, "thinID", v.ThinID, "state", v.State, "transaction", tx)
	}
	for _, g := range c.groups {
		klog.V(2).InfoS("Pool change committed", "id", g.ID, "name", g.Name, "members", len(g.SnapshotIDs), "state", g.State, "transaction", tx)
	}
	return late
}

// settledEarlier finds a create's name taken by an earlier try that the
// recovery before it settled: a *nameTakenError, or a *groupTakenError for
// a group snapshot.
func (e *Engine) settledEarlier(c change) error {
	for _, g := range c.groups {
		if g.State != stateCreating {
			continue
		}
		if old, err := e.lookupGroup(g.Name); err != nil {
			return err
		} else if old != nil {
			return &groupTakenError{old}
		}
		return nil
	}
	for _, v := range c.records {
		if v.State != stateCreating || v.GroupID != "" {
			continue
		}
		if old, err := e.lookup(v.Kind, v.Name); err != nil {
			return err
		} else if old != nil {
			return &nameTakenError{old}
		}
	}
	return nil
}

// waitPoolErr is what a request gets that stopped waiting for the pool
// lock: its context's error, which errors.Is still finds.
func waitPoolErr(err error) error {
	return fmt.Errorf("wait for the pool's change in flight: %w", err)
}

// abandonLocked ends a change whose transaction id the pool may or may
// not have: the records and the pool are brought into agreement at once
// when the pool can still be changed, and once it is repaired otherwise.
// The caller gets err, explained by the pool's state: a change that did
// complete is found by its retry.
func (e *Engine) abandonLocked(subject string, err error) error {
	e.dirty = true
	err = e.failedChange(err)
	if errors.Is(err, ErrUnhealthy) {
		return err
	}
	if recErr := e.recoverLocked(); recErr != nil {
		klog.ErrorS(recErr, "Recovery after a failed transaction failed", "id", subject)
	}
	return err
}

// nameTakenError is what a create finds when the recovery before it
// settled an earlier try of the same name: that record answers it.
type nameTakenError struct{ v *Volume }

func (e *nameTakenError) Error() string {
	return fmt.Sprintf("%s %q exists as %s", e.v.Kind, e.v.Name, e.v.ID)
}

// groupTakenError is nameTakenError for a group snapshot.
type groupTakenError struct{ g *Group }

func (e *groupTakenError) Error() string {
	return fmt.Sprintf("group snapshot %q exists as %s", e.g.Name, e.g.ID)
}

// usableLocked refuses changes to a pool whose metadata may not change
// and finishes the recovery a failed change left behind. A pool out of
// data space takes changes: the ones that need space refuse it in their
// capacity check. It returns the pool's status, read once for both the
// health and the capacity checks of a change (a status read commits the
// pool's metadata).
func (e *Engine) usableLocked() (dm.PoolStatus, error) {
	st, err := e.k.PoolStatus(e.pool)
	if err := e.changeableOf(st, err); err != nil {
		return st, err
	}
	if e.dirty {
		return st, e.recoverLocked()
	}
	return st, nil
}

// afterFullLocked follows a change (a delete) to a pool that was out of
// data space. The kernel puts such a pool back in write mode, and
// resubmits the writes it queued, at a metadata commit that finds free
// data blocks (check_for_data_space in drivers/md/dm-thin.c). The delete's
// messages commit; the status read commits again and tells whether the
// delete freed anything: blocks shared with snapshots or copies stay
// allocated, and queued writes may take the freed blocks at once.
func (e *Engine) afterFullLocked(subject string) {
	st, err := e.k.PoolStatus(e.pool)
	switch {
	case err != nil:
		klog.ErrorS(err, "Could not read the status of the pool after freeing space", "pool", e.pool, "id", subject)
	case st.Mode == dm.PoolModeReadWrite:
		klog.InfoS("The pool has free data space again and is back in write mode", "pool", e.pool, "id", subject,
			"usedBlocks", st.DataUsed, "totalBlocks", st.DataTotal)
	default:
		klog.InfoS("The pool is still out of data space: the change freed no block, or writes took them", "pool", e.pool,
			"id", subject, "mode", st.Mode, "usedBlocks", st.DataUsed, "totalBlocks", st.DataTotal)
	}
}

// recoverLocked brings the records and the pool into agreement after a
// crash or a failed change, using the pool's transaction id P and the
// store's last committed id C. The intent's records go together:
//   - a pending change with transaction C+1 = P was completed by the pool:
//     settle all of it;
//   - P = C: the change never completed: its creates are rolled back
//     (their thin ids deleted if the pool has them, their records
//     forgotten); its deletes are finished (deletes are idempotent, and
//     the caller asked for the records to go) with one more transaction;
//   - anything else means the database and the pool's metadata are not
//     each other's: refuse.
//
// The budget's promised bytes are totalled again afterwards, as start
// totals them: the change recovered was not counted when it failed.
func (e *Engine) recoverLocked() error {
	st, err := e.k.PoolStatus(e.pool)
	if err != nil {
		return fmt.Errorf("read the pool's transaction id: %w", err)
	}
	j, err := e.store.journal()
	if err != nil {
		return err
	}
	pendTx, err := j.txID()
	if err != nil {
		return err
	}
	p, c := st.TransactionID, j.committed
	pending := len(j.pending)+len(j.groups) > 0
	switch {
	case pending && p == c+1 && pendTx == p:
		if err := e.store.settle(p); err != nil {
			return err
		}
		for _, v := range j.pending {
			klog.V(2).InfoS("Settled the last change, which the pool had completed", "id", v.ID, "state", v.State, "transaction", p)
		}
	case p == c && !pending:
		if err := e.store.settle(p); err != nil {
			return err
		}
	case p == c:
		if p, err = e.undoLocked(j); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: the database has transaction %d (pending %d) but the pool's metadata has %d; "+
			"this state directory does not belong to this pool: restore the matching state directory or pool devices",
			ErrStoreMismatch, c, pendTx, p)
	}
	e.committed.Store(p)
	if err := e.totalPromisedLocked(); err != nil {
		return err
	}
	e.dirty = false
	return nil
}

// undoLocked ends a change the pool never completed (its transaction is
// the pool's, C): the creates are rolled back and forgotten first, then
// the deletes finished in transaction C+1. A crash between the two leaves
// an intent of deletes alone, which the next recovery finishes. It returns
// the pool's transaction id after.
func (e *Engine) undoLocked(j journal) (uint64, error) {
	c := j.committed
	var creates, deletes []*Volume
	var groupCreates, groupDeletes []*Group
	for _, v := range j.pending {
		if v.State == stateCreating {
			creates = append(creates, v)
		} else {
			deletes = append(deletes, v)
		}
	}
	for _, g := range j.groups {
		if g.State == stateCreating {
			groupCreates = append(groupCreates, g)
		} else {
			groupDeletes = append(groupDeletes, g)
		}
	}
	for _, v := range creates {
		if err := e.k.DeleteThin(e.pool, v.ThinID); err != nil && !errors.Is(err, dm.ErrNotFound) {
			return c, fmt.Errorf("roll back thin device %d of %s: %w", v.ThinID, v.ID, err)
		}
		fpRecoverDeleted.Hit()
	}
	if len(creates)+len(groupCreates) > 0 {
		if err := e.store.dropIntent(creates, groupCreates); err != nil {
			return c, err
		}
		for _, v := range creates {
			klog.InfoS("Rolled back a create the pool never completed", "id", v.ID, "name", v.Name, "thinID", v.ThinID, "group", v.GroupID)
		}
		for _, g := range groupCreates {
			klog.InfoS("Rolled back a group snapshot the pool never completed", "id", g.ID, "name", g.Name, "members", len(g.SnapshotIDs))
		}
	}
	if len(deletes)+len(groupDeletes) == 0 {
		return c, nil
	}
	for _, v := range deletes {
		if err := e.k.DeleteThin(e.pool, v.ThinID); err != nil && !errors.Is(err, dm.ErrNotFound) {
			return c, fmt.Errorf("finish deleting thin device %d of %s: %w", v.ThinID, v.ID, err)
		}
	}
	if err := e.k.SetTransactionID(e.pool, c, c+1); err != nil {
		return c, fmt.Errorf("finish deleting %s: advance the pool's transaction id: %w", j.subject(), err)
	}
	if err := e.store.settle(c + 1); err != nil {
		return c + 1, err
	}
	for _, v := range deletes {
		klog.InfoS("Finished a delete the pool had not completed", "id", v.ID, "name", v.Name, "thinID", v.ThinID, "group", v.GroupID)
	}
	return c + 1, nil
}
