package thinpool

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// Engine is a node's thin pool with its volumes and snapshots. Its methods
// are safe for concurrent use: operations on one name or id are
// serialised, operations on different ones run in parallel up to their
// journaled change, which holds the pool-wide lock for its durable commit
// and its pool messages. Reads of the pool (Capacity, Usage, Health)
// wait for neither lock. The methods that wait for a lock take the
// request's context and give up waiting with its error; see the package
// doc.
type Engine struct {
	k     kernel
	store *store
	cfg   Config

	pool         string // dm name of the pool
	poolDev      dm.Dev
	blockSectors uint32
	deviceNode   func(dm.Dev) (string, error)
	holders      func(dm.Dev) ([]string, error) // what keeps a device open
	fs           filesystems                    // freezes the filesystems of group members
	now          func() time.Time               // the clock of group snapshots' deadlines
	groupHook    func(stage string)             // tests: runs at each stage of a group's window
	groups       groupStats
	backing      *backing // how the pool's devices are kept; nil in unit tests

	locks keyLocks

	// poolMu is the pool-wide lock. It serialises journaled changes,
	// each of which takes the next pool transaction id, Expand's record,
	// and grows, requested or the auto-grow watcher's. A request waits
	// for it with lockCtx and its context; start, the watcher and Close
	// take it with lock.
	poolMu    ctxMutex
	committed atomic.Uint64 // last pool transaction id known complete
	dirty     bool          // a change failed halfway: recover before the next
	lastState atomic.Value  // PoolState of the last health read, for noteHealth
	// promised is the bytes of every volume and snapshot, for the budget.
	// It changes only under poolMu and is read without it, by Capacity
	// and Usage.
	promised  atomic.Uint64
	growth    growth    // auto-grow (autogrow.go)
	meta      metaSnaps // the metadata snapshot block maps are read from (metasnap.go)
	closeOnce sync.Once
	closer    func() error
}

// newEngine puts an engine together over a running pool; Open is the way
// in for callers.
func newEngine(k kernel, s *store, cfg Config, pool string, poolDev dm.Dev) *Engine {
	return &Engine{
		k: k, store: s, cfg: cfg,
		pool: pool, poolDev: poolDev,
		blockSectors: uint32(cfg.BlockSizeBytes / sectorSize),
		deviceNode:   func(d dm.Dev) (string, error) { return dm.DeviceNode(d.Major, d.Minor) },
		holders:      dm.Holders,
		fs:           kernelFilesystems,
		now:          time.Now,
	}
}

// start recovers the journal and totals the promised sizes.
func (e *Engine) start() error {
	e.poolMu.lock()
	defer e.poolMu.unlock()
	if err := e.resumeSuspended(); err != nil {
		return err
	}
	if st, err := e.k.PoolStatus(e.pool); err == nil {
		e.releaseLeftoverMetaLocked(st)
	}
	if err := e.changeableOf(e.k.PoolStatus(e.pool)); err != nil {
		// Recovery changes the pool; an unhealthy pool is left alone and
		// every change refused until it is repaired. Its records are
		// still shown as the pool's transaction id has them, so that the
		// last change the pool completed is not hidden meanwhile.
		e.dirty = true
		if st, err := e.k.PoolStatus(e.pool); err == nil && !st.Fail && !st.Error {
			e.committed.Store(st.TransactionID)
		}
		return e.totalPromisedLocked()
	}
	return e.recoverLocked() // which totals the promised sizes
}

