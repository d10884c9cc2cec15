package thinpool

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// Auto-grow. The pool's table carries a low water mark: the kernel raises
// a dm event when free data falls below it, and when free metadata falls
// below its own metadata low watermark (min(4 MiB, a quarter of the
// metadata device)), and on every mode change. A goroutine waits for
// those events (poll(2) on a control node armed with DM_DEV_ARM_POLL, or
// DM_DEV_WAIT on kernels before interface 4.37) and, under the pool lock
// like any other change, grows a loopback pool by a step, or reloads a
// pool on block devices whose data device the administrator grew. Nothing
// polls on a timer; Close stops the goroutine and waits for it.

// GrowStats are the pool's growths since the engine opened.
type GrowStats struct {
	// Grows counts the grows that completed, by reason: "requested" (Grow
	// or a larger configured size), "auto" (the pool's low water mark),
	// "device" (a block device pool's data device grew), "recovered" is
	// not a reason: an interrupted grow finished at start keeps its own.
	Grows map[string]uint64
	// Refused counts the pool events that found the pool short of space
	// and could not grow it: at its maximum, or the file system under the
	// state directory at its reserve.
	Refused uint64
	// LastLatency and MaxLatency are the times from a low-water event to
	// the grown pool.
	LastLatency, MaxLatency time.Duration
}

// growth is the engine's auto-grow state.
type growth struct {
	mu    sync.Mutex // guards stats
	stats GrowStats

	// Set before the watcher starts:
	waiter *dm.EventWaiter // what the watcher waits on; nil without one or with DM_DEV_WAIT
	done   chan struct{}   // closed when the watcher has returned and closed its control node

	// Under the engine's poolMu:
	stopped    bool          // the engine closed: the watcher acts on nothing more
	fsFull     bool          // the last grow was refused for the file system's reserve
	unwatched  bool          // the watcher failed: nothing grows the pool until a restart
	refusal    string        // why the pool last could not grow, logged when it changes
	reloaded   time.Time     // when the last grow's reload finished
	reloadTook time.Duration // and how long it took
}

func (g *growth) grew(reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stats.Grows == nil {
		g.stats.Grows = map[string]uint64{}
	}
	g.stats.Grows[reason]++
}

func (g *growth) took(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stats.LastLatency = d
	g.stats.MaxLatency = max(g.stats.MaxLatency, d)
}

func (g *growth) refused() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stats.Refused++
}

// GrowStats reports the pool's growths since the engine opened.
func (e *Engine) GrowStats() GrowStats {
	e.growth.mu.Lock()
	defer e.growth.mu.Unlock()
	s := e.growth.stats
	if s.Grows != nil {
		m := make(map[string]uint64, len(s.Grows))
		for k, v := range s.Grows {
			m[k] = v
		}
		s.Grows = m
	}
	return s
}

// watches reports whether the pool has events to act on: a loopback pool
// with a maximum size, or any pool on block devices.
func (e *Engine) watches() bool {
	return e.backing != nil && (!e.backing.loop || e.cfg.MaxSizeBytes != 0)
}

// startGrowth runs at start, before the configured size is applied: it
// finishes a grow a crash interrupted, takes a block device pool to its
// data device's size, and gives the live table the low water mark the
// configuration wants.
func (e *Engine) startGrowth() error {
	if e.backing == nil {
		return nil
	}
	e.poolMu.lock()
	defer e.poolMu.unlock()
	if err := e.finishGrowLocked(); err != nil {
		return err
	}
	if !e.backing.loop {
		if _, err := e.followDeviceLocked("device"); err != nil {
			return err
		}
	}
	ts, err := e.k.Table(e.pool)
	if err != nil {
		return err
	}
	if len(ts) != 1 {
		return fmt.Errorf("pool %s has %d targets, want 1", e.pool, len(ts))
	}
	have, err := dm.ParsePoolParams(ts[0].Params)
	if err != nil {
		return err
	}
	dataBytes := ts[0].Length * sectorSize
	want := poolTable(e.cfg, e.backing, dataBytes, e.mayGrowLocked(dataBytes))
	if have.LowWaterMark != want.LowWaterMark || have.Features.ErrorIfNoSpace != want.Features.ErrorIfNoSpace {
		if err := e.reloadLocked(dataBytes); err != nil {
			return fmt.Errorf("set the pool's low water mark to %d blocks and error_if_no_space to %v: %w",
				want.LowWaterMark, want.Features.ErrorIfNoSpace, err)
		}
		klog.V(2).InfoS("Reloaded the pool with its configured low water mark and no-space mode", "pool", e.pool,
			"lowWaterBlocks", want.LowWaterMark, "errorIfNoSpace", want.Features.ErrorIfNoSpace)
	}
	return nil
}

