package snapmeta

import (
	"context"
	"fmt"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// Entries per response message: DefaultMaxResults when the request leaves
// it to the plugin (max_results 0), and never more than maxMaxResults,
// which keeps a message (about 20 bytes an entry) far below gRPC's 4 MiB
// default limit whatever the caller asks.
const (
	DefaultMaxResults = 1024
	maxMaxResults     = 1 << 16
)

// pager turns a Source's extents into the response stream's BlockMetadata
// batches: it skips what ends before the first block asked, merges
// adjacent runs (VARIABLE_LENGTH) or splits them into single blocks
// (FIXED_LENGTH), and hands each full batch to send.
type pager struct {
	ctx      context.Context
	style    csi.BlockMetadataType
	block    uint64 // bytes per block
	capacity uint64 // bytes of the volume; the last entry ends there
	first    uint64 // the block holding starting_offset
	max      int
	send     func([]*csi.BlockMetadata) error

	next    uint64          // blocks before it are done with
	pending thinpool.Extent // VARIABLE_LENGTH: the run being merged; Len 0: none
	batch   []*csi.BlockMetadata
	sent    bool // a message went out
}

func newPager(ctx context.Context, style csi.BlockMetadataType, bm thinpool.BlockMap, first uint64, maxResults int32, send func([]*csi.BlockMetadata) error) *pager {
	max := int(maxResults)
	if max <= 0 {
		max = DefaultMaxResults
	}
	if max > maxMaxResults {
		max = maxMaxResults
	}
	return &pager{ctx: ctx, style: style, block: bm.BlockBytes, capacity: bm.VolumeBytes, first: first, max: max, send: send, next: first}
}

// add takes the Source's next extent; it is the Source's callback.
func (p *pager) add(x thinpool.Extent) error {
	if err := p.ctx.Err(); err != nil {
		return err
	}
	if x.Len == 0 || x.End() < x.Block {
		return fmt.Errorf("the block map yielded the empty or overflowing extent %d+%d", x.Block, x.Len)
	}
	if x.End() <= p.first {
		return nil // before the offset asked
	}
	if x.Block < p.next {
		if p.next != p.first { // only the first run may begin before the offset
			return fmt.Errorf("the block map yielded extent %d+%d out of order, after block %d", x.Block, x.Len, p.next)
		}
		x = thinpool.Extent{Block: p.first, Len: x.End() - p.first}
	}
	p.next = x.End()
	if p.style == csi.BlockMetadataType_FIXED_LENGTH {
		end := min(x.End(), (p.capacity+p.block-1)/p.block)
		for b := x.Block; b < end; b++ {
			if err := p.emit(thinpool.Extent{Block: b, Len: 1}); err != nil {
				return err
			}
		}
		return nil
	}
	if p.pending.Len > 0 && p.pending.End() == x.Block {
		p.pending.Len += x.Len
		return nil
	}
	if err := p.emitPending(); err != nil {
		return err
	}
	p.pending = x
	return nil
}

func (p *pager) emitPending() error {
	if p.pending.Len == 0 {
		return nil
	}
	x := p.pending
	p.pending = thinpool.Extent{}
	return p.emit(x)
}

// emit adds an entry to the batch, in bytes. Nothing is reported at or
// beyond the volume's end; a VARIABLE_LENGTH entry is cut there, while a
// FIXED_LENGTH one stays a whole block (a volume's size is whole blocks,
// so both are guards).
func (p *pager) emit(x thinpool.Extent) error {
	off := x.Block * p.block
	size := x.Len * p.block
	if off >= p.capacity || off/p.block != x.Block {
		return nil
	}
	if p.style == csi.BlockMetadataType_VARIABLE_LENGTH && (off+size > p.capacity || size/p.block != x.Len) {
		size = p.capacity - off
	}
	p.batch = append(p.batch, &csi.BlockMetadata{ByteOffset: int64(off), SizeBytes: int64(size)})
	if len(p.batch) < p.max {
		return nil
	}
	return p.flush()
}

func (p *pager) flush() error {
	if err := p.ctx.Err(); err != nil {
		return err
	}
	b := p.batch
	p.batch = nil
	p.sent = true
	return p.send(b)
}

// finish sends what is left once the Source is done: the run being merged
// and the last batch, or, when the stream would have no message at all,
// one without entries, so that the caller still learns the volume's
// capacity and the style.
func (p *pager) finish() error {
	if err := p.emitPending(); err != nil {
		return err
	}
	if len(p.batch) > 0 || !p.sent {
		return p.flush()
	}
	return nil
}
