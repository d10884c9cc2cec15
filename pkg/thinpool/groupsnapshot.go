package thinpool

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/internal/failpoint"
	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// Failpoints of a group snapshot, for the crash tests: its members
// suspended (before the intent), the journal's steps, and each member's
// create_snap; and the journal's steps of a group's delete.
var (
	fpGroup          = newStepPoints("group")
	fpGroupSuspended = failpoint.New("group.members-suspended")
	fpGroupMember    = failpoint.New("group.member-created")
	fpGroupDelete    = newStepPoints("group-delete")
)

// GroupSnapshot is a group snapshot as callers see it: its record and its
// member snapshots, Members[i] of SourceIDs[i].
type GroupSnapshot struct {
	*Group
	Members []*Volume
}

// filesystems freezes the filesystems mounted on active devices; the
// engine's are the kernel's (devmapper), unit tests' a fake.
type filesystems struct {
	mounts func(dm.Dev) ([]string, error)
	freeze func(mountPoint string) error
	thaw   func(mountPoint string) error
}

var kernelFilesystems = filesystems{mounts: dm.MountPoints, freeze: dm.Freeze, thaw: dm.Thaw}

func newGroupID() string { return groupPrefix + newID(KindVolume)[len(idPrefix(KindVolume)):] }

// checkSources refuses a group of no volume, an empty id or one named
// twice.
func checkSources(ids []string) error {
	if len(ids) == 0 {
		return invalidf("a group snapshot needs at least one source volume")
	}
	seen := map[string]bool{}
	for _, id := range ids {
		switch {
		case id == "":
			return invalidf("source volume ids must not be empty")
		case seen[id]:
			return invalidf("source volume %s is named twice: name each volume of the group once", id)
		}
		seen[id] = true
	}
	return nil
}

// sameSet reports whether a and b hold the same ids, in any order.
func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// CreateGroupSnapshot takes snapshots of the volumes sourceIDs at one
// consistency point, in one pool transaction: the whole group or none.
// Every member's filesystem, where one is mounted on its active device,
// is frozen, then every active member suspended; the snapshots are taken;
// then every member is resumed and thawed. That window, from the first
// freeze, is bounded by Config.GroupSnapshotTimeout: past it the change
// is undone (ErrGroupDeadline) and every member resumed and thawed.
//
// The same name with the same volumes (in any order) and parameters
// returns the group taken before; with others it fails with ErrExists. A
// volume this node's pool does not have is ErrNotFound: a group's members
// must all be on one node. ctx bounds only the waits for the locks: once
// the window opens, the change runs to its end or its rollback.
func (e *Engine) CreateGroupSnapshot(ctx context.Context, name string, sourceIDs []string, params map[string]string) (*GroupSnapshot, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	if err := checkSources(sourceIDs); err != nil {
		return nil, fmt.Errorf("group snapshot %q: %w", name, err)
	}
	keys := []string{lockName(groupNames, name)}
	for _, id := range sourceIDs {
		keys = append(keys, lockID(id))
	}
	unlock, err := e.locks.lock(ctx, keys...)
	if err != nil {
		return nil, fmt.Errorf("group snapshot %q: %w", name, err)
	}
	defer unlock()
	if g, err := e.lookupGroup(name); err != nil {
		return nil, err
	} else if g != nil {
		return e.existingGroup(g, sourceIDs, params)
	}
	srcs := make([]*Volume, len(sourceIDs))
	var total uint64
	for i, id := range sourceIDs {
		v, err := e.Get(id)
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("group snapshot %q: %w: no volume has id %q in this node's pool: a group snapshot's volumes "+
				"must all be on one node, because the group is made consistent by stopping every volume's I/O at once in that node's kernel "+
				"and taking the snapshots in its one pool; group volumes of one node only", name, ErrNotFound, id)
		}
		if err != nil {
			return nil, fmt.Errorf("group snapshot %q: source volume %s: %w", name, id, err)
		}
		if v.Kind != KindVolume {
			return nil, invalidf("group snapshot %q: %s is a snapshot: group snapshots are taken of volumes", name, id)
		}
		srcs[i] = v
		total += v.SizeBytes
	}

	created := time.Now().UTC().Truncate(time.Millisecond)
	g := &Group{
		ID: newGroupID(), Name: name, SourceIDs: slices.Clone(sourceIDs), CreatedAt: created,
		Parameters: maps.Clone(params), State: stateCreating,
	}
	members := make([]*Volume, len(srcs))
	for i, src := range srcs {
		members[i] = &Volume{
			ID: newID(KindSnapshot), Kind: KindSnapshot, Name: name, SizeBytes: src.SizeBytes, SourceID: src.ID,
			CreatedAt: created, GroupID: g.ID, State: stateCreating,
		}
		g.SnapshotIDs = append(g.SnapshotIDs, members[i].ID)
	}

	w, err := e.openWindow(name, srcs)
	if err != nil {
		return nil, err
	}
	lockCtx, cancel := context.WithDeadline(ctx, w.deadline)
	err = e.journaled(lockCtx, change{
		points:  fpGroup,
		records: members,
		groups:  []*Group{g},
		check:   func(st dm.PoolStatus) error { return e.checkCapacityLocked(st, total) },
		apply:   func() (error, error) { return nil, e.snapMembers(w, members, srcs) },
		done:    func() { e.promised.Add(total) },
	})
	cancel()
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = w.expiredErr()
	}
	late := w.close(err == nil)
	var taken *groupTakenError
	if errors.As(err, &taken) {
		return e.existingGroup(taken.g, sourceIDs, params)
	}
	if err != nil {
		if late != nil {
			err = fmt.Errorf("%w (and %v)", err, late)
		}
		return nil, fmt.Errorf("group snapshot %q: %w", name, err)
	}
	out := &GroupSnapshot{Group: e.readyGroup(g)}
	for _, m := range members {
		out.Members = append(out.Members, e.ready(m))
	}
	if late != nil {
		return nil, fmt.Errorf("group snapshot %q taken as %s, but %w (a retry of the same request answers once they are)", name, g.ID, late)
	}
	klog.V(2).InfoS("Created group snapshot", "id", g.ID, "name", name, "sources", sourceIDs, "snapshots", g.SnapshotIDs,
		"suspendedFor", w.suspended, "frozen", len(w.frozen))
	return out, nil
}

