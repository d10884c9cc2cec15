package thinpool

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

const maxNameLen = 1024

func validName(name string) error {
	if name == "" || len(name) > maxNameLen || strings.ContainsRune(name, 0) {
		return invalidf("name %q must be 1 to %d bytes without NUL", name, maxNameLen)
	}
	return nil
}

func lockName(kind Kind, name string) string { return "name/" + string(kind) + "/" + name }
func lockID(id string) string                { return "id/" + id }

// roundUp rounds size up to whole pool blocks, refusing a size no pool
// could hold.
func (e *Engine) roundUp(size uint64) (uint64, error) {
	if size > 1<<62 {
		return 0, invalidf("size %d bytes is too large", size)
	}
	return RoundUp(size, e.BlockSizeBytes()), nil
}

// CreateVolume creates a blank volume, or a copy of a snapshot or volume
// that is instant and independent of its source, of the size VolumeSize
// picks for req. A name that is taken is decided by one rule,
// (*Volume).Answers: the volume of that name is returned when it has the
// request's source and parameters and a size in its range, even once
// grown since or once its source is deleted (the name is looked up
// before the source); otherwise the create fails with ErrExists, which
// says what differs. A source that does not exist is ErrSourceNotFound,
// a range that holds no size ErrOutOfRange. ctx bounds only the waits for
// the locks of the name, the source and the pool: once the change has
// begun, it runs to its end or its rollback whatever becomes of ctx.
func (e *Engine) CreateVolume(ctx context.Context, req CreateRequest) (*Volume, error) {
	if err := validName(req.Name); err != nil {
		return nil, err
	}
	keys := []string{lockName(KindVolume, req.Name)}
	if req.SourceID != "" {
		keys = append(keys, lockID(req.SourceID))
	}
	unlock, err := e.locks.lock(ctx, keys...)
	if err != nil {
		return nil, fmt.Errorf("create volume %q: %w", req.Name, err)
	}
	defer unlock()

	if v, err := e.lookup(KindVolume, req.Name); err != nil {
		return nil, err
	} else if v != nil {
		return e.existingVolume(v, req)
	}
	var src *Volume
	var srcBytes uint64
	if req.SourceID != "" {
		if src, err = e.source(req.SourceID, req.SourceKind); err != nil {
			return nil, err
		}
		srcBytes = src.SizeBytes
	}
	size, err := VolumeSize(req, srcBytes, e.BlockSizeBytes())
	if err != nil {
		return nil, err
	}
	if size, err = e.roundUp(size); err != nil { // refuses a size no pool could hold
		return nil, err
	}

	v := &Volume{
		ID: newID(KindVolume), Kind: KindVolume, Name: req.Name, SizeBytes: size, SourceID: req.SourceID,
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond), Parameters: maps.Clone(req.Parameters), State: stateCreating,
	}
	c := change{
		points:  fpCreate,
		records: of(v),
		check:   func(st dm.PoolStatus) error { return e.checkCapacityLocked(st, size) },
		apply:   func() (error, error) { return nil, e.k.CreateThin(e.pool, v.ThinID) },
		done:    func() { e.promised.Add(v.SizeBytes) },
	}
	if src == nil {
		err = e.journaled(ctx, c)
	} else {
		c.points = fpSnapshot
		err = e.journaledCopy(ctx, c, src, nil)
	}
	var taken *nameTakenError
	if errors.As(err, &taken) {
		return e.existingVolume(taken.v, req)
	}
	if err != nil {
		return nil, fmt.Errorf("create volume %q: %w", req.Name, err)
	}
	klog.V(2).InfoS("Created volume", "id", v.ID, "name", v.Name, "bytes", size, "source", v.SourceID, "thinID", v.ThinID)
	return e.ready(v), nil
}

// existingVolume answers a create whose name v has, whether the look-up
// found it or the recovery before the change settled it: v when it
// answers req, once a source that a copy left suspended is resumed.
func (e *Engine) existingVolume(v *Volume, req CreateRequest) (*Volume, error) {
	if err := v.Answers(req); err != nil {
		return nil, err
	}
	if req.SourceID != "" {
		if err := e.resumeLeftSuspended(req.SourceID); err != nil {
			return nil, fmt.Errorf("create volume %q: %w", req.Name, err)
		}
	}
	klog.V(4).InfoS("The volume of that name answers the create", "name", req.Name, "id", v.ID, "bytes", v.SizeBytes)
	return v, nil
}

