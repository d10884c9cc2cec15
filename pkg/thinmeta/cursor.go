package thinmeta

import "context"

// cursor walks a btree in key order, one node per level in memory. Its
// head is the next thing in the walk: a subtree not yet read (a ref),
// which the walker may expand (read, to walk into it) or skip, or a leaf
// entry.
type cursor struct {
	t         *Tree
	valueSize int    // of the leaf values
	from      uint64 // keys below it are left out

	root      uint64 // the root, while it is not yet read
	rootDone  bool
	stack     []frame
	leafDepth int // the depth of the leaves, once one is read; 0 before

	// readahead: the walk reads every leaf, and reads leaves ahead in
	// batches. Not for a delta, which skips what it can.
	readahead bool
}

// frame is a node being walked: the next entry to look at and the key
// range its parent gives it.
type frame struct {
	n     *node
	i     int
	kr    keyRange
	ahead int // children before it are read ahead
}

type itemKind int

const (
	itemEnd   itemKind = iota // nothing left
	itemRef                   // a subtree: block, kr
	itemEntry                 // a leaf entry: key
)

type item struct {
	kind  itemKind
	block uint64   // itemRef
	kr    keyRange // itemRef
	key   uint64   // itemEntry
}

func newCursor(t *Tree, root uint64, valueSize int, from uint64) *cursor {
	return &cursor{t: t, valueSize: valueSize, from: from, root: root, stack: make([]frame, 0, maxDepth)}
}

// head returns the next item.
func (c *cursor) head() item {
	if !c.rootDone {
		return item{kind: itemRef, block: c.root, kr: fullRange}
	}
	for len(c.stack) > 0 {
		f := &c.stack[len(c.stack)-1]
		if f.i >= f.n.n {
			c.stack = c.stack[:len(c.stack)-1]
			continue
		}
		if f.n.leaf {
			return item{kind: itemEntry, key: f.n.key(f.i)}
		}
		return item{kind: itemRef, block: f.n.value64(f.i), kr: f.n.childRange(f.i, f.kr)}
	}
	return item{kind: itemEnd}
}

// expand reads the subtree at the head, a ref, and walks into it: the
// head becomes its first entry or child at or past from.
func (c *cursor) expand(ctx context.Context) error {
	it := c.head()
	if it.kind != itemRef {
		return nil
	}
	depth := len(c.stack)
	if c.readahead && depth > 0 && depth == c.leafDepth-1 {
		// The head is a leaf: read it and the next ones together.
		if f := &c.stack[depth-1]; f.ahead <= f.i {
			f.ahead = min(f.i+readaheadBlocks, f.n.n)
			blocks := make([]uint64, 0, f.ahead-f.i)
			for i := f.i; i < f.ahead; i++ {
				blocks = append(blocks, f.n.value64(i))
			}
			c.t.prefetch(blocks)
		}
	}
	if depth == maxDepth {
		return corruptf(it.block, "btree is deeper than %d levels: a cycle", maxDepth)
	}
	n, err := c.t.readNode(ctx, it.block, it.kr, c.valueSize, depth == 0)
	if err != nil {
		return err
	}
	if n.leaf {
		switch {
		case c.leafDepth == 0:
			c.leafDepth = depth + 1
		case c.leafDepth != depth+1:
			return corruptf(n.block, "btree leaf at depth %d, others are at depth %d", depth+1, c.leafDepth)
		}
	} else if c.leafDepth != 0 && depth+1 >= c.leafDepth {
		return corruptf(n.block, "internal btree node at depth %d, where the leaves are", depth+1)
	}
	c.skip()
	c.stack = append(c.stack, frame{n: n, i: n.first(c.from), kr: it.kr})
	return nil
}

// headHeight returns the height of the head ref, 0 for a leaf, once the
// cursor knows the depth of the tree's leaves (all at one depth).
func (c *cursor) headHeight() (int, bool) {
	if c.leafDepth == 0 {
		return 0, false
	}
	return c.leafDepth - 1 - len(c.stack), true
}

// skip moves past the head, a ref or an entry, without reading it.
func (c *cursor) skip() {
	if !c.rootDone {
		c.rootDone = true
		return
	}
	if len(c.stack) > 0 {
		c.stack[len(c.stack)-1].i++
	}
}

// next moves past the head entry.
func (c *cursor) next() { c.skip() }

// entryValue returns the value of the head entry.
func (c *cursor) entryValue() []byte {
	f := &c.stack[len(c.stack)-1]
	return f.n.value(f.i)
}

// entryValue64 returns the value of the head entry of a tree of __le64s.
func (c *cursor) entryValue64() uint64 {
	f := &c.stack[len(c.stack)-1]
	return f.n.value64(f.i)
}

// leafBlock is the block of the leaf the head entry is in.
func (c *cursor) leafBlock() uint64 { return c.stack[len(c.stack)-1].n.block }

// first returns the index of the first entry of n with keys at or past
// from: in a leaf the first key >= from, in an internal node the child
// whose range holds from.
func (n *node) first(from uint64) int {
	i := n.search(from)
	if n.leaf {
		if i >= 0 && n.key(i) == from {
			return i
		}
		return i + 1
	}
	return max(i, 0)
}
