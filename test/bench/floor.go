package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"k8s.io/klog/v2"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// floor is the least any journaled change to a pool can cost: the pool
// message itself (create_thin, create_snap, delete) and the
// set_transaction_id that commits it, as bare ioctls through
// pkg/devmapper, with no record, no lock and no process. It runs on a
// pool of its own, laid out as csi-thin's are.
type floor struct {
	ctl  *dm.Control
	pool string

	mu   sync.Mutex
	tx   uint64
	next uint32
}

// floorSplit is the floor's ioctls and the other steps of a csi-thin
// create, each timed on its own: where a CreateVolume's time goes.
type floorSplit struct {
	createThin, setTxID, statusCommit, statusNoCommit Sample
}

// newFloor makes the floor's pool on dev: 64 KiB blocks, new blocks
// zeroed and I/O failed when it is full, as csi-thin makes its pools.
// Cleanup removes it.
func (b *bench) newFloor(name string, dev poolDevices) (*floor, error) {
	size, err := diskSize(dev.data)
	if err != nil {
		return nil, err
	}
	t := dm.PoolTable{
		MetadataDev: dev.meta, DataDev: dev.data, DataBlockSize: dm.MinDataBlockSize,
		Features: dm.PoolFeatures{ErrorIfNoSpace: true},
	}
	if _, err := b.ctl.CreatePool(name, "", t, size/512); err != nil {
		return nil, fmt.Errorf("create the bare ioctls' pool %s: %w", name, err)
	}
	b.defer_("remove pool "+name, func() error {
		if err := b.ctl.Remove(name, dm.RemoveOptions{}); err != nil && !errors.Is(err, dm.ErrNotFound) {
			return err
		}
		return nil
	})
	return &floor{ctl: b.ctl, pool: name, next: 1}, nil
}

// step runs one pool message and commits it with the next transaction id.
func (f *floor) step(msg func(id uint32) error) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.next
	if err := msg(id); err != nil {
		return "", err
	}
	if err := f.ctl.SetTransactionID(f.pool, f.tx, f.tx+1); err != nil {
		return "", err
	}
	f.next++
	f.tx++
	return strconv.FormatUint(uint64(id), 10), nil
}

func parseThinID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err
}

func (f *floor) createVolume(context.Context, string) (string, error) {
	return f.step(func(id uint32) error { return f.ctl.CreateThin(f.pool, id) })
}

func (f *floor) createSnapshot(_ context.Context, _ string, volumeID string) (string, error) {
	origin, err := parseThinID(volumeID)
	if err != nil {
		return "", err
	}
	return f.step(func(id uint32) error { return f.ctl.CreateSnap(f.pool, id, origin) })
}

func (f *floor) restore(ctx context.Context, name, snapshotID string) (string, error) {
	return f.createSnapshot(ctx, name, snapshotID)
}

func (f *floor) deleteVolume(_ context.Context, id string) error {
	thin, err := parseThinID(id)
	if err != nil {
		return err
	}
	_, err = f.step(func(uint32) error { return f.ctl.DeleteThin(f.pool, thin) })
	return err
}

func (f *floor) deleteSnapshot(ctx context.Context, id string) error { return f.deleteVolume(ctx, id) }

// split times create_thin and set_transaction_id apart, and the two pool
// status reads a csi-thin change makes besides (one that commits the
// pool's metadata, before, and one that does not, after), n times each.
func (f *floor) split(n int) (floorSplit, error) {
	var s floorSplit
	timed := func(fn func() error) (time.Duration, error) {
		t0 := time.Now()
		err := fn()
		return time.Since(t0), err
	}
	var ids []uint32
	for range n {
		id := f.next
		d, err := timed(func() error { return f.ctl.CreateThin(f.pool, id) })
		if err != nil {
			return s, err
		}
		s.createThin = append(s.createThin, d)
		ids = append(ids, id)
		if d, err = timed(func() error { return f.ctl.SetTransactionID(f.pool, f.tx, f.tx+1) }); err != nil {
			return s, err
		}
		s.setTxID = append(s.setTxID, d)
		f.next++
		f.tx++
		if d, err = timed(func() error { _, err := f.ctl.PoolStatus(f.pool); return err }); err != nil {
			return s, err
		}
		s.statusCommit = append(s.statusCommit, d)
		if d, err = timed(func() error { _, err := f.ctl.PoolStatusNoCommit(f.pool); return err }); err != nil {
			return s, err
		}
		s.statusNoCommit = append(s.statusNoCommit, d)
	}
	for _, id := range ids {
		if err := f.ctl.DeleteThin(f.pool, id); err != nil {
			return s, err
		}
	}
	if err := f.ctl.SetTransactionID(f.pool, f.tx, f.tx+1); err != nil {
		return s, err
	}
	f.tx++
	klog.InfoS("Bare ioctls, one at a time", "create_thin p50", s.createThin.Percentile(50), "set_transaction_id p50", s.setTxID.Percentile(50),
		"status p50", s.statusCommit.Percentile(50), "status without commit p50", s.statusNoCommit.Percentile(50))
	return s, nil
}
