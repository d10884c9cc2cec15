package thinmeta

// node is a checked btree node: a header, then max keys, then max values
// of valueSize bytes each (struct btree_node in dm-btree-internal.h).
type node struct {
	block     uint64
	data      []byte
	leaf      bool
	n         int // entries in use
	max       int // entries the node has room for
	valueSize int
}

// parseNode checks a btree node read from block as the kernel's
// node_check does (block number, checksum, sizes, flags) and checks that
// its keys strictly increase. What the node holds (its value size, the
// range of its keys) depends on where it is in a tree: see checkNode.
func parseNode(data []byte, block uint64) (*node, error) {
	if len(data) != BlockSize {
		return nil, corruptf(block, "btree node is %d bytes, want %d", len(data), BlockSize)
	}
	if got, want := le32(data, 0), checksum(data, nodeCsumXor); got != want {
		if got == checksum(data, superblockCsumXor) {
			return nil, corruptf(block, "btree node expected, but the block is a superblock")
		}
		return nil, corruptf(block, "btree node checksum %#08x, want %#08x", got, want)
	}
	if b := le64(data, nodeBlocknr); b != block {
		return nil, corruptf(block, "btree node says it is block %d", b)
	}
	n := &node{block: block, data: data}
	switch f := le32(data, nodeFlags); f {
	case nodeFlagInternal:
	case nodeFlagLeaf:
		n.leaf = true
	default:
		return nil, corruptf(block, "btree node flags %#x, want %d (internal) or %d (leaf)", f, nodeFlagInternal, nodeFlagLeaf)
	}
	nr, room, vs := le32(data, nodeNrEntries), le32(data, nodeMaxEntries), le32(data, nodeValueSize)
	// In uint64: a hostile max_entries or value_size must not overflow.
	if vs == 0 || nodeHeaderSize+(uint64(le64Size)+uint64(vs))*uint64(room) > BlockSize {
		return nil, corruptf(block, "btree node of %d entries of %d-byte values does not fit a %d-byte block", room, vs, BlockSize)
	}
	if nr > room {
		return nil, corruptf(block, "btree node has %d entries but room for %d", nr, room)
	}
	n.n, n.max, n.valueSize = int(nr), int(room), int(vs)
	for i := 1; i < n.n; i++ {
		if n.key(i) <= n.key(i-1) {
			return nil, corruptf(block, "btree node key %d (%d) does not follow key %d (%d) in order", i, n.key(i), i-1, n.key(i-1))
		}
	}
	return n, nil
}

func (n *node) key(i int) uint64 { return le64(n.data, nodeHeaderSize+8*i) }

// value returns the bytes of value i.
func (n *node) value(i int) []byte {
	off := nodeHeaderSize + 8*n.max + n.valueSize*i
	return n.data[off : off+n.valueSize]
}

// value64 returns value i of a node of __le64 values.
func (n *node) value64(i int) uint64 { return le64(n.data, nodeHeaderSize+8*n.max+8*i) }

// search returns the index of the last key <= k, or -1 when every key is
// greater (lower_bound in dm-btree.c).
func (n *node) search(k uint64) int {
	lo, hi := 0, n.n // the answer is in [lo-1, hi-1]
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if n.key(mid) <= k {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo - 1
}

// keyRange is the range of keys, both ends included, a parent allows in a
// child: from the parent's key for it to just below the next one.
type keyRange struct{ lo, hi uint64 }

var fullRange = keyRange{0, ^uint64(0)}

// childRange is the range of child i of internal node n, whose own range
// is r.
func (n *node) childRange(i int, r keyRange) keyRange {
	c := keyRange{lo: n.key(i), hi: r.hi}
	if i+1 < n.n {
		c.hi = n.key(i+1) - 1
	}
	return c
}

// checkNode checks what n holds against where it was reached from: leaf
// values of leafValueSize bytes (internal ones are block numbers), keys
// within r, and entries unless it is a root (an empty tree is an empty
// root leaf; the kernel never leaves another node empty).
func (n *node) checkNode(r keyRange, leafValueSize int, root bool) error {
	want := le64Size
	if n.leaf {
		want = leafValueSize
	}
	if n.valueSize != want {
		kind := "internal"
		if n.leaf {
			kind = "leaf"
		}
		return corruptf(n.block, "%s btree node has %d-byte values, want %d", kind, n.valueSize, want)
	}
	if n.n == 0 {
		if root && n.leaf {
			return nil
		}
		return corruptf(n.block, "btree node has no entries")
	}
	if first, last := n.key(0), n.key(n.n-1); first < r.lo || last > r.hi {
		return corruptf(n.block, "btree node keys %d to %d are outside %d to %d, the range its parent gives it", first, last, r.lo, r.hi)
	}
	return nil
}