// source returns the record a copy is to be made from: ErrSourceNotFound
// when no record has the id, ErrNotFound when the record is of another
// kind than kind ("": either).
func (e *Engine) source(id string, kind Kind) (*Volume, error) {
	what := kind
	if what == "" {
		what = "volume or snapshot"
	}
	v, err := e.Get(id)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: no %s has id %q", ErrSourceNotFound, what, id)
	}
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", id, err)
	}
	if kind != "" && v.Kind != kind {
		return nil, fmt.Errorf("%w: no %s has id %q: it is a %s's id; pass a %s id", ErrNotFound, kind, id, v.Kind, kind)
	}
	return v, nil
}

// CreateSnapshot takes a snapshot of a volume, active or not. The same
// name from the same volume returns the snapshot taken before; from
// another volume it fails with ErrExists. ctx bounds only the waits for
// the locks of the name, the volume and the pool: once the change has
// begun, it runs to its end or its rollback whatever becomes of ctx.
func (e *Engine) CreateSnapshot(ctx context.Context, name, sourceID string, params map[string]string) (*Volume, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	unlock, err := e.locks.lock(ctx, lockName(KindSnapshot, name), lockID(sourceID))
	if err != nil {
		return nil, fmt.Errorf("snapshot %q of %s: %w", name, sourceID, err)
	}
	defer unlock()
	// existing answers a request for a name that is taken.
	existing := func(v *Volume) (*Volume, error) {
		if v.SourceID != sourceID {
			return nil, fmt.Errorf("%w: snapshot %q is of %s, not %s: use another name for a snapshot of %s", ErrExists, name, v.SourceID, sourceID, sourceID)
		}
		if err := e.resumeLeftSuspended(sourceID); err != nil {
			return nil, fmt.Errorf("snapshot %q of %s: %w", name, sourceID, err)
		}
		return v, nil
	}
	if v, err := e.lookup(KindSnapshot, name); err != nil {
		return nil, err
	} else if v != nil {
		return existing(v)
	}
	src, err := e.Get(sourceID)
	if err != nil {
		return nil, fmt.Errorf("source volume %s: %w", sourceID, err)
	}
	if src.Kind != KindVolume {
		return nil, invalidf("%s is a snapshot: snapshots are taken of volumes", sourceID)
	}
	v := &Volume{
		ID: newID(KindSnapshot), Kind: KindSnapshot, Name: name, SizeBytes: src.SizeBytes, SourceID: sourceID,
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond), Parameters: maps.Clone(params), State: stateCreating,
	}
	err = e.journaledCopy(ctx, change{
		points:  fpSnapshot,
		records: of(v),
		check:   func(st dm.PoolStatus) error { return e.checkCapacityLocked(st, v.SizeBytes) },
		done:    func() { e.promised.Add(v.SizeBytes) },
	}, src, fpSnapshotSuspended)
	var taken *nameTakenError
	if errors.As(err, &taken) {
		return existing(taken.v)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot %q of %s: %w", name, sourceID, err)
	}
	klog.V(2).InfoS("Created snapshot", "id", v.ID, "name", name, "source", sourceID, "thinID", v.ThinID)
	return e.ready(v), nil
}

// freezeSource suspends an active source (flushing it and freezing its
// filesystem), so that a copy holds every write the source acknowledged,
// and returns what resumes it; nil when the source is not active. It runs
// before the change takes the pool lock: the flush may need new blocks,
// and so a pool that grows by itself to grow, which takes that lock.
func (e *Engine) freezeSource(src *Volume, suspended interface{ Hit() }) (thaw func() error, err error) {
	name := e.dmName(src.ID)
	info, err := e.k.Info(name)
	if err != nil {
		return nil, err
	}
	if !info.Exists || !info.LiveTable {
		return nil, nil
	}
	// A pool that takes no copy now is not made to flush the source: on a
	// full pool that queues writes, the flush would wait for space that
	// the refused change does not free. A read that does not commit is
	// enough to tell.
	if err := e.healthOf(e.k.PoolStatusNoCommit(e.pool)); err != nil {
		return nil, err
	}
	if err := e.k.Suspend(name, dm.SuspendOptions{}); err != nil {
		return nil, e.failedChange(fmt.Errorf("suspend %s for a consistent snapshot: %w", src.ID, err))
	}
	if suspended != nil {
		suspended.Hit()
	}
	return func() error { return e.k.Resume(name, 0) }, nil
}

