package thinmeta

import "context"

// Delta calls fn with the blocks of thin device target, from block start
// on, whose mapping differs from base's: mapped in one and not the other,
// or mapped to different data blocks. They come in order, as extents of
// consecutive blocks, each as long as it can be. fn's errors end the walk
// as in Mappings.
//
// Delta reads only what the two devices do not share. A snapshot shares
// its origin's btree nodes until one of them is written, and a node both
// trees reach by the same block holds the same mappings for both: Delta
// skips it without reading it. Where the two trees split their keys
// differently, it reads on down to where they meet again, in the worst
// case to the leaves, whose entries it compares one by one.
func (t *Tree) Delta(ctx context.Context, base, target uint32, start uint64, fn func(Extent) error) error {
	ra, err := t.mappingRoot(ctx, base)
	if err != nil {
		return err
	}
	rb, err := t.mappingRoot(ctx, target)
	if err != nil {
		return err
	}
	return delta(ctx, newCursor(t, ra, le64Size, start), newCursor(t, rb, le64Size, start), &extents{fn: fn})
}

// delta merges the walks of a and b in key order. Every key below both
// heads has been compared; a head's lower bound is its key, or for a ref
// the lowest key its parent allows it. Each step takes the side whose
// head is lower: an entry there is in that tree only (the other has no
// key below its own head that is not compared yet); a ref there is read.
// Heads that are the same block are skipped together: all the keys of
// each tree from there to the end of that subtree are the subtree's, the
// same on both sides.
func delta(ctx context.Context, a, b *cursor, out *extents) error {
	for {
		ha, hb := a.head(), b.head()
		if ha.kind == itemEnd && hb.kind == itemEnd {
			return out.flush()
		}
		if ha.kind == itemRef && hb.kind == itemRef && ha.block == hb.block {
			a.skip()
			b.skip()
			continue
		}
		var err error
		switch la, lb := lowerBound(ha), lowerBound(hb); {
		case hb.kind == itemEnd || (ha.kind != itemEnd && la < lb):
			err = oneSide(ctx, a, ha, out)
		case ha.kind == itemEnd || lb < la:
			err = oneSide(ctx, b, hb, out)
		case ha.kind == itemEntry && hb.kind == itemEntry: // the same key
			if a.entryValue64()>>blockTimeShift != b.entryValue64()>>blockTimeShift {
				err = out.add(ha.key)
			}
			a.next()
			b.next()
		case ha.kind == itemRef && hb.kind == itemEntry:
			err = a.expand(ctx)
		case ha.kind == itemEntry && hb.kind == itemRef:
			err = b.expand(ctx)
		default: // two refs from the same key
			err = expandRefs(ctx, a, b, ha, hb)
		}
		if err != nil {
			return err
		}
	}
}

// expandRefs reads one or both of two refs from the same key, a and b's
// heads ha and hb. A taller subtree may hold the other: read it alone, and
// the walk may meet the other as one of its children. Two of the same
// height cannot hold each other: read both. Before a walk has been down
// to a leaf its heights are not known: then the ref that reaches further
// is likely the taller.
func expandRefs(ctx context.Context, a, b *cursor, ha, hb item) error {
	ta, okA := a.headHeight()
	tb, okB := b.headHeight()
	var readA, readB bool
	switch {
	case okA && okB:
		readA, readB = ta >= tb, tb >= ta
	default:
		readA, readB = ha.kr.hi >= hb.kr.hi, hb.kr.hi >= ha.kr.hi
	}
	if readA {
		if err := a.expand(ctx); err != nil {
			return err
		}
	}
	if readB {
		return b.expand(ctx)
	}
	return nil
}

// oneSide takes the head h of c, which is below the other side's head: an
// entry is a block only c's tree maps, a ref is read.
func oneSide(ctx context.Context, c *cursor, h item, out *extents) error {
	if h.kind == itemRef {
		return c.expand(ctx)
	}
	if err := out.add(h.key); err != nil {
		return err
	}
	c.next()
	return nil
}

func lowerBound(h item) uint64 {
	if h.kind == itemRef {
		return h.kr.lo
	}
	return h.key
}
