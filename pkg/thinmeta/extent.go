package thinmeta

// Extent is a run of consecutive virtual blocks of a thin device, in pool
// data blocks (Superblock.DataBlockSize).
type Extent struct {
	Block uint64 // first block
	Len   uint64 // blocks
}

// End is the block just past the extent.
func (e Extent) End() uint64 { return e.Block + e.Len }

// extents merges blocks, given in increasing order, into extents for fn.
type extents struct {
	fn  func(Extent) error
	cur Extent
}

func (e *extents) add(b uint64) error {
	if e.cur.Len > 0 && e.cur.End() == b {
		e.cur.Len++
		return nil
	}
	if err := e.flush(); err != nil {
		return err
	}
	e.cur = Extent{Block: b, Len: 1}
	return nil
}

func (e *extents) flush() error {
	if e.cur.Len == 0 {
		return nil
	}
	x := e.cur
	e.cur = Extent{}
	return e.fn(x)
}
