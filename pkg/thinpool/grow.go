package thinpool

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/internal/failpoint"
	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// A loopback pool grows in four steps: the target sizes are recorded
// durably, the backing files are extended, the loop devices take the
// files' sizes, and the pool's table is reloaded at the new size. Each
// step is idempotent, so a grow that a crash or an error interrupted is
// finished by running them all again, at the next start or the next grow.
var (
	fpGrowIntent    = failpoint.New("grow.after-intent")
	fpGrowTruncated = failpoint.New("grow.after-truncate")
	fpGrowRefreshed = failpoint.New("grow.after-refresh")
	fpGrowReloaded  = failpoint.New("grow.after-reload")
)

// keyGrow holds the JSON growIntent of a grow in flight.
var keyGrow = []byte("grow")

// growIntent is what a grow takes a loopback pool to.
type growIntent struct {
	DataBytes     uint64 `json:"dataBytes"`
	MetadataBytes uint64 `json:"metadataBytes"`
	Reason        string `json:"reason"`
}

func (s *store) growIntent() (*growIntent, error) {
	var g *growIntent
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta).Get(keyGrow)
		if b == nil {
			return nil
		}
		g = &growIntent{}
		if err := json.Unmarshal(b, g); err != nil {
			return fmt.Errorf("the recorded pool grow in %s is corrupt: %w", s.path, err)
		}
		return nil
	})
	return g, err
}

// setGrowIntent records g durably; nil forgets the grow in flight.
func (s *store) setGrowIntent(g *growIntent) error {
	return s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if g == nil {
			return meta.Delete(keyGrow)
		}
		b, err := json.Marshal(g)
		if err != nil {
			return err
		}
		return meta.Put(keyGrow, b)
	})
}

// Grow grows a loopback pool to sizeBytes: the data file (and the
// metadata file, when the larger pool wants more), the loop devices'
// capacity, and the pool's table. Active volumes stay in use. It does
// nothing when the pool is already that large. ctx bounds only the wait
// for the pool lock: once the grow is recorded, it runs to its end
// whatever becomes of ctx.
func (e *Engine) Grow(ctx context.Context, sizeBytes uint64) error {
	if err := e.poolMu.lockCtx(ctx); err != nil {
		return fmt.Errorf("grow pool %s: %w", e.pool, waitPoolErr(err))
	}
	defer e.poolMu.unlock()
	b := e.backing
	if b == nil || !b.loop {
		return invalidf("only a loopback pool grows in place; grow a block device pool's data device instead: csi-thin takes up its size at start and at the pool's next low water event")
	}
	block := e.BlockSizeBytes()
	sizeBytes = sizeBytes / block * block
	st, err := e.k.PoolStatus(e.pool)
	if err != nil {
		return err
	}
	if sizeBytes <= st.DataTotal*block {
		return nil
	}
	meta, err := b.metaLoop.Size()
	if err != nil {
		return err
	}
	return e.growLocked(growIntent{
		DataBytes: sizeBytes, MetadataBytes: max(meta, metadataSize(sizeBytes, block)), Reason: "requested",
	}, st)
}

// growLocked records the grow to g and carries it out.
func (e *Engine) growLocked(g growIntent, from dm.PoolStatus) error {
	began := time.Now()
	if err := e.store.setGrowIntent(&g); err != nil {
		return fmt.Errorf("record the pool's grow in the state database: %w", err)
	}
	fpGrowIntent.Hit()
	if err := e.applyGrowLocked(g); err != nil {
		return fmt.Errorf("grow pool %s to %d data and %d metadata bytes (retried at the next grow and at start): %w",
			e.pool, g.DataBytes, g.MetadataBytes, err)
	}
	e.growth.grew(g.Reason)
	klog.InfoS("Grew the pool", "pool", e.pool, "reason", g.Reason,
		"fromDataBytes", from.DataTotal*e.BlockSizeBytes(), "toDataBytes", g.DataBytes,
		"fromMetadataBytes", from.MetadataTotal*metadataBlockBytes, "toMetadataBytes", g.MetadataBytes,
		"took", time.Since(began), "untilReloaded", e.growth.reloaded.Sub(began), "reloadTook", e.growth.reloadTook)
	if e.growth.reloadTook >= reloadStalled {
		klog.ErrorS(nil, "The pool's reload for a grow waited for writes in flight: they filled the pool before the grow took effect, "+
			"and the kernel holds such writes until its no_space_timeout, then fails them; applications may have seen write errors. "+
			"Give the pool more lead over its writers: a larger --pool-grow-percent or --pool-size",
			"pool", e.pool, "reloadTook", e.growth.reloadTook)
	}
	return nil
}

