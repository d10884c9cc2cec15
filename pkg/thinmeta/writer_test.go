package thinmeta_test

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// imageWriter lays out thin-pool metadata in memory for tests: btree nodes
// with valid checksums, in blocks allocated one after another, and then a
// superblock in block 0. Unlike thin_restore, it lets two devices share
// subtrees, as a snapshot and its origin do in a live pool: set copies
// the path to a changed leaf, as the kernel's shadowing does. It writes
// no space maps, which a reader of the trees does not need.
type imageWriter struct {
	t      testing.TB
	blocks [][]byte // blocks[0] is the superblock, written last
}

const (
	blockSize         = 4096
	nodeCsumXor       = 121107
	superblockCsumXor = 160774
	leafFlag          = 2
	internalFlag      = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blockChecksum is dm_bm_checksum, written out again from the kernel's
// definition: crc32c from ~0, not inverted, over all but the first four
// bytes, xor'd with the salt.
func blockChecksum(b []byte, salt uint32) uint32 {
	return ^crc32.Update(0, castagnoli, b[4:]) ^ salt
}

func newImageWriter(t testing.TB) *imageWriter {
	return &imageWriter{t: t, blocks: [][]byte{make([]byte, blockSize)}}
}

// maxEntries is how many entries of valueSize bytes a node holds, rounded
// down to a multiple of 3 as the kernel does.
func maxEntries(valueSize int) int { return (blockSize - 32) / (8 + valueSize) / 3 * 3 }

// wnode is a node as the writer builds it.
type wnode struct {
	leaf      bool
	valueSize int
	keys      []uint64
	values    [][]byte
}

func le64Value(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// mappingValue packs a data block and a time as the kernel does.
func mappingValue(data uint64, time uint32) []byte { return le64Value(data<<24 | uint64(time)) }

// write puts n in a new block and returns its number.
func (w *imageWriter) write(n wnode) uint64 {
	b := uint64(len(w.blocks))
	w.blocks = append(w.blocks, encodeNode(n, b))
	return b
}

func encodeNode(n wnode, block uint64) []byte {
	d := make([]byte, blockSize)
	room := maxEntries(n.valueSize)
	flags := uint32(internalFlag)
	if n.leaf {
		flags = leafFlag
	}
	le := binary.LittleEndian
	le.PutUint32(d[4:], flags)
	le.PutUint64(d[8:], block)
	le.PutUint32(d[16:], uint32(len(n.keys)))
	le.PutUint32(d[20:], uint32(room))
	le.PutUint32(d[24:], uint32(n.valueSize))
	for i, k := range n.keys {
		le.PutUint64(d[32+8*i:], k)
		copy(d[32+8*room+n.valueSize*i:], n.values[i])
	}
	le.PutUint32(d, blockChecksum(d, nodeCsumXor))
	return d
}

// read decodes the node at block b.
func (w *imageWriter) read(b uint64) wnode {
	d := w.blocks[b]
	le := binary.LittleEndian
	nr, room, vs := int(le.Uint32(d[16:])), int(le.Uint32(d[20:])), int(le.Uint32(d[24:]))
	n := wnode{leaf: le.Uint32(d[4:]) == leafFlag, valueSize: vs}
	for i := range nr {
		n.keys = append(n.keys, le.Uint64(d[32+8*i:]))
		n.values = append(n.values, slices.Clone(d[32+8*room+vs*i:][:vs]))
	}
	return n
}

// ref is a subtree: its root block and its lowest key.
type ref struct{ block, key uint64 }

// leaves writes leaves of fanout entries over keys and values, in order.
func (w *imageWriter) leaves(keys []uint64, values [][]byte, valueSize, fanout int) []ref {
	var out []ref
	for i := 0; i < len(keys); i += fanout {
		j := min(i+fanout, len(keys))
		out = append(out, ref{w.write(wnode{leaf: true, valueSize: valueSize, keys: keys[i:j], values: values[i:j]}), keys[i]})
	}
	return out
}

// levels writes internal nodes of fanout children over subtrees until
// one root is left, and returns it.
func (w *imageWriter) levels(subtrees []ref, fanout int) uint64 {
	for len(subtrees) > 1 {
		var up []ref
		for i := 0; i < len(subtrees); i += fanout {
			j := min(i+fanout, len(subtrees))
			n := wnode{valueSize: 8}
			for _, s := range subtrees[i:j] {
				n.keys = append(n.keys, s.key)
				n.values = append(n.values, le64Value(s.block))
			}
			up = append(up, ref{w.write(n), subtrees[i].key})
		}
		subtrees = up
	}
	return subtrees[0].block
}

// tree writes a btree of keys and values and returns its root; an empty
// tree is an empty leaf.
func (w *imageWriter) tree(keys []uint64, values [][]byte, valueSize, fanout int) uint64 {
	if len(keys) == 0 {
		return w.write(wnode{leaf: true, valueSize: valueSize})
	}
	return w.levels(w.leaves(keys, values, valueSize, fanout), fanout)
}

// mappingTree writes the mapping btree of m (virtual block -> data block).
func (w *imageWriter) mappingTree(m map[uint64]uint64, fanout int) uint64 {
	keys, values := mappingEntries(m)
	return w.tree(keys, values, 8, fanout)
}

func mappingEntries(m map[uint64]uint64) ([]uint64, [][]byte) {
	keys := sortedKeys(m)
	values := make([][]byte, len(keys))
	for i, k := range keys {
		values[i] = mappingValue(m[k], 0)
	}
	return keys, values
}

// set returns the root of a copy of the tree at root in which key maps to
// value: the nodes on the path to the key's leaf are copied, everything
// else is shared with the tree at root. The leaf must have room for a new
// key.
func (w *imageWriter) set(root, key uint64, value []byte) uint64 {
	n := w.read(root)
	i, found := slices.BinarySearch(n.keys, key)
	if n.leaf {
		if found {
			n.values = slices.Clone(n.values)
			n.values[i] = value
		} else {
			if len(n.keys) == maxEntries(n.valueSize) {
				w.t.Fatalf("set %d: leaf %d is full", key, root)
			}
			n.keys = slices.Insert(slices.Clone(n.keys), i, key)
			n.values = slices.Insert(slices.Clone(n.values), i, value)
		}
		return w.write(n)
	}
	if !found {
		i--
	}
	n.keys, n.values = slices.Clone(n.keys), slices.Clone(n.values)
	if i < 0 {
		i = 0
		n.keys[0] = key
	}
	child := w.set(binary.LittleEndian.Uint64(n.values[i]), key, value)
	n.values[i] = le64Value(child)
	return w.write(n)
}

// remove returns the root of a copy of the tree at root without key, the
// path copied as in set. The key's leaf must keep an entry.
func (w *imageWriter) remove(root, key uint64) uint64 {
	n := w.read(root)
	i, found := slices.BinarySearch(n.keys, key)
	if n.leaf {
		if !found {
			return root
		}
		if len(n.keys) == 1 {
			w.t.Fatalf("remove %d would empty leaf %d", key, root)
		}
		n.keys = slices.Delete(slices.Clone(n.keys), i, i+1)
		n.values = slices.Delete(slices.Clone(n.values), i, i+1)
		return w.write(n)
	}
	if !found {
		i--
	}
	if i < 0 {
		return root
	}
	n.keys, n.values = slices.Clone(n.keys), slices.Clone(n.values)
	n.values[i] = le64Value(w.remove(binary.LittleEndian.Uint64(n.values[i]), key))
	return w.write(n)
}

// device is a thin device for the superblock's trees.
type device struct {
	id   uint32
	root uint64 // of its mapping tree
}

// superblock is what image writes into block 0.
type superblock struct {
	devices  []device
	heldRoot uint64
	time     uint32
	transID  uint64
}

// finish writes the top-level trees of sb's devices and a superblock at
// block, 0 or a snapshot's copy, and returns that block.
func (w *imageWriter) finish(sb superblock, block uint64) uint64 {
	var ids []uint64
	var roots, details [][]byte
	for _, d := range sb.devices {
		ids = append(ids, uint64(d.id))
		roots = append(roots, le64Value(d.root))
		det := make([]byte, 24)
		binary.LittleEndian.PutUint64(det, 0)
		binary.LittleEndian.PutUint64(det[8:], sb.transID)
		binary.LittleEndian.PutUint32(det[16:], 0)
		binary.LittleEndian.PutUint32(det[20:], sb.time)
		details = append(details, det)
	}
	mapping := w.tree(ids, roots, 8, maxEntries(8))
	detailsRoot := w.tree(ids, details, 24, maxEntries(24))
	if block != 0 {
		block = uint64(len(w.blocks))
		w.blocks = append(w.blocks, nil)
	}
	w.blocks[block] = w.encodeSuperblock(sb, block, mapping, detailsRoot)
	return block
}

func (w *imageWriter) encodeSuperblock(sb superblock, block, mapping, details uint64) []byte {
	d := make([]byte, blockSize)
	le := binary.LittleEndian
	le.PutUint64(d[8:], block)
	le.PutUint64(d[32:], 27022010)
	le.PutUint32(d[40:], 2)
	le.PutUint32(d[44:], sb.time)
	le.PutUint64(d[48:], sb.transID)
	le.PutUint64(d[56:], sb.heldRoot)
	le.PutUint64(d[64:], 1<<20)                  // data space map: nr_blocks
	le.PutUint64(d[192:], uint64(len(w.blocks))) // metadata space map: nr_blocks
	le.PutUint64(d[320:], mapping)
	le.PutUint64(d[328:], details)
	le.PutUint32(d[336:], 128)
	le.PutUint32(d[340:], 8)
	le.PutUint64(d[344:], uint64(len(w.blocks)))
	le.PutUint32(d, blockChecksum(d, superblockCsumXor))
	return d
}

// bytes is the whole image.
func (w *imageWriter) bytes() []byte {
	out := make([]byte, 0, len(w.blocks)*blockSize)
	for _, b := range w.blocks {
		if b == nil {
			b = make([]byte, blockSize)
		}
		out = append(out, b...)
	}
	return out
}

// file writes the image to a file in the test's directory.
func (w *imageWriter) file() string {
	p := filepath.Join(w.t.TempDir(), "metadata")
	if err := os.WriteFile(p, w.bytes(), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return p
}

func sortedKeys[V any](m map[uint64]V) []uint64 {
	keys := make([]uint64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// nodes returns the blocks of the nodes of the tree at root.
func (w *imageWriter) nodes(root uint64) map[uint64]bool {
	out := map[uint64]bool{}
	var walk func(uint64)
	walk = func(b uint64) {
		out[b] = true
		if n := w.read(b); !n.leaf {
			for _, v := range n.values {
				walk(binary.LittleEndian.Uint64(v))
			}
		}
	}
	walk(root)
	return out
}

// unshared counts the nodes of one tree that are not nodes of the other.
func (w *imageWriter) unshared(a, b uint64) int {
	na, nb := w.nodes(a), w.nodes(b)
	n := 0
	for x := range na {
		if !nb[x] {
			n++
		}
	}
	for x := range nb {
		if !na[x] {
			n++
		}
	}
	return n
}