// openEventWaiter opens what the watcher waits on; tests replace it to
// take the path of kernels without DM_DEV_ARM_POLL.
var openEventWaiter = dm.OpenEventWaiter

// startWatch starts waiting for the pool's events, when it has any to act
// on, and acts once on the pool as it is now.
func (e *Engine) startWatch() error {
	if !e.watches() {
		return nil
	}
	// A control node of its own: the waiter arms it, and Close closes the
	// engine's.
	w, err := openEventWaiter()
	if errors.Is(err, dm.ErrUnsupported) {
		return e.startDevWait(err)
	}
	if err != nil {
		return err
	}
	info, err := w.Info(e.pool)
	if err != nil {
		w.Close()
		return err
	}
	// The pool as it is now, then its events since info: an event during
	// the act moves the number, and the watcher acts on it at once.
	e.actAtStart(w.Control)
	e.growth.waiter = w
	e.growth.done = make(chan struct{})
	go e.watch(w, info.EventNr)
	return nil
}

// startDevWait is startWatch on a kernel that cannot poll its control
// node: the watcher waits in DM_DEV_WAIT, which only the pool's next event
// or its removal ends, so Close cannot stop it.
func (e *Engine) startDevWait(why error) error {
	klog.InfoS("The kernel's device-mapper cannot wake the pool's event waiter; it waits for the pool's "+
		"next event in the kernel, and stays there after the engine closes until that event", "pool", e.pool, "reason", why)
	ctl, err := dm.Open()
	if err != nil {
		return err
	}
	info, err := ctl.Info(e.pool)
	if err != nil {
		ctl.Close()
		return err
	}
	e.actAtStart(ctl)
	go e.watchDevWait(ctl, info.EventNr)
	return nil
}

// actAtStart acts once on the pool as it is before the watcher starts.
func (e *Engine) actAtStart(ctl *dm.Control) {
	e.poolMu.lock()
	defer e.poolMu.unlock()
	if err := e.onEventLocked(ctl, time.Now()); err != nil {
		klog.ErrorS(err, "Could not grow the pool at start", "pool", e.pool)
	}
}

// stopWatch keeps the watcher from acting again, stops its wait and waits
// for it to return and close its control node. On a kernel without
// DM_DEV_ARM_POLL the watcher cannot be woken: it returns at the pool's
// next event (any change of mode or space, or the pool's removal).
func (e *Engine) stopWatch() {
	e.poolMu.lock()
	e.growth.stopped = true
	e.poolMu.unlock()
	if e.growth.waiter == nil {
		return
	}
	e.growth.waiter.Stop()
	<-e.growth.done
}

// watch waits for the pool's events and acts on each, until stopWatch;
// nr is the pool's event number that startWatch acts on.
func (e *Engine) watch(w *dm.EventWaiter, nr uint32) {
	defer close(e.growth.done)
	defer w.Close()
	for {
		at := time.Now() // after a Wait, when it woke
		// Arm first, then read the pool's event number: an event the read
		// does not show came after the arming, so the Wait below returns
		// at once for it. Read first, and an event between the read and
		// the arming would be lost until the next one.
		if err := w.Arm(); err != nil {
			e.watchFailed(err)
			return
		}
		info, err := w.Info(e.pool)
		if err == nil && !info.Exists {
			err = fmt.Errorf("pool %s was removed", e.pool)
		}
		if err != nil {
			e.watchFailed(err)
			return
		}
		if info.EventNr == nr {
			// Any dm device's event ends the wait; the loop then reads
			// the pool's number again.
			if err := w.Wait(); err != nil {
				if !errors.Is(err, dm.ErrStopped) {
					e.watchFailed(err)
				}
				return
			}
			continue
		}
		nr = info.EventNr
		if !e.onEvent(w.Control, nr, at) {
			return
		}
	}
}

// watchDevWait is watch on a kernel without DM_DEV_ARM_POLL: it waits in
// DM_DEV_WAIT for the pool's next event.
func (e *Engine) watchDevWait(ctl *dm.Control, nr uint32) {
	defer ctl.Close()
	for {
		info, err := ctl.WaitEvent(e.pool, nr)
		if err != nil {
			e.watchFailed(err)
			return
		}
		nr = info.EventNr
		if !e.onEvent(ctl, nr, time.Now()) {
			return
		}
	}
}

