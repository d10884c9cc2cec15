package thinmeta

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// Tree is the metadata as one superblock has it: its devices, their
// details and their mappings. Open it with Reader.Snapshot.
type Tree struct {
	r     *Reader
	sb    Superblock
	limit uint64 // metadata blocks: a node at or past it is corrupt
	cache *nodeCache
}

// Snapshot opens the metadata as the superblock at block has it: the
// copy of a metadata snapshot, at the block HeldRoot gives. Its blocks
// stay as they are while the pool holds it, and the Tree is good only
// that long. Block 0 is the live superblock, whose trees the pool
// rewrites as it runs: read it only when nothing changes the metadata (a
// pool that is not active, a file).
func (r *Reader) Snapshot(block uint64) (*Tree, error) {
	live, err := r.Superblock()
	if err != nil {
		return nil, err
	}
	limit := live.blockLimit()
	sb := live
	if block != 0 {
		if block >= limit {
			return nil, corruptf(block, "metadata snapshot superblock is past the %d blocks of the metadata", limit)
		}
		if sb, err = r.superblock(block); err != nil {
			return nil, err
		}
	}
	for _, root := range []uint64{sb.DataMappingRoot, sb.DeviceDetailsRoot} {
		if root >= limit {
			return nil, corruptf(sb.Block, "superblock names root block %d, past the %d blocks of the metadata", root, limit)
		}
	}
	return &Tree{r: r, sb: sb, limit: limit, cache: newNodeCache(cacheBlocks)}, nil
}

// Superblock returns the superblock the tree was opened from.
func (t *Tree) Superblock() Superblock { return t.sb }

// readNode returns the checked node at block b, reached through a parent
// that gives it key range kr, holding leaf values of leafValueSize bytes.
func (t *Tree) readNode(ctx context.Context, b uint64, kr keyRange, leafValueSize int, root bool) (*node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b == 0 || b >= t.limit {
		return nil, corruptf(b, "btree node block is outside the %d blocks of the metadata (block 0 is the superblock)", t.limit)
	}
	n := t.cache.get(b)
	if n == nil {
		data, err := t.r.readBlock(b)
		if err != nil {
			return nil, err
		}
		if n, err = parseNode(data, b); err != nil {
			return nil, err
		}
		t.cache.put(n)
	}
	if err := n.checkNode(kr, leafValueSize, root); err != nil {
		return nil, err
	}
	return n, nil
}

// readaheadBlocks is how many leaves a walk of every leaf reads ahead,
// the most it reads at once: O_DIRECT reads wait for the device each time,
// and leaves often lie next to each other.
const readaheadBlocks = 32

// prefetch reads the nodes at blocks that are not in the cache, as few
// reads as runs of consecutive blocks, and caches those that parse. It
// reports nothing: readNode reads again, and says what is wrong, where a
// prefetch failed.
func (t *Tree) prefetch(blocks []uint64) {
	var want []uint64
	for _, b := range blocks {
		if b != 0 && b < t.limit && t.cache.get(b) == nil {
			want = append(want, b)
		}
	}
	slices.Sort(want)
	want = slices.Compact(want)
	for len(want) > 0 {
		n := 1
		for n < len(want) && n < readaheadBlocks && want[n] == want[0]+uint64(n) {
			n++
		}
		if data, err := t.r.readBlocks(want[0], n); err == nil {
			for i := range n {
				// Each node its own copy: a cached node must not keep
				// the whole read's buffer.
				if nd, err := parseNode(slices.Clone(data[i*BlockSize:(i+1)*BlockSize]), want[i]); err == nil {
					t.cache.put(nd)
				}
			}
		}
		want = want[n:]
	}
}

// lookup finds key k in the one-level btree at root whose leaves hold
// values of valueSize bytes.
func (t *Tree) lookup(ctx context.Context, root, k uint64, valueSize int) ([]byte, bool, error) {
	b, kr := root, fullRange
	for depth := 0; ; depth++ {
		if depth == maxDepth {
			return nil, false, corruptf(b, "btree is deeper than %d levels: a cycle", maxDepth)
		}
		n, err := t.readNode(ctx, b, kr, valueSize, depth == 0)
		if err != nil {
			return nil, false, err
		}
		i := n.search(k)
		if i < 0 {
			return nil, false, nil
		}
		if n.leaf {
			if n.key(i) != k {
				return nil, false, nil
			}
			return n.value(i), true, nil
		}
		b, kr = n.value64(i), n.childRange(i, kr)
	}
}

// DeviceDetails is what the metadata keeps of a thin device (struct
// disk_device_details).
type DeviceDetails struct {
	MappedBlocks    uint64 // data blocks it maps
	TransactionID   uint64 // the pool's transaction id when it was created
	CreationTime    uint32 // the pool's time when it was created
	SnapshottedTime uint32 // the pool's time when it was last snapshotted (or created)
}

func parseDeviceDetails(v []byte) DeviceDetails {
	return DeviceDetails{
		MappedBlocks:    le64(v, 0),
		TransactionID:   le64(v, 8),
		CreationTime:    le32(v, 16),
		SnapshottedTime: le32(v, 20),
	}
}

// Device is a thin device: its id and details.
type Device struct {
	ID uint32
	DeviceDetails
}

// Devices returns the thin devices, in id order.
func (t *Tree) Devices(ctx context.Context) ([]Device, error) {
	var out []Device
	c := newCursor(t, t.sb.DeviceDetailsRoot, deviceDetailsSize, 0)
	c.readahead = true
	for {
		switch it := c.head(); it.kind {
		case itemEnd:
			return out, nil
		case itemRef:
			if err := c.expand(ctx); err != nil {
				return nil, err
			}
		case itemEntry:
			if it.key > math.MaxUint32 {
				return nil, corruptf(c.leafBlock(), "device details key %d is not a thin device id", it.key)
			}
			out = append(out, Device{ID: uint32(it.key), DeviceDetails: parseDeviceDetails(c.entryValue())})
			c.next()
		}
	}
}

// DeviceDetails returns the details of thin device dev, or ErrNoDevice.
func (t *Tree) DeviceDetails(ctx context.Context, dev uint32) (DeviceDetails, error) {
	v, ok, err := t.lookup(ctx, t.sb.DeviceDetailsRoot, uint64(dev), deviceDetailsSize)
	if err != nil {
		return DeviceDetails{}, err
	}
	if !ok {
		return DeviceDetails{}, fmt.Errorf("thin device %d: %w", dev, ErrNoDevice)
	}
	return parseDeviceDetails(v), nil
}

// mappingRoot returns the root of thin device dev's mapping btree.
func (t *Tree) mappingRoot(ctx context.Context, dev uint32) (uint64, error) {
	v, ok, err := t.lookup(ctx, t.sb.DataMappingRoot, uint64(dev), le64Size)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("thin device %d: %w", dev, ErrNoDevice)
	}
	return le64(v, 0), nil
}