// journaledCopy runs c, whose pool change is the create_snap of src, with
// an active src frozen from before the change to after it. A source that
// will not resume is reported after the change is committed: the copy
// exists, and a retry resumes the source. A change whose ctx ends while it
// waits for the pool lock resumes the source and changes nothing.
func (e *Engine) journaledCopy(ctx context.Context, c change, src *Volume, suspended interface{ Hit() }) error {
	thaw, err := e.freezeSource(src, suspended)
	if err != nil {
		return err
	}
	v := c.records[0]
	c.apply = func() (error, error) {
		err := e.k.CreateSnap(e.pool, v.ThinID, src.ThinID)
		if err == nil && thaw != nil {
			fpSnapshotTaken.Hit()
		}
		return nil, err
	}
	err = e.journaled(ctx, c)
	if thaw == nil {
		return err
	}
	if rErr := thaw(); rErr != nil {
		if err != nil {
			return fmt.Errorf("%w (and resuming %s failed: %v)", err, src.ID, rErr)
		}
		return fmt.Errorf("snapshot taken, but %s could not be resumed (a retry resumes it): %w", src.ID, rErr)
	}
	return err
}

// resumeLeftSuspended resumes the active device of id if a snapshot of it
// left it suspended because it would not resume then: the retry of that
// snapshot or copy, which finds it taken, and an activation of the
// volume answer OK only once it is resumed. Operations on a volume hold
// its lock, so no other operation of the engine has it suspended
// meanwhile.
func (e *Engine) resumeLeftSuspended(id string) error {
	name := e.dmName(id)
	info, err := e.k.Info(name)
	if err != nil {
		return err
	}
	if !info.Exists || !info.Suspended {
		return nil
	}
	if err := e.k.Resume(name, 0); err != nil {
		return fmt.Errorf("%s is still suspended since a snapshot of it, and will not resume: %w", id, err)
	}
	klog.InfoS("Resumed the source of a snapshot, which the snapshot had left suspended", "id", id, "device", name)
	return nil
}

// Delete deletes a volume or snapshot. Its snapshots and copies live on:
// they share blocks with it, not depend on it. A device left active with
// nothing holding it open (a stage that failed, a node plugin that lost
// track) is deactivated first; one that is open is refused with ErrInUse,
// which names the holder. An unknown id gives ErrNotFound. ctx bounds only
// the waits for the locks of the id and the pool: once the change has
// begun, it runs to its end or its rollback whatever becomes of ctx.
func (e *Engine) Delete(ctx context.Context, id string) error {
	unlock, err := e.locks.lock(ctx, lockID(id))
	if err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	defer unlock()
	v, err := e.Get(id)
	if err != nil {
		return err
	}
	if v.GroupID != "" {
		return invalidf("snapshot %s belongs to group snapshot %s and is deleted with it, not alone: delete the group snapshot", id, v.GroupID)
	}
	if err := e.deactivate(id); err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	d := *v
	d.State = stateDeleting
	err = e.journaled(ctx, change{
		points:  fpDelete,
		records: of(&d),
		apply:   func() (error, error) { return nil, e.deleteThin(&d) },
		done:    func() { e.promised.Store(e.promised.Load() - d.SizeBytes) },
	})
	if err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	klog.V(2).InfoS("Deleted", "id", id, "name", v.Name, "thinID", v.ThinID)
	return nil
}

// deleteThin deletes the thin device of v. A device the pool does not
// have (ENODATA) is already deleted, which is what recovery accepts too:
// the record goes rather than fail every retry.
func (e *Engine) deleteThin(v *Volume) error {
	err := e.k.DeleteThin(e.pool, v.ThinID)
	if errors.Is(err, unix.ENODATA) {
		klog.InfoS("The pool has no thin device for this record any more; removing the record", "id", v.ID, "name", v.Name, "thinID", v.ThinID, "err", err)
		return nil
	}
	return err
}

