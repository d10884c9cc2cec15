package thinmeta_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/csi-thin/csi-thin/pkg/thinmeta"
)

// corruptImage is metadata to damage: device 1 with a mapping tree of
// four levels (leaves of ten keys), device 2 with a small one, and where
// their nodes are.
type corruptImage struct {
	img                          []byte
	root, internal, leaf, leaf2  uint64 // of device 1: the root, the parent of the first leaf, the first two leaves
	details, topLevel, smallRoot uint64 // the details tree's root leaf, the top-level mapping tree's, device 2's root
}

func newCorruptImage(t *testing.T, extra func(w *imageWriter) []device) corruptImage {
	w := newImageWriter(t)
	root := w.mappingTree(strided(0, 2000, 1, 0), 10)
	small := w.mappingTree(map[uint64]uint64{1: 1, 5: 2}, 100)
	devs := []device{{1, root}, {2, small}}
	if extra != nil {
		devs = append(devs, extra(w)...)
	}
	w.finish(superblock{devices: devs}, 0)
	ci := corruptImage{root: root, smallRoot: small}
	// Down the first children to the parent of the first leaf.
	for ci.internal = root; !w.read(leU64(w.read(ci.internal).values[0])).leaf; {
		ci.internal = leU64(w.read(ci.internal).values[0])
	}
	ci.leaf = leU64(w.read(ci.internal).values[0])
	ci.leaf2 = leU64(w.read(ci.internal).values[1])
	sb := w.blocks[0]
	ci.topLevel, ci.details = binary.LittleEndian.Uint64(sb[320:]), binary.LittleEndian.Uint64(sb[328:])
	ci.img = w.bytes()
	return ci
}

func (ci corruptImage) block(b uint64) []byte { return ci.img[b*blockSize : (b+1)*blockSize] }

// put writes v at off in block b and seals the block again with a valid
// checksum, so that a check past the checksum must find the damage.
func (ci corruptImage) put(b uint64, off int, v any, salt uint32) {
	d := ci.block(b)
	switch v := v.(type) {
	case uint32:
		binary.LittleEndian.PutUint32(d[off:], v)
	case uint64:
		binary.LittleEndian.PutUint64(d[off:], v)
	}
	binary.LittleEndian.PutUint32(d, blockChecksum(d, salt))
}

func (ci corruptImage) putNode(b uint64, off int, v any) { ci.put(b, off, v, nodeCsumXor) }

// walkAll reads everything the metadata has: every device, its mappings,
// and the delta of devices 1 and 2.
func walkAll(r *thinmeta.Reader, block uint64) error {
	ctx := context.Background()
	tr, err := r.Snapshot(block)
	if err != nil {
		return err
	}
	devs, err := tr.Devices(ctx)
	if err != nil {
		return err
	}
	for _, d := range devs {
		if _, err := tr.DeviceDetails(ctx, d.ID); err != nil {
			return err
		}
		if err := tr.Mappings(ctx, d.ID, 0, func(thinmeta.Extent) error { return nil }); err != nil {
			return err
		}
	}
	return tr.Delta(ctx, 1, 2, 0, func(thinmeta.Extent) error { return nil })
}

