package thinpool

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/klog/v2"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// window is a group snapshot's consistency point held open: the members'
// filesystems frozen, then their devices suspended, until close resumes
// and thaws them. Freezing every filesystem first means each has flushed
// and takes no more writes before the first device stops, so the
// suspends have no filesystem flush of their own to wait for (they skip
// it) and I/O stops at the devices only for the snapshots' messages; and
// a filesystem that cannot freeze is found before anything is suspended.
type window struct {
	e        *Engine
	name     string
	deadline time.Time // on the engine's clock
	timeout  time.Duration

	frozen     []string        // mount points, in the order frozen
	suspended  []string        // dm names, in the order suspended
	skipFreeze map[string]bool // suspended devices whose filesystem is frozen already
	since      time.Time       // when the first device was suspended
	held       time.Duration   // from the first suspend to the last resume
}

// openWindow freezes the filesystems mounted on the active members and
// suspends the active members, checking the deadline after each step. It
// runs before the change takes the pool lock, as freezeSource does: a
// flush may need new blocks, and so a pool that grows by itself to grow.
// On an error everything it did is undone.
func (e *Engine) openWindow(name string, srcs []*Volume) (*window, error) {
	w := &window{e: e, name: name, timeout: e.cfg.GroupSnapshotTimeout, skipFreeze: map[string]bool{}}
	w.deadline = e.now().Add(w.timeout)
	type active struct{ id, dmName, mount string }
	var act []active
	for _, src := range srcs {
		name := e.dmName(src.ID)
		info, err := e.k.Info(name)
		if err != nil {
			return nil, err
		}
		if !info.Exists || !info.LiveTable {
			continue // not active: no I/O to stop
		}
		a := active{id: src.ID, dmName: name}
		mps, err := e.fs.mounts(info.Dev)
		if err != nil {
			return nil, fmt.Errorf("the mounts of %s: %w", src.ID, err)
		}
		if len(mps) > 0 {
			a.mount = mps[0] // bind mounts share the one superblock
		}
		act = append(act, a)
	}
	if len(act) > 0 {
		// As freezeSource: a pool that takes no snapshot now is not made
		// to flush the members.
		if err := e.healthOf(e.k.PoolStatusNoCommit(e.pool)); err != nil {
			return nil, err
		}
	}
	fail := func(err error) (*window, error) {
		if cErr := w.close(false); cErr != nil {
			err = fmt.Errorf("%w (and %v)", err, cErr)
		}
		return nil, err
	}
	for _, a := range act {
		if a.mount == "" {
			continue
		}
		if err := e.fs.freeze(a.mount); err != nil {
			return fail(fmt.Errorf("%w: the filesystem of %s at %s cannot be frozen, so the group would not be consistent: %w",
				ErrCannotGroup, a.id, a.mount, err))
		}
		w.frozen = append(w.frozen, a.mount)
		w.skipFreeze[a.dmName] = true
		if err := w.check(); err != nil {
			return fail(err)
		}
	}
	e.groupStage("frozen")
	w.since = time.Now()
	for _, a := range act {
		if err := e.k.Suspend(a.dmName, dm.SuspendOptions{SkipFreeze: w.skipFreeze[a.dmName]}); err != nil {
			return fail(e.failedChange(fmt.Errorf("suspend %s for a consistent group snapshot: %w", a.id, err)))
		}
		w.suspended = append(w.suspended, a.dmName)
		if err := w.check(); err != nil {
			return fail(err)
		}
	}
	fpGroupSuspended.Hit()
	e.groupStage("suspended")
	return w, nil
}

// check fails once the window has passed its deadline.
func (w *window) check() error {
	if w.e.now().After(w.deadline) {
		return w.expiredErr()
	}
	return nil
}

func (w *window) expiredErr() error {
	return fmt.Errorf("%w: the group's members were frozen and suspended for longer than the %v the group snapshot may take; "+
		"the snapshots taken are deleted and every member resumed: retry, or raise the group snapshot timeout if the pool is this slow",
		ErrGroupDeadline, w.timeout)
}

// close resumes every suspended member, then thaws every frozen
// filesystem, all of them whatever fails, and records the window. It
// returns what would not resume or thaw.
func (w *window) close(created bool) error {
	var errs []error
	for _, name := range w.suspended {
		if err := w.e.k.Resume(name, 0); err != nil {
			errs = append(errs, fmt.Errorf("%s could not be resumed: %w", name, err))
		}
	}
	if len(w.suspended) > 0 {
		w.held = time.Since(w.since)
	}
	for _, mp := range w.frozen {
		if err := w.e.fs.thaw(mp); err != nil {
			errs = append(errs, fmt.Errorf("the filesystem at %s could not be thawed: %w", mp, err))
		}
	}
	w.e.groups.record(created, len(w.suspended) > 0, w.held)
	if len(errs) > 0 {
		klog.ErrorS(errors.Join(errs...), "A group snapshot left members suspended or frozen; a retry, or the next start, resumes them", "name", w.name)
	}
	return errors.Join(errs...)
}

// GroupSnapshotStats are the group snapshots since the engine opened.
type GroupSnapshotStats struct {
	// Created and Aborted count the groups taken, and those given up
	// (past the deadline, or failed) once their window had opened.
	Created, Aborted uint64
	// Suspends counts the windows that suspended a device, SuspendSum
	// totals their lengths (first suspend to last resume), and
	// SuspendBuckets counts them by length: Count is the windows at most
	// UpperBound long, cumulative as in a Prometheus histogram.
	Suspends       uint64
	SuspendSum     time.Duration
	SuspendBuckets []SuspendBucket
	// LastSuspend and MaxSuspend are the last window and the longest.
	LastSuspend, MaxSuspend time.Duration
}

// SuspendBucket is one bucket of GroupSnapshotStats.SuspendBuckets.
type SuspendBucket struct {
	UpperBound time.Duration
	Count      uint64
}

// suspendBounds are the buckets' upper bounds: a window of a few
// create_snap messages takes milliseconds; one that waits on a flush or
// a busy pool, up to the deadline.
var suspendBounds = []time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

type groupStats struct {
	mu    sync.Mutex
	stats GroupSnapshotStats
}

func (s *groupStats) record(created, suspended bool, held time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if created {
		s.stats.Created++
	} else {
		s.stats.Aborted++
	}
	if !suspended {
		return
	}
	st := &s.stats
	if st.SuspendBuckets == nil {
		for _, b := range suspendBounds {
			st.SuspendBuckets = append(st.SuspendBuckets, SuspendBucket{UpperBound: b})
		}
	}
	st.Suspends++
	st.SuspendSum += held
	st.LastSuspend = held
	st.MaxSuspend = max(st.MaxSuspend, held)
	for i := range st.SuspendBuckets {
		if held <= st.SuspendBuckets[i].UpperBound {
			st.SuspendBuckets[i].Count++
		}
	}
}

// GroupSnapshotStats reports the group snapshots since the engine opened.
func (e *Engine) GroupSnapshotStats() GroupSnapshotStats {
	e.groups.mu.Lock()
	defer e.groups.mu.Unlock()
	s := e.groups.stats
	s.SuspendBuckets = append([]SuspendBucket(nil), s.SuspendBuckets...)
	return s
}