// totalPromisedLocked sets the budget's promised bytes to the sizes of the
// volumes and snapshots callers see, from the database: at start, and
// after a recovery, which may have settled, rolled back or finished a
// change whose caller saw it fail.
func (e *Engine) totalPromisedLocked() error {
	var total uint64
	err := e.store.scan("", "", func(v *Volume) bool {
		if s := v.settled(e.committed.Load()); s != nil && s.State == stateReady {
			total += v.SizeBytes
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("total the sizes of the volumes and snapshots: %w", err)
	}
	e.promised.Store(total)
	return nil
}

// resumeSuspended resumes this pool's devices that a crash left suspended,
// such as an origin killed mid-snapshot, and thaws the filesystems a
// crash inside a group snapshot left frozen; their I/O would hang
// otherwise.
func (e *Engine) resumeSuspended() error {
	devs, err := e.k.List()
	if err != nil {
		return err
	}
	for _, d := range devs {
		if d.Name != e.pool && !e.ownsDevice(d.Name) {
			continue
		}
		info, err := e.k.Info(d.Name)
		if err != nil || !info.Suspended {
			continue
		}
		if err := e.k.Resume(d.Name, 0); err != nil {
			return fmt.Errorf("resume %s, left suspended by a crash: %w", d.Name, err)
		}
	}
	// Thawed after the resumes, as a group snapshot's window closes. A
	// filesystem that will not thaw does not keep the pool from serving:
	// the retry of its group snapshot thaws it again.
	if err := e.thawAll(devs); err != nil {
		klog.ErrorS(err, "A filesystem left frozen by a crash could not be thawed; retry its group snapshot to thaw it")
	}
	return nil
}

// Close releases the database and the control device. The pool and any
// active volumes stay up: workloads keep running while csi-thin restarts.
func (e *Engine) Close() error {
	var err error
	e.closeOnce.Do(func() {
		e.stopWatch()
		err = errors.Join(e.closeMeta(), e.store.close())
		if e.closer != nil {
			err = errors.Join(err, e.closer())
		}
	})
	return err
}

// Health returns nil when the pool is healthy. Otherwise its error says
// why and what to do, and PoolState names the state: ErrNoSpace while the
// pool is out of data space (it still takes deletes, which free space),
// ErrUnhealthy while it takes no change at all (read-only, needs_check,
// fail, or a status that cannot be read).
func (e *Engine) Health() error {
	return e.healthOf(e.k.PoolStatus(e.pool))
}

// healthOf judges a status read of the pool.
func (e *Engine) healthOf(st dm.PoolStatus, err error) error {
	health := judgeHealth(e.pool, st, err)
	e.noteHealth(st, err, health)
	return health
}

func judgeHealth(pool string, st dm.PoolStatus, err error) error {
	if err != nil {
		return &stateError{StateUnreadable, fmt.Errorf("%w: cannot read the status of pool %s: %w", ErrUnhealthy, pool, err)}
	}
	if err := st.Usable(); err != nil {
		return &stateError{stateOf(st), fmt.Errorf("%w: pool %s: %w", ErrUnhealthy, pool, err)}
	}
	if st.Mode == dm.PoolModeOutOfDataSpace {
		return &stateError{StateOutOfDataSpace, fmt.Errorf("%w: pool %s is out of data space (%d of %d blocks used): "+
			"delete volumes or snapshots to free blocks, or grow the pool; deletes still work", ErrNoSpace, pool, st.DataUsed, st.DataTotal)}
	}
	return nil
}

// changeableOf is healthOf for changes that need no data space, such as a
// delete: only a pool whose metadata may not change refuses them.
func (e *Engine) changeableOf(st dm.PoolStatus, err error) error {
	if err := e.healthOf(st, err); errors.Is(err, ErrUnhealthy) {
		return err
	}
	return nil
}

// PoolName is the dm name of the pool.
func (e *Engine) PoolName() string { return e.pool }

const sectorSize = 512

// newID returns a fresh id for a record of the kind.
func newID(kind Kind) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return idPrefix(kind) + hex.EncodeToString(b)
}

func idPrefix(kind Kind) string {
	if kind == KindSnapshot {
		return "snap-"
	}
	return "vol-"
}

// dmName is the name of the dm device of an active volume or snapshot.
func (e *Engine) dmName(id string) string { return e.pool + "-" + id }

// dmUUID marks this pool's devices.
func (e *Engine) dmUUID(id string) string { return uuidPrefix + e.pool + "-" + id }

const uuidPrefix = "CSI-THIN-"

// ownsDevice reports whether a dm device is one of this pool's volumes.
func (e *Engine) ownsDevice(name string) bool {
	p := e.pool + "-"
	return len(name) > len(p) && name[:len(p)] == p
}

// BlockSizeBytes is the pool's data block size: volume sizes are rounded
// up to it.
func (e *Engine) BlockSizeBytes() uint64 { return uint64(e.blockSectors) * sectorSize }

// Condition reports whether a volume is healthy: it exists, its pool is
// healthy and, when it is active on this node, its device has not failed.
// The error says what is wrong: ErrNotFound for an unknown id, Health's
// error for its pool (ErrNoSpace for a full one), ErrDeviceFailed (and
// ErrUnhealthy) for a failed device.
func (e *Engine) Condition(id string) error {
	if _, err := e.Get(id); err != nil {
		return err
	}
	if err := e.Health(); err != nil {
		return err
	}
	st, err := e.k.ThinStatus(e.dmName(id))
	switch {
	case errors.Is(err, dm.ErrNotFound):
		return nil // not active here
	case err != nil:
		return &deviceError{fmt.Errorf("%w: status of %s: %w", ErrUnhealthy, id, err)}
	case st.Fail || st.Error:
		return &deviceError{fmt.Errorf("%w: the thin device of %s reports failure: see the kernel log (dmesg)", ErrUnhealthy, id)}
	}
	return nil
}