// reloadStalled is how long a grow's reload takes only when the pool
// filled under it: a reload is a suspend and a resume, milliseconds,
// unless writes already in flight found the pool full and wait there.
const reloadStalled = 10 * time.Second

// applyGrowLocked takes the files, the loop devices and the pool's table
// to g's sizes, and forgets g once the pool has them. It finishes a grow
// interrupted at any step: a file already extended is left alone, and a
// loop device is refreshed whenever it is smaller than its file, whoever
// extended the file.
func (e *Engine) applyGrowLocked(g growIntent) error {
	b := e.backing
	for _, f := range []struct {
		path string
		size uint64
	}{{b.metaPath, g.MetadataBytes}, {b.dataPath, g.DataBytes}} {
		if err := extendFile(f.path, f.size); err != nil {
			return err
		}
	}
	fpGrowTruncated.Hit()
	for _, f := range []struct {
		path string
		loop *dm.LoopDevice
	}{{b.metaPath, b.metaLoop}, {b.dataPath, b.dataLoop}} {
		if err := refreshLoop(f.path, f.loop); err != nil {
			return err
		}
	}
	fpGrowRefreshed.Hit()
	began := time.Now()
	if err := e.reloadLocked(g.DataBytes); err != nil {
		return err
	}
	e.growth.reloaded = time.Now()
	e.growth.reloadTook = e.growth.reloaded.Sub(began)
	fpGrowReloaded.Hit()
	b.dataBytes = g.DataBytes
	if err := e.store.setGrowIntent(nil); err != nil {
		return fmt.Errorf("forget the finished grow in the state database: %w", err)
	}
	return nil
}

// finishGrowLocked completes a grow that a crash interrupted; it runs at
// start.
func (e *Engine) finishGrowLocked() error {
	g, err := e.store.growIntent()
	if err != nil || g == nil {
		return err
	}
	if e.backing == nil || !e.backing.loop {
		return e.store.setGrowIntent(nil)
	}
	klog.InfoS("Finishing a pool grow that was interrupted", "pool", e.pool, "dataBytes", g.DataBytes, "metadataBytes", g.MetadataBytes, "reason", g.Reason)
	if err := e.applyGrowLocked(*g); err != nil {
		return fmt.Errorf("finish growing pool %s to %d data bytes: %w", e.pool, g.DataBytes, err)
	}
	e.growth.grew(g.Reason)
	return nil
}

// reloadLocked loads the pool's table at dataBytes, with the low water
// mark for that size. The kernel takes the metadata device's size at the
// resume that follows.
func (e *Engine) reloadLocked(dataBytes uint64) error {
	table := poolTable(e.cfg, e.backing, dataBytes, e.mayGrowLocked(dataBytes))
	return e.k.ReloadPool(e.pool, table, dataBytes/sectorSize)
}

// mayGrowLocked reports whether a loopback pool of dataBytes may still
// grow by itself: it is below its maximum size, the file system under the
// state directory was not found at its reserve, and its watcher runs.
func (e *Engine) mayGrowLocked(dataBytes uint64) bool {
	return e.backing.loop && dataBytes < e.cfg.MaxSizeBytes/e.BlockSizeBytes()*e.BlockSizeBytes() &&
		!e.growth.fsFull && !e.growth.unwatched
}

// poolTable is the pool's table for a data size of dataBytes. A pool that
// may still grow by itself queues writes that find it full
// (queue_if_no_space) for the moment its grow takes, whatever
// ErrorIfNoSpace says; error_if_no_space applies once it is as large as it
// may get.
func poolTable(cfg Config, b *backing, dataBytes uint64, mayGrow bool) dm.PoolTable {
	return dm.PoolTable{
		MetadataDev:   b.metaDev.String(),
		DataDev:       b.dataDev.String(),
		DataBlockSize: uint32(cfg.BlockSizeBytes / sectorSize),
		LowWaterMark:  cfg.lowWaterBlocks(b.loop, dataBytes),
		Features:      dm.PoolFeatures{ErrorIfNoSpace: cfg.ErrorIfNoSpace && !mayGrow},
	}
}

// extendFile makes a backing file at least size bytes.
func extendFile(path string, size uint64) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if uint64(fi.Size()) >= size {
		return nil
	}
	if err := os.Truncate(path, int64(size)); err != nil {
		return fmt.Errorf("grow %s to %d bytes: %w", path, size, err)
	}
	return nil
}

// refreshLoop makes a loop device take its file's size when the file is
// larger.
func refreshLoop(path string, l *dm.LoopDevice) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	size, err := l.Size()
	if err != nil {
		return err
	}
	if size >= uint64(fi.Size()) {
		return nil
	}
	return l.RefreshCapacity()
}