// Expand grows a volume to at least sizeBytes (rounded up to the block
// size) and returns it. An active volume's device grows at once; its
// filesystem is the caller's. Asking for less than the volume has changes
// nothing, except that an active device smaller than the record, left by
// a crash mid-expand, grows to it. ctx bounds only the waits for the
// locks of the id and the pool: once the larger size is recorded, the
// device grows whatever becomes of ctx.
func (e *Engine) Expand(ctx context.Context, id string, sizeBytes uint64) (*Volume, error) {
	unlock, err := e.locks.lock(ctx, lockID(id))
	if err != nil {
		return nil, fmt.Errorf("expand %s: %w", id, err)
	}
	defer unlock()
	v, err := e.Get(id)
	if err != nil {
		return nil, err
	}
	if v.Kind != KindVolume {
		return nil, invalidf("%s is a snapshot: only volumes grow", id)
	}
	size, err := e.roundUp(sizeBytes)
	if err != nil {
		return nil, err
	}
	if size <= v.SizeBytes {
		// Nothing to record, but an expand that a crash cut short between
		// its record and the device left an active device smaller than
		// the record: the retry finishes it.
		if err := e.resizeIfActive(v); err != nil {
			return nil, err
		}
		return v, nil
	}
	grown := *v
	grown.SizeBytes = size
	// The pool's metadata does not hold a thin device's size, so this is
	// not journaled: the record is written first, and activation and
	// Activate of an active device follow the record.
	if err := e.poolMu.lockCtx(ctx); err != nil {
		return nil, fmt.Errorf("expand %s: %w", id, waitPoolErr(err))
	}
	st, err := e.usableLocked() // an unhealthy pool takes no changes
	if err == nil {
		err = e.checkCapacityLocked(st, size-v.SizeBytes)
	}
	if err == nil {
		err = e.store.put(e.committed.Load(), &grown)
	}
	if err == nil {
		e.promised.Add(size - v.SizeBytes)
	}
	e.poolMu.unlock()
	if err != nil {
		return nil, fmt.Errorf("expand %s: %w", id, err)
	}
	fpExpandRecorded.Hit()
	if err := e.resizeIfActive(&grown); err != nil {
		return nil, err
	}
	klog.V(2).InfoS("Expanded volume", "id", id, "fromBytes", v.SizeBytes, "toBytes", size)
	return &grown, nil
}

// Get returns the volume or snapshot with that id.
func (e *Engine) Get(id string) (*Volume, error) {
	v, err := e.store.get(id)
	if err != nil {
		return nil, err
	}
	if v = e.view(v); v == nil {
		return nil, fmt.Errorf("%w: no volume or snapshot has id %q", ErrNotFound, id)
	}
	return v, nil
}

// GetByName returns the volume or snapshot with that name.
func (e *Engine) GetByName(kind Kind, name string) (*Volume, error) {
	v, err := e.lookup(kind, name)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("%w: no %s is named %q", ErrNotFound, kind, name)
	}
	return v, nil
}

func (e *Engine) lookup(kind Kind, name string) (*Volume, error) {
	v, err := e.store.byName(kind, name)
	if err != nil {
		return nil, err
	}
	return e.view(v), nil
}

// view is a record as callers see it: a change the pool completed is
// settled, and a record whose change is still in flight (or was never
// completed) does not exist yet, or any more.
func (e *Engine) view(v *Volume) *Volume {
	if v == nil {
		return nil
	}
	v = v.settled(e.committed.Load())
	if v == nil || v.State != stateReady {
		return nil
	}
	return v
}

// ready is a record just committed, as callers see it.
func (e *Engine) ready(v *Volume) *Volume {
	r := *v
	r.State, r.TxID = stateReady, 0
	return &r
}

// List returns up to max (0: all) volumes or snapshots in id order,
// starting at token, and the token of the next page ("" after the last).
// Pages are stable: records created or deleted meanwhile do not shift
// them.
func (e *Engine) List(kind Kind, token string, max int) ([]*Volume, string, error) {
	prefix := idPrefix(kind)
	if token != "" && !strings.HasPrefix(token, prefix) {
		return nil, "", fmt.Errorf("%w: %q is not a %s list token", ErrInvalidToken, token, kind)
	}
	var out []*Volume
	next := ""
	err := e.store.scan(prefix, token, func(v *Volume) bool {
		if v = e.view(v); v == nil {
			return true
		}
		if max > 0 && len(out) == max {
			next = v.ID
			return false
		}
		out = append(out, v)
		return true
	})
	return out, next, err
}
