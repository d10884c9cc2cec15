package thinmeta_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/csi-thin/csi-thin/pkg/thinmeta"
)

// fuzzBlocks is the most blocks a fuzzed image has.
const fuzzBlocks = 16

// fuzzImage lays out metadata from a compact description, so that the
// fuzzer mutates trees rather than 4 KiB blocks (FuzzNode mutates those):
// two bytes for the superblock's roots, then for each block a header of
// four bytes (kind, entries, value size, room) and its entries, a key
// step and a value byte each (a block number, or with the top bit set a
// data block). Every block gets a valid checksum and block
// number, the superblock valid fields: what is left to get wrong is the
// trees.
func fuzzImage(desc []byte) []byte {
	next := func() byte {
		if len(desc) == 0 {
			return 0
		}
		b := desc[0]
		desc = desc[1:]
		return b
	}
	le := binary.LittleEndian
	img := make([]byte, blockSize, fuzzBlocks*blockSize)
	mappingRoot, detailsRoot := uint64(next()%fuzzBlocks), uint64(next()%fuzzBlocks)
	for b := uint64(1); b < fuzzBlocks && len(desc) > 0; b++ {
		d := make([]byte, blockSize)
		kind, nr, vsSel, roomSel := next(), int(next()%40), next(), next()
		flags := map[byte]uint32{0: internalFlag, 1: leafFlag}[kind%3]
		if kind%3 == 2 {
			flags = uint32(kind)
		}
		vs := map[byte]int{0: 8, 1: 24}[vsSel%3]
		if vsSel%3 == 2 {
			vs = int(vsSel / 3)
		}
		room := maxEntries(max(vs, 1))
		if roomSel >= 128 {
			room = int(roomSel)
		}
		le.PutUint32(d[4:], flags)
		le.PutUint64(d[8:], b)
		le.PutUint32(d[16:], uint32(nr))
		le.PutUint32(d[20:], uint32(room))
		le.PutUint32(d[24:], uint32(vs))
		key := uint64(0)
		for i := 0; i < nr && i < room && 32+8*room+vs*(i+1) <= blockSize; i++ {
			key += uint64(next())
			le.PutUint64(d[32+8*i:], key)
			v := d[32+8*room+vs*i:][:vs]
			// A block number (some past the image), or with the top bit a
			// mapping to a data block.
			switch x := next(); {
			case vs < 8:
			case x&0x80 != 0:
				le.PutUint64(v, uint64(x&0x7f)<<24)
			default:
				le.PutUint64(v, uint64(x%(fuzzBlocks+2)))
			}
		}
		le.PutUint32(d, blockChecksum(d, nodeCsumXor))
		img = append(img, d...)
	}
	n := uint64(len(img) / blockSize)
	sb := img[:blockSize]
	le.PutUint64(sb[32:], 27022010)
	le.PutUint32(sb[40:], 2)
	le.PutUint32(sb[336:], 128)
	le.PutUint32(sb[340:], 8)
	le.PutUint64(sb[344:], n)
	le.PutUint64(sb[192:], n)
	le.PutUint64(sb[320:], mappingRoot)
	le.PutUint64(sb[328:], detailsRoot)
	le.PutUint32(sb, blockChecksum(sb, superblockCsumXor))
	return img
}

// blockSet expands extents into their blocks; false when they are out of
// order, empty, or touch (each must be as long as it can be).
func blockSet(es []thinmeta.Extent) (map[uint64]bool, bool) {
	set := map[uint64]bool{}
	for i, e := range es {
		if e.Len == 0 || e.Len > fuzzBlocks*252 || (i > 0 && es[i-1].End() >= e.Block) {
			return nil, false
		}
		for b := e.Block; b < e.End(); b++ {
			set[b] = true
		}
	}
	return set, true
}

// Any metadata, whatever its trees hold: the walks end without panicking,
// give well-formed extents, and a delta of two devices that can both be
// walked holds the blocks mapped in one only, and no block neither maps.
func FuzzMetadata(f *testing.F) {
	// Device 1: a root (block 1) over two leaves (blocks 2, 3); device 2
	// shares leaf 2 and has a leaf of its own (block 4). Block 5 is the
	// top-level tree, block 6 the details.
	good := []byte{5, 6,
		0, 2, 0, 0, 0, 2, 10, 3, // internal: keys 0, 10 -> blocks 2, 3
		1, 3, 0, 0, 0, 0x81, 1, 0x82, 1, 0x83, // leaf: keys 0, 1, 2
		1, 2, 0, 0, 10, 0x84, 5, 0x85, // leaf: keys 10, 15
		1, 2, 0, 0, 10, 0x86, 1, 0x87, // leaf: keys 10, 11
		1, 2, 0, 0, 1, 1, 1, 7, // top level: devices 1 -> 1, 2 -> 7
		1, 2, 1, 0, 1, 0, 1, 0, // details: devices 1, 2
		0, 2, 0, 0, 0, 2, 10, 4, // internal: keys 0, 10 -> blocks 2, 4
	}
	if err := walkAll(thinmeta.NewReaderAt("seed", bytes.NewReader(fuzzImage(good))), 0); err != nil {
		f.Fatalf("the seed: %v", err)
	}
	f.Add(good, uint64(0))
	f.Add(good, uint64(11))
	f.Add([]byte{1, 1, 1, 0, 0, 0}, uint64(0))
	f.Fuzz(func(t *testing.T, desc []byte, start uint64) {
		r := thinmeta.NewReaderAt("fuzz", bytes.NewReader(fuzzImage(desc)))
		ctx := context.Background()
		tr, err := r.Snapshot(0)
		if err != nil {
			return
		}
		devs, err := tr.Devices(ctx)
		if err != nil {
			return
		}
		devs = devs[:min(len(devs), 4)]
		mapped := map[uint32]map[uint64]bool{}
		for _, d := range devs {
			var es []thinmeta.Extent
			if tr.Mappings(ctx, d.ID, start, func(e thinmeta.Extent) error { es = append(es, e); return nil }) != nil {
				continue
			}
			set, ok := blockSet(es)
			if !ok {
				t.Fatalf("mappings of %d: extents %v", d.ID, es)
			}
			mapped[d.ID] = set
		}
		for _, x := range devs {
			for _, y := range devs {
				var es []thinmeta.Extent
				err := tr.Delta(ctx, x.ID, y.ID, start, func(e thinmeta.Extent) error { es = append(es, e); return nil })
				mx, okx := mapped[x.ID]
				my, oky := mapped[y.ID]
				if !okx || !oky {
					continue
				}
				if err != nil {
					t.Fatalf("delta of %d and %d, which both walk: %v", x.ID, y.ID, err)
				}
				diff, ok := blockSet(es)
				if !ok {
					t.Fatalf("delta of %d and %d: extents %v", x.ID, y.ID, es)
				}
				for b := range diff {
					if !mx[b] && !my[b] {
						t.Fatalf("delta of %d and %d has block %d, which neither maps", x.ID, y.ID, b)
					}
				}
				for b := range mx {
					if !my[b] && !diff[b] {
						t.Fatalf("delta of %d and %d lacks block %d, which only %d maps", x.ID, y.ID, b, x.ID)
					}
				}
				for b := range my {
					if !mx[b] && !diff[b] {
						t.Fatalf("delta of %d and %d lacks block %d, which only %d maps", x.ID, y.ID, b, y.ID)
					}
				}
				if x.ID == y.ID && len(es) != 0 {
					t.Fatalf("delta of %d with itself: %v", x.ID, es)
				}
			}
		}
	})
}