func TestCorruptMetadata(t *testing.T) {
	const leafKeys, nodeNr, nodeMax, nodeVS = 32, 16, 20, 24
	tests := []struct {
		name      string
		extra     func(w *imageWriter) []device // more devices to lay out
		damage    func(ci corruptImage)
		snapshot  uint64 // the superblock to read
		wantBlock func(ci corruptImage) uint64
		wantErr   string
	}{
		{name: "node checksum", damage: func(ci corruptImage) { ci.block(ci.leaf)[100] ^= 1 },
			wantBlock: leafBlock, wantErr: "btree node checksum"},
		{name: "node checksum, read ahead", damage: func(ci corruptImage) { ci.block(ci.leaf2)[100] ^= 1 },
			wantBlock: func(ci corruptImage) uint64 { return ci.leaf2 }, wantErr: "btree node checksum"},
		{name: "node block number", damage: func(ci corruptImage) { ci.putNode(ci.leaf, 8, ci.leaf2) },
			wantBlock: leafBlock, wantErr: "says it is block"},
		{name: "superblock where a node should be", damage: func(ci corruptImage) {
			copy(ci.block(ci.leaf), ci.block(0))
			ci.put(ci.leaf, 8, ci.leaf, superblockCsumXor)
		}, wantBlock: leafBlock, wantErr: "is a superblock"},
		{name: "unknown node flags", damage: func(ci corruptImage) { ci.putNode(ci.leaf, 4, uint32(3)) },
			wantBlock: leafBlock, wantErr: "flags"},
		{name: "more entries than room", damage: func(ci corruptImage) { ci.putNode(ci.leaf, nodeNr, uint32(253)) },
			wantBlock: leafBlock, wantErr: "room for 252"},
		{name: "room past the block", damage: func(ci corruptImage) { ci.putNode(ci.leaf, nodeMax, uint32(300)) },
			wantBlock: leafBlock, wantErr: "does not fit"},
		{name: "huge value size", damage: func(ci corruptImage) { ci.putNode(ci.leaf, nodeVS, uint32(1<<31)) },
			wantBlock: leafBlock, wantErr: "does not fit"},
		{name: "zero value size", damage: func(ci corruptImage) { ci.putNode(ci.leaf, nodeVS, uint32(0)) },
			wantBlock: leafBlock, wantErr: "does not fit"},
		{name: "leaf value size", damage: func(ci corruptImage) { ci.putNode(ci.leaf, nodeVS, uint32(4)) },
			wantBlock: leafBlock, wantErr: "leaf btree node has 4-byte values, want 8"},
		{name: "internal value size", damage: func(ci corruptImage) { ci.putNode(ci.internal, nodeVS, uint32(4)) },
			wantBlock: internalBlock, wantErr: "internal btree node has 4-byte values"},
		{name: "details value size", damage: func(ci corruptImage) { ci.putNode(ci.details, nodeVS, uint32(8)) },
			wantBlock: func(ci corruptImage) uint64 { return ci.details }, wantErr: "want 24"},
		{name: "keys out of order", damage: func(ci corruptImage) { ci.putNode(ci.leaf, leafKeys+8*5, uint64(2)) },
			wantBlock: leafBlock, wantErr: "in order"},
		{name: "repeated key", damage: func(ci corruptImage) { ci.putNode(ci.leaf, leafKeys+8*5, uint64(4)) },
			wantBlock: leafBlock, wantErr: "in order"},
		{name: "key past the parent's range", damage: func(ci corruptImage) { ci.putNode(ci.leaf, leafKeys+8*9, uint64(10)) },
			wantBlock: leafBlock, wantErr: "outside 0 to 9"},
		{name: "key before the parent's range", damage: func(ci corruptImage) { ci.putNode(ci.leaf2, leafKeys, uint64(9)) },
			wantBlock: func(ci corruptImage) uint64 { return ci.leaf2 }, wantErr: "outside 10 to 19"},
		{name: "empty internal node", damage: func(ci corruptImage) { ci.putNode(ci.internal, nodeNr, uint32(0)) },
			wantBlock: internalBlock, wantErr: "no entries"},
		{name: "empty leaf under a root", damage: func(ci corruptImage) { ci.putNode(ci.leaf, nodeNr, uint32(0)) },
			wantBlock: leafBlock, wantErr: "no entries"},
		{name: "child past the metadata", damage: func(ci corruptImage) { ci.putNode(ci.internal, leafKeys+8*252, uint64(1<<40)) },
			wantBlock: func(ci corruptImage) uint64 { return 1 << 40 }, wantErr: "outside the"},
		{name: "child is the superblock", damage: func(ci corruptImage) { ci.putNode(ci.internal, leafKeys+8*252, uint64(0)) },
			wantBlock: func(ci corruptImage) uint64 { return 0 }, wantErr: "block 0 is the superblock"},
		{name: "child of another tree", damage: func(ci corruptImage) { ci.putNode(ci.internal, leafKeys+8*252, ci.details) },
			wantBlock: func(ci corruptImage) uint64 { return ci.details }, wantErr: "24-byte values, want 8"},
		{name: "cycle", extra: func(w *imageWriter) []device {
			// A node whose one child is itself.
			b := uint64(len(w.blocks))
			w.blocks = append(w.blocks, encodeNode(wnode{valueSize: 8, keys: []uint64{0}, values: [][]byte{le64Value(b)}}, b))
			return []device{{3, b}}
		}, wantBlock: nil, wantErr: "deeper than 16 levels"},
		{name: "leaves at two depths", extra: func(w *imageWriter) []device {
			leaf := w.write(wnode{leaf: true, valueSize: 8, keys: []uint64{1}, values: [][]byte{mappingValue(1, 0)}})
			leaf2 := w.write(wnode{leaf: true, valueSize: 8, keys: []uint64{10}, values: [][]byte{mappingValue(2, 0)}})
			mid := w.write(wnode{valueSize: 8, keys: []uint64{10}, values: [][]byte{le64Value(leaf2)}})
			return []device{{3, w.write(wnode{valueSize: 8, keys: []uint64{0, 10}, values: [][]byte{le64Value(leaf), le64Value(mid)}})}}
		}, wantBlock: nil, wantErr: "depth"},
		{name: "device id past 32 bits", extra: func(w *imageWriter) []device { return []device{{3, w.mappingTree(nil, 10)}} },
			damage:    func(ci corruptImage) { ci.putNode(ci.details, leafKeys+8*2, uint64(1<<33)) },
			wantBlock: func(ci corruptImage) uint64 { return ci.details }, wantErr: "not a thin device id"},

		{name: "superblock checksum", damage: func(ci corruptImage) { ci.block(0)[400] ^= 1 },
			wantBlock: zeroBlock, wantErr: "superblock checksum"},
		{name: "superblock magic", damage: func(ci corruptImage) { ci.put(0, 32, uint64(1), superblockCsumXor) },
			wantBlock: zeroBlock, wantErr: "not a thin-pool superblock"},
		{name: "superblock block number", damage: func(ci corruptImage) { ci.put(0, 8, uint64(5), superblockCsumXor) },
			wantBlock: zeroBlock, wantErr: "says it is block 5"},
		{name: "superblock version", damage: func(ci corruptImage) { ci.put(0, 40, uint32(3), superblockCsumXor) },
			wantBlock: zeroBlock, wantErr: "version 3"},
		{name: "incompatible features", damage: func(ci corruptImage) { ci.put(0, 360, uint32(1), superblockCsumXor) },
			wantBlock: zeroBlock, wantErr: "incompatible features"},
		{name: "data block size", damage: func(ci corruptImage) { ci.put(0, 336, uint32(100), superblockCsumXor) },
			wantBlock: zeroBlock, wantErr: "data block size 100"},
		{name: "metadata block size", damage: func(ci corruptImage) { ci.put(0, 340, uint32(16), superblockCsumXor) },
			wantBlock: zeroBlock, wantErr: "metadata block size 16"},
		{name: "mapping root past the metadata", damage: func(ci corruptImage) { ci.put(0, 320, uint64(1<<30), superblockCsumXor) },
			wantBlock: zeroBlock, wantErr: "past the"},
		{name: "no details root", damage: func(ci corruptImage) { ci.put(0, 328, uint64(0), superblockCsumXor) },
			wantBlock: zeroBlock, wantErr: "no device details root"},
		{name: "snapshot past the metadata", snapshot: 1 << 30,
			wantBlock: func(ci corruptImage) uint64 { return 1 << 30 }, wantErr: "past the"},
		{name: "snapshot at a node", snapshot: 1,
			wantBlock: func(ci corruptImage) uint64 { return 1 }, wantErr: "not a thin-pool superblock"},
	}
	if err := walkAll(thinmeta.NewReaderAt("good", bytes.NewReader(newCorruptImage(t, nil).img)), 0); err != nil {
		t.Fatalf("the undamaged metadata: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ci := newCorruptImage(t, tt.extra)
			if tt.damage != nil {
				tt.damage(ci)
			}
			err := walkAll(thinmeta.NewReaderAt("damaged", bytes.NewReader(ci.img)), tt.snapshot)
			var ce *thinmeta.CorruptError
			if !errors.Is(err, thinmeta.ErrCorrupt) || !errors.As(err, &ce) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %q, want it to say %q", err, tt.wantErr)
			}
			if tt.wantBlock != nil && ce.Block != tt.wantBlock(ci) {
				t.Fatalf("got %q about block %d, want block %d", err, ce.Block, tt.wantBlock(ci))
			}
		})
	}
}

func leafBlock(ci corruptImage) uint64     { return ci.leaf }
func internalBlock(ci corruptImage) uint64 { return ci.internal }
func zeroBlock(corruptImage) uint64        { return 0 }

// Metadata shorter than its superblock says: the block past the end is
// named.
func TestTruncatedMetadata(t *testing.T) {
	ci := newCorruptImage(t, nil)
	end := uint64(len(ci.img) / blockSize)
	ci.put(0, 192, end+100, superblockCsumXor) // the metadata space map's size
	ci.putNode(ci.internal, 32+8*252, end+5)   // the first leaf's block
	err := walkAll(thinmeta.NewReaderAt("short", bytes.NewReader(ci.img)), 0)
	var ce *thinmeta.CorruptError
	if !errors.As(err, &ce) || ce.Block != end+5 || !strings.Contains(err.Error(), "past the end of short") {
		t.Fatalf("got %v, want block %d past the end", err, end+5)
	}
}