// onEvent acts on the pool's event nr, which arrived at at, under the
// pool lock. It reports false once the engine has closed.
func (e *Engine) onEvent(ctl *dm.Control, nr uint32, at time.Time) bool {
	e.poolMu.lock()
	defer e.poolMu.unlock()
	if e.growth.stopped {
		return false
	}
	klog.V(4).InfoS("Pool event", "pool", e.pool, "event", nr)
	if err := e.onEventLocked(ctl, at); err != nil {
		klog.ErrorS(err, "Could not grow the pool", "pool", e.pool)
	}
	return true
}

// watchFailed logs why the watcher stopped, unless the engine closed.
func (e *Engine) watchFailed(err error) {
	e.poolMu.lock()
	defer e.poolMu.unlock()
	if e.growth.stopped {
		return
	}
	klog.ErrorS(err, "Stopped waiting for the pool's events: it no longer grows by itself until csi-thin restarts", "pool", e.pool)
	// The pool queued writes that find it full only for the grow that
	// would follow; none will now.
	e.growth.unwatched = true
	if e.cfg.ErrorIfNoSpace && e.backing.loop {
		if err := e.reloadLocked(e.backing.dataBytes); err != nil {
			klog.ErrorS(err, "Could not load error_if_no_space into the pool, which no longer grows: writes that find it full wait for the kernel's no_space_timeout", "pool", e.pool)
			return
		}
		klog.InfoS("The pool fails writes that find it full again (error_if_no_space), as it no longer grows by itself", "pool", e.pool)
	}
}

// onEventLocked grows the pool while it is short of space and may grow;
// at is when the event that found it short arrived. It reads the pool's
// status on ctl without the metadata commit a plain status read makes,
// which under heavy writes costs what the writers cannot wait for.
func (e *Engine) onEventLocked(ctl *dm.Control, at time.Time) error {
	if !e.backing.loop {
		grew, err := e.followDeviceLocked("device")
		if grew {
			e.growth.took(time.Since(at))
		}
		return err
	}
	for {
		st, err := ctl.PoolStatusNoCommit(e.pool)
		if err != nil {
			return err
		}
		if st.Fail || st.Error || st.NeedsCheck || st.Mode == dm.PoolModeReadOnly {
			return nil // growing does not help; health says what to do
		}
		g, refusal, err := e.nextGrowLocked(st)
		if err != nil {
			return err
		}
		if refusal != "" && refusal != e.growth.refusal {
			klog.InfoS("The pool is short of space and cannot grow", "pool", e.pool, "reason", refusal,
				"dataUsedBytes", st.DataUsed*e.BlockSizeBytes(), "dataBytes", st.DataTotal*e.BlockSizeBytes(),
				"metadataUsedBytes", st.MetadataUsed*metadataBlockBytes, "metadataBytes", st.MetadataTotal*metadataBlockBytes)
		}
		e.growth.refusal = refusal
		if refusal != "" {
			e.growth.refused()
		}
		if g == nil {
			if e.cfg.ErrorIfNoSpace && e.growth.fsFull && !st.ErrorIfNoSpace {
				// The pool cannot grow after all: writes that find it full
				// fail at once, as configured, instead of waiting.
				return e.reloadLocked(st.DataTotal * e.BlockSizeBytes())
			}
			return nil
		}
		if err := e.growLocked(*g, st); err != nil {
			return err
		}
		d := e.growth.reloaded.Sub(at)
		e.growth.took(d)
		after, err := ctl.PoolStatusNoCommit(e.pool)
		if err != nil {
			return err
		}
		if after.DataTotal == st.DataTotal && after.MetadataTotal == st.MetadataTotal {
			return fmt.Errorf("pool %s kept its size after the grow to %d data and %d metadata bytes: see the kernel log (dmesg)",
				e.pool, g.DataBytes, g.MetadataBytes)
		}
		klog.InfoS("Auto-grew the pool", "pool", e.pool, "dataBytes", g.DataBytes, "metadataBytes", g.MetadataBytes,
			"sinceEvent", d, "freeDataBytesAtEvent", (st.DataTotal-st.DataUsed)*e.BlockSizeBytes())
	}
}

