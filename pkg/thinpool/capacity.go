package thinpool

import (
	"fmt"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// Capacity is the pool's space, physical and promised.
type Capacity struct {
	DataBytes, DataUsedBytes         uint64 // the pool's data space and what is written
	MetadataBytes, MetadataUsedBytes uint64
	// BudgetBytes is what volumes and snapshots may add up to:
	// overprovision ratio × data space.
	BudgetBytes uint64
	// PromisedBytes is the sum of the sizes of every volume and snapshot.
	PromisedBytes uint64
	// AvailableBytes is the largest volume that may be created now: what
	// the budget has left, or 0 while free space is below a reserve or the
	// pool is out of data space.
	AvailableBytes uint64
}

// Capacity reports the pool's space. It waits for no change in flight:
// the kernel serialises the status read with the pool's messages, and
// the promised bytes are those of the changes committed so far.
func (e *Engine) Capacity() (Capacity, error) {
	st, err := e.k.PoolStatus(e.pool)
	if err != nil {
		return Capacity{}, err
	}
	return e.capacityOf(st), nil
}

// capacityOf is the pool's space as a status read reports it, with the
// promised bytes as they stand: under poolMu, as in a change's capacity
// check, they cannot move meanwhile.
func (e *Engine) capacityOf(st dm.PoolStatus) Capacity {
	block := uint64(e.blockSectors) * sectorSize
	c := Capacity{
		DataBytes: st.DataTotal * block, DataUsedBytes: st.DataUsed * block,
		MetadataBytes: st.MetadataTotal * metadataBlockBytes, MetadataUsedBytes: st.MetadataUsed * metadataBlockBytes,
		PromisedBytes: e.promised.Load(),
	}
	c.BudgetBytes = uint64(float64(c.DataBytes) * e.cfg.OverprovisionRatio)
	if c.BudgetBytes > c.PromisedBytes && e.reserveErr(c) == nil && st.Mode != dm.PoolModeOutOfDataSpace {
		c.AvailableBytes = c.BudgetBytes - c.PromisedBytes
	}
	return c
}

// reserveErr says which reserve the pool's free space is below, if any.
func (e *Engine) reserveErr(c Capacity) error {
	if free := c.DataBytes - c.DataUsedBytes; float64(free) < float64(c.DataBytes)*e.cfg.DataReservePercent/100 {
		return fmt.Errorf("%w: %d of %d data bytes are free, below the %g%% reserve: delete volumes or snapshots, or grow the pool",
			ErrNoSpace, free, c.DataBytes, e.cfg.DataReservePercent)
	}
	if free := c.MetadataBytes - c.MetadataUsedBytes; float64(free) < float64(c.MetadataBytes)*e.cfg.MetadataReservePercent/100 {
		return fmt.Errorf("%w: %d of %d metadata bytes are free, below the %g%% reserve: delete snapshots, or grow the pool",
			ErrNoSpace, free, c.MetadataBytes, e.cfg.MetadataReservePercent)
	}
	return nil
}

// checkCapacityLocked refuses a new promise of size bytes that the pool
// cannot keep.
func (e *Engine) checkCapacityLocked(st dm.PoolStatus, size uint64) error {
	if st.Mode == dm.PoolModeOutOfDataSpace {
		return e.healthOf(st, nil)
	}
	c := e.capacityOf(st)
	if err := e.reserveErr(c); err != nil {
		return err
	}
	if c.PromisedBytes+size > c.BudgetBytes {
		return fmt.Errorf("%w: %d bytes asked, %d of the %d-byte budget (%g × %d bytes of pool) left: "+
			"delete volumes or snapshots, grow the pool, or raise the overprovision ratio",
			ErrOverBudget, size, c.BudgetBytes-min(c.BudgetBytes, c.PromisedBytes), c.BudgetBytes, e.cfg.OverprovisionRatio, c.DataBytes)
	}
	return nil
}