// snapMembers takes each member's thin snapshot, under the pool lock, and
// checks the window's deadline before each and after the last. It returns
// an error only with the pool as it was: what it created is deleted
// again; a delete that fails leaves the change to the recovery, which
// rolls the group back.
func (e *Engine) snapMembers(w *window, members, srcs []*Volume) error {
	undo := func(n int, err error) error {
		for _, m := range members[:n] {
			if dErr := e.k.DeleteThin(e.pool, m.ThinID); dErr != nil && !errors.Is(dErr, dm.ErrNotFound) {
				return &partlyApplied{fmt.Errorf("%w; undoing it, deleting thin %d of %s failed: %w", err, m.ThinID, m.ID, dErr)}
			}
		}
		return err
	}
	for i, m := range members {
		if err := w.check(); err != nil {
			return undo(i, err)
		}
		if err := e.k.CreateSnap(e.pool, m.ThinID, srcs[i].ThinID); err != nil {
			return undo(i, fmt.Errorf("snapshot %s of %s: %w", m.ID, srcs[i].ID, err))
		}
		fpGroupMember.Hit()
	}
	e.groupStage("created")
	if err := w.check(); err != nil {
		return undo(len(members), err)
	}
	return nil
}

// partlyApplied is an apply's error that left the pool changed: the
// journal leaves the intent to the recovery instead of dropping it.
type partlyApplied struct{ err error }

func (e *partlyApplied) Error() string { return e.err.Error() }
func (e *partlyApplied) Unwrap() error { return e.err }

// existingGroup answers a create whose name g has: g when it has the
// request's volumes and parameters, once members that an earlier try left
// suspended or frozen are resumed and thawed.
func (e *Engine) existingGroup(g *Group, sourceIDs []string, params map[string]string) (*GroupSnapshot, error) {
	if !sameSet(g.SourceIDs, sourceIDs) {
		return nil, fmt.Errorf("%w: group snapshot %q is of volumes %v, not %v: use another name for a group of other volumes",
			ErrExists, g.Name, g.SourceIDs, sourceIDs)
	}
	if !maps.Equal(g.Parameters, params) {
		return nil, fmt.Errorf("%w: group snapshot %q was taken with other parameters (%v, not %v): use another name",
			ErrExists, g.Name, g.Parameters, params)
	}
	for _, id := range g.SourceIDs {
		if err := e.resumeLeftSuspended(id); err != nil {
			return nil, fmt.Errorf("group snapshot %q: %w", g.Name, err)
		}
		if err := e.thawLeftFrozen(id); err != nil {
			return nil, fmt.Errorf("group snapshot %q: %w", g.Name, err)
		}
	}
	klog.V(4).InfoS("The group snapshot of that name answers the create", "name", g.Name, "id", g.ID)
	return e.groupSnapshot(g)
}

// groupSnapshot is g with its members.
func (e *Engine) groupSnapshot(g *Group) (*GroupSnapshot, error) {
	out := &GroupSnapshot{Group: g.clone()}
	for _, id := range g.SnapshotIDs {
		m, err := e.Get(id)
		if err != nil {
			return nil, fmt.Errorf("member %s of group snapshot %s: %w", id, g.ID, err)
		}
		out.Members = append(out.Members, m)
	}
	return out, nil
}

