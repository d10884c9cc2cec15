package thinpool

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/klog/v2"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
	"github.com/csi-thin/csi-thin/pkg/thinmeta"
)

// The block maps of snapshots are read from a metadata snapshot of the
// pool (reserve_metadata_snap), never from the live metadata, which the
// kernel rewrites as it goes. A pool holds one metadata snapshot at a
// time, and while it is held every metadata block it shares is copied on
// write, so the engine holds one only while readers need it: a lease that
// concurrent readers share and the last one out releases. A reader that
// needs a snapshot newer than the held one (cut after the reserve) waits
// for the lease to drain and takes a fresh one. A metadata snapshot left
// held by a crash is released at start.

// metaLease is a held metadata snapshot and the readers using it.
type metaLease struct {
	tree    *thinmeta.Tree
	tx      uint64 // the pool's transaction id when it was reserved
	refs    int
	stale   bool          // no new readers: a newer one is wanted
	drained chan struct{} // closed once released
}

// metaSnaps is the engine's metadata snapshot lease.
type metaSnaps struct {
	mu     ctxMutex
	cur    *metaLease
	reader *thinmeta.Reader // the metadata device, opened at first use
}

// acquireMeta returns a held metadata snapshot at least as new as
// transaction tx, reserving one if need be. Release it with releaseMeta.
func (e *Engine) acquireMeta(ctx context.Context, tx uint64) (*metaLease, error) {
	m := &e.meta
	for {
		if err := m.mu.lockCtx(ctx); err != nil {
			return nil, waitPoolErr(err)
		}
		if l := m.cur; l != nil {
			if !l.stale && l.tx >= tx {
				l.refs++
				m.mu.unlock()
				return l, nil
			}
			l.stale = true
			m.mu.unlock()
			select {
			case <-l.drained:
				continue
			case <-ctx.Done():
				return nil, waitPoolErr(ctx.Err())
			}
		}
		l, err := e.reserveMeta(ctx)
		if err == nil {
			l.refs = 1
			m.cur = l
		}
		m.mu.unlock()
		return l, err
	}
}

// releaseMeta ends a reader's use of l; the last reader releases the
// metadata snapshot.
func (e *Engine) releaseMeta(l *metaLease) {
	m := &e.meta
	m.mu.lock()
	defer m.mu.unlock()
	if l.refs--; l.refs > 0 {
		return
	}
	m.cur = nil
	e.poolMu.lock()
	err := e.k.ReleaseMetadataSnap(e.pool)
	e.poolMu.unlock()
	if err != nil {
		// The next reserve finds it held and releases it first.
		klog.ErrorS(err, "Could not release the pool's metadata snapshot", "pool", e.pool)
	} else {
		klog.V(4).InfoS("Released the pool's metadata snapshot", "pool", e.pool, "transaction", l.tx)
	}
	close(l.drained)
}

// reserveMeta takes a metadata snapshot and opens its trees; m.mu is held.
func (e *Engine) reserveMeta(ctx context.Context) (*metaLease, error) {
	if err := e.poolMu.lockCtx(ctx); err != nil {
		return nil, waitPoolErr(err)
	}
	tx := e.committed.Load()
	err := e.k.ReserveMetadataSnap(e.pool)
	if errors.Is(err, dm.ErrBusy) {
		// Held by no lease of ours: left by a crash or another tool.
		klog.InfoS("The pool holds a metadata snapshot no reader uses: releasing it", "pool", e.pool)
		if err = e.k.ReleaseMetadataSnap(e.pool); err == nil {
			err = e.k.ReserveMetadataSnap(e.pool)
		}
	}
	e.poolMu.unlock()
	if err != nil {
		return nil, fmt.Errorf("reserve a metadata snapshot of pool %s to read block maps from: %w", e.pool, err)
	}
	l := &metaLease{tx: tx, drained: make(chan struct{})}
	if l.tree, err = e.openHeld(); err != nil {
		e.poolMu.lock()
		if relErr := e.k.ReleaseMetadataSnap(e.pool); relErr != nil {
			klog.ErrorS(relErr, "Could not release the pool's metadata snapshot", "pool", e.pool)
		}
		e.poolMu.unlock()
		return nil, err
	}
	klog.V(4).InfoS("Reserved a metadata snapshot of the pool", "pool", e.pool, "transaction", tx)
	return l, nil
}

// openHeld opens the trees of the metadata snapshot the pool holds.
func (e *Engine) openHeld() (*thinmeta.Tree, error) {
	m := &e.meta
	if m.reader == nil {
		if e.backing == nil {
			return nil, fmt.Errorf("pool %s has no metadata device to read block maps from", e.pool)
		}
		r, err := thinmeta.Open(devicePathOf(e.backing, false))
		if err != nil {
			return nil, err
		}
		m.reader = r
	}
	root, err := m.reader.HeldRoot()
	if err != nil {
		return nil, err
	}
	return m.reader.Snapshot(root)
}

// releaseLeftoverMeta releases a metadata snapshot the pool holds at
// start: no reader of this process can use it, and while it is held the
// pool copies every metadata block it shares on write. The pool lock is
// held.
func (e *Engine) releaseLeftoverMetaLocked(st dm.PoolStatus) {
	if !st.HasHeldMetadataRoot {
		return
	}
	if err := e.k.ReleaseMetadataSnap(e.pool); err != nil {
		klog.ErrorS(err, "Could not release the metadata snapshot the pool held at start", "pool", e.pool, "root", st.HeldMetadataRoot)
		return
	}
	klog.InfoS("Released the metadata snapshot the pool held at start, left by an earlier run", "pool", e.pool, "root", st.HeldMetadataRoot)
}

// closeMeta closes the metadata device.
func (e *Engine) closeMeta() error {
	m := &e.meta
	m.mu.lock()
	defer m.mu.unlock()
	if m.reader == nil {
		return nil
	}
	err := m.reader.Close()
	m.reader = nil
	return err
}
