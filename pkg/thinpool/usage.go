package thinpool

// Usage is the pool as one read of its status shows it: what the metrics
// report at each scrape.
type Usage struct {
	Capacity
	// Health is what Health returns for the same status read: nil while
	// the pool is healthy, else an error that says why not.
	Health error
}

// Usage reads the pool's status once for both its capacity and its health:
// each status read commits the pool's metadata. The error is the read's;
// Health then says so too. Like Capacity and Health, it waits for no
// change in flight.
func (e *Engine) Usage() (Usage, error) {
	st, err := e.k.PoolStatus(e.pool)
	if err != nil {
		return Usage{Health: e.healthOf(st, err)}, err
	}
	return Usage{Capacity: e.capacityOf(st), Health: e.healthOf(st, nil)}, nil
}

// Count is the number of volumes or snapshots that List returns, counted
// from the database's keys without reading the records.
func (e *Engine) Count(kind Kind) (int, error) {
	return e.store.count(idPrefix(kind), e.committed.Load())
}