func (e *Engine) readyGroup(g *Group) *Group {
	r := g.clone()
	r.State, r.TxID = stateReady, 0
	return r
}

// GetGroupSnapshot returns the group snapshot with that id, ErrNotFound
// if none.
func (e *Engine) GetGroupSnapshot(id string) (*GroupSnapshot, error) {
	g, err := e.store.group(id)
	if err != nil {
		return nil, err
	}
	if g = e.viewGroup(g); g == nil {
		return nil, fmt.Errorf("%w: no group snapshot has id %q", ErrNotFound, id)
	}
	return e.groupSnapshot(g)
}

// DeleteGroupSnapshot deletes a group snapshot and its member snapshots,
// in one pool transaction; volumes restored from them live on. A member
// active with nothing holding it is deactivated first; one that is open
// fails the delete with ErrInUse, which names it. An unknown id gives
// ErrNotFound. ctx bounds only the waits for the locks.
func (e *Engine) DeleteGroupSnapshot(ctx context.Context, id string) error {
	unlock, err := e.locks.lock(ctx, lockID(id))
	if err != nil {
		return fmt.Errorf("delete group snapshot %s: %w", id, err)
	}
	defer unlock()
	gs, err := e.GetGroupSnapshot(id)
	if err != nil {
		return err
	}
	keys := make([]string, len(gs.SnapshotIDs))
	for i, m := range gs.SnapshotIDs {
		keys[i] = lockID(m)
	}
	unlockMembers, err := e.locks.lock(ctx, keys...)
	if err != nil {
		return fmt.Errorf("delete group snapshot %s: %w", id, err)
	}
	defer unlockMembers()
	var total uint64
	members := make([]*Volume, len(gs.Members))
	for i, m := range gs.Members {
		if err := e.deactivate(m.ID); err != nil {
			return fmt.Errorf("delete group snapshot %s: member %w", id, err)
		}
		d := *m
		d.State = stateDeleting
		members[i] = &d
		total += m.SizeBytes
	}
	g := gs.Group.clone()
	g.State = stateDeleting
	err = e.journaled(ctx, change{
		points:  fpGroupDelete,
		records: members,
		groups:  []*Group{g},
		apply: func() (error, error) {
			for i, m := range members {
				if err := e.deleteThin(m); err != nil {
					if i == 0 {
						return nil, err
					}
					return nil, &partlyApplied{fmt.Errorf("delete thin %d of member %s: %w", m.ThinID, m.ID, err)}
				}
			}
			return nil, nil
		},
		done: func() { e.promised.Store(e.promised.Load() - total) },
	})
	if err != nil {
		return fmt.Errorf("delete group snapshot %s: %w", id, err)
	}
	klog.V(2).InfoS("Deleted group snapshot", "id", id, "name", g.Name, "snapshots", g.SnapshotIDs)
	return nil
}

// groupStage runs the tests' hook at a stage of a group snapshot's
// window: "frozen", "suspended", "created".
func (e *Engine) groupStage(stage string) {
	if e.groupHook != nil {
		e.groupHook(stage)
	}
}

// thawLeftFrozen thaws the filesystems on id's active device if an
// earlier group snapshot could not: a filesystem not frozen (EINVAL) is
// fine.
func (e *Engine) thawLeftFrozen(id string) error {
	info, err := e.k.Info(e.dmName(id))
	if err != nil || !info.Exists {
		return err
	}
	mps, err := e.fs.mounts(info.Dev)
	if err != nil {
		return err
	}
	if len(mps) == 0 {
		return nil
	}
	if err := e.fs.thaw(mps[0]); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("%s is still frozen since a group snapshot, and will not thaw: %w", id, err)
	}
	return nil
}

// thawAll thaws the filesystems of every active device of the pool, at
// start: a crash inside a group snapshot's window leaves them frozen, and
// the kernel keeps a filesystem frozen after the process that froze it is
// gone. A filesystem not frozen (EINVAL) is left as it is.
func (e *Engine) thawAll(devs []dm.Device) error {
	for _, d := range devs {
		if !e.ownsDevice(d.Name) {
			continue
		}
		info, err := e.k.Info(d.Name)
		if err != nil || !info.Exists {
			continue
		}
		mps, err := e.fs.mounts(info.Dev)
		if err != nil {
			return fmt.Errorf("the mounts of %s: %w", d.Name, err)
		}
		if len(mps) == 0 {
			continue
		}
		switch err := e.fs.thaw(mps[0]); {
		case err == nil:
			klog.InfoS("Thawed a filesystem left frozen by a crash", "device", d.Name, "mountPoint", mps[0])
		case !errors.Is(err, unix.EINVAL):
			return fmt.Errorf("thaw %s on %s, left frozen by a crash: %w", mps[0], d.Name, err)
		}
	}
	return nil
}