// nextGrowLocked is the grow a loopback pool's status calls for: a step of
// data when free data is below the low water mark, more metadata when free
// metadata is below the kernel's metadata low watermark or a step's worth
// of it, within the maximum size and the file system's reserve. It returns
// nil when the pool has room, or when it cannot grow, with the reason.
func (e *Engine) nextGrowLocked(st dm.PoolStatus) (*growIntent, string, error) {
	block := e.BlockSizeBytes()
	data := st.DataTotal * block
	meta, err := e.backing.metaLoop.Size()
	if err != nil {
		return nil, "", err
	}
	freeData := st.DataTotal - st.DataUsed
	freeMeta := st.MetadataTotal - st.MetadataUsed
	dataLow := freeData < e.cfg.lowWaterBlocks(true, data) || st.Mode == dm.PoolModeOutOfDataSpace
	metaStep := uint64(float64(meta) * e.cfg.GrowPercent / 100)
	metaLow := (freeMeta < st.MetadataLowWatermark || freeMeta*metadataBlockBytes < metaStep) && meta < maxMetadataBytes
	if !dataLow && !metaLow {
		return nil, "", nil
	}
	g := growIntent{DataBytes: data, MetadataBytes: meta, Reason: "auto"}
	if dataLow {
		// Steps until the grown pool is above its low water mark, in one
		// reload.
		limit := e.cfg.MaxSizeBytes / block * block
		used := st.DataUsed * block
		for g.DataBytes < limit {
			g.DataBytes = min(g.DataBytes+e.cfg.growStep(g.DataBytes), limit)
			if (g.DataBytes-used)/block >= e.cfg.lowWaterBlocks(true, g.DataBytes) {
				break
			}
		}
	}
	if metaLow {
		g.MetadataBytes = meta + (metaStep+1<<20-1)&^(1<<20-1)
	}
	g.MetadataBytes = min(max(g.MetadataBytes, metadataSize(g.DataBytes, block)), maxMetadataBytes)

	room, err := e.fsRoom()
	if err != nil {
		return nil, "", err
	}
	refusal := ""
	e.growth.fsFull = false
	if more := g.DataBytes - data + g.MetadataBytes - meta; more > room {
		e.growth.fsFull = true
		refusal = fmt.Sprintf("the file system under %s keeps its %g%% reserve", e.cfg.StateDir, e.cfg.FSReservePercent)
		// Metadata first: once it runs out the pool needs a repair.
		g.MetadataBytes = meta + min(g.MetadataBytes-meta, room)&^(metadataBlockBytes-1)
		g.DataBytes = data + min(g.DataBytes-data, room-(g.MetadataBytes-meta))/block*block
	}
	if dataLow && g.DataBytes == data && refusal == "" {
		refusal = fmt.Sprintf("the pool is at its maximum size of %d bytes", e.cfg.MaxSizeBytes)
	}
	if g.DataBytes == data && g.MetadataBytes == meta {
		return nil, refusal, nil
	}
	return &g, refusal, nil
}

// fsRoom is how many bytes the pool's files may still grow by: the file
// system's free space, less its reserve and less what the files' holes
// would take once written.
func (e *Engine) fsRoom() (uint64, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(e.cfg.StateDir, &fs); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", e.cfg.StateDir, err)
	}
	avail := fs.Bavail * uint64(fs.Bsize)
	reserve := uint64(float64(fs.Blocks*uint64(fs.Bsize)) * e.cfg.FSReservePercent / 100)
	var holes uint64
	for _, p := range []string{e.backing.dataPath, e.backing.metaPath} {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return 0, fmt.Errorf("stat %s: %w", p, err)
		}
		if used := uint64(st.Blocks) * 512; uint64(st.Size) > used {
			holes += uint64(st.Size) - used
		}
	}
	if avail < reserve+holes {
		return 0, nil
	}
	return avail - reserve - holes, nil
}

// followDeviceLocked reloads a pool on block devices whose data device
// (or metadata device) is now larger than the pool has it. It reports
// whether the pool grew.
func (e *Engine) followDeviceLocked(reason string) (bool, error) {
	b := e.backing
	st, err := e.k.PoolStatus(e.pool)
	if err != nil {
		return false, err
	}
	if st.Fail || st.Error {
		return false, nil
	}
	block := e.BlockSizeBytes()
	size, err := dm.BlockDeviceSize(b.dataPath)
	if err != nil {
		return false, err
	}
	metaSize, err := dm.BlockDeviceSize(b.metaPath)
	if err != nil {
		return false, err
	}
	data := size / block * block
	metaGrew := min(metaSize, maxMetadataBytes)/metadataBlockBytes > st.MetadataTotal
	if data <= st.DataTotal*block && !metaGrew {
		return false, nil
	}
	data = max(data, st.DataTotal*block)
	if err := e.reloadLocked(data); err != nil {
		if errors.Is(err, dm.ErrNotFound) {
			return false, nil
		}
		return false, fmt.Errorf("reload pool %s at its data device's %d bytes: %w", e.pool, data, err)
	}
	b.dataBytes = data
	e.growth.grew(reason)
	klog.InfoS("Grew the pool to its devices' new size", "pool", e.pool,
		"fromDataBytes", st.DataTotal*block, "toDataBytes", data,
		"fromMetadataBytes", st.MetadataTotal*metadataBlockBytes, "toMetadataBytes", min(metaSize, maxMetadataBytes))
	return true, nil
}
