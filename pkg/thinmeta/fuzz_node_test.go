package thinmeta

import (
	"encoding/binary"
	"testing"
)

// seal makes data a block of kind salt at block b that passes the
// checksum and block number checks, so that fuzzing reaches the others.
func seal(data []byte, b uint64, blocknrOff int, salt uint32) []byte {
	d := make([]byte, BlockSize)
	copy(d, data)
	binary.LittleEndian.PutUint64(d[blocknrOff:], b)
	binary.LittleEndian.PutUint32(d, checksum(d, salt))
	return d
}

func nodeSeed(leaf bool, valueSize int, keys ...uint64) []byte {
	d := make([]byte, BlockSize)
	flags := uint32(nodeFlagInternal)
	if leaf {
		flags = nodeFlagLeaf
	}
	room := (BlockSize - nodeHeaderSize) / (8 + valueSize) / 3 * 3
	binary.LittleEndian.PutUint32(d[nodeFlags:], flags)
	binary.LittleEndian.PutUint32(d[nodeNrEntries:], uint32(len(keys)))
	binary.LittleEndian.PutUint32(d[nodeMaxEntries:], uint32(room))
	binary.LittleEndian.PutUint32(d[nodeValueSize:], uint32(valueSize))
	for i, k := range keys {
		binary.LittleEndian.PutUint64(d[nodeHeaderSize+8*i:], k)
		binary.LittleEndian.PutUint64(d[nodeHeaderSize+8*room+valueSize*i:], k*7)
	}
	return d[:nodeHeaderSize+8*room+valueSize*len(keys)]
}

// Any block that passes the checksum: parseNode and checkNode never panic,
// and what they accept can be read wherever the walks read it.
func FuzzNode(f *testing.F) {
	f.Add(nodeSeed(true, 8, 1, 2, 3), uint64(0), uint64(100))
	f.Add(nodeSeed(false, 8, 0, 100, 200), uint64(0), uint64(1<<40))
	f.Add(nodeSeed(true, 24, 5), uint64(5), uint64(5))
	f.Add(nodeSeed(true, 8), uint64(0), ^uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, lo, hi uint64) {
		const at = 7
		n, err := parseNode(seal(data, at, nodeBlocknr, nodeCsumXor), at)
		if err != nil {
			return
		}
		if n.n > n.max || nodeHeaderSize+(8+n.valueSize)*n.max > BlockSize {
			t.Fatalf("accepted a node of %d entries, room for %d of %d bytes", n.n, n.max, n.valueSize)
		}
		for i := 1; i < n.n; i++ {
			if n.key(i) <= n.key(i-1) {
				t.Fatalf("accepted keys out of order")
			}
		}
		for _, k := range []uint64{0, lo, hi, ^uint64(0)} {
			if i := n.search(k); i < -1 || i >= n.n || (i >= 0 && n.key(i) > k) {
				t.Fatalf("search(%d) = %d", k, i)
			}
			if i := n.first(k); i < 0 || i > n.n {
				t.Fatalf("first(%d) = %d", k, i)
			}
		}
		kr := keyRange{lo, hi}
		for _, vs := range []int{le64Size, deviceDetailsSize, n.valueSize} {
			if n.checkNode(kr, vs, true) != nil {
				continue
			}
			for i := range n.n {
				_ = n.value(i)
				if !n.leaf || vs == le64Size {
					_ = n.value64(i)
				}
				if !n.leaf {
					if c := n.childRange(i, kr); c.lo > c.hi {
						t.Fatalf("child %d has the empty range %v", i, c)
					}
				}
			}
		}
	})
}

// Any block that passes the checksum: parseSuperblock never panics, and
// what it accepts passes its own checks.
func FuzzSuperblock(f *testing.F) {
	good := make([]byte, 400)
	binary.LittleEndian.PutUint64(good[sbMagic:], superblockMagic)
	binary.LittleEndian.PutUint32(good[sbVersion:], 2)
	binary.LittleEndian.PutUint64(good[sbDataMappingRoot:], 3)
	binary.LittleEndian.PutUint64(good[sbDeviceDetailsRoot:], 4)
	binary.LittleEndian.PutUint32(good[sbDataBlockSize:], 128)
	binary.LittleEndian.PutUint32(good[sbMetadataBlockSize:], 8)
	binary.LittleEndian.PutUint64(good[sbMetadataNrBlocks:], 1000)
	f.Add(good, uint64(0))
	f.Add(good, uint64(12))
	f.Fuzz(func(t *testing.T, data []byte, at uint64) {
		sb, err := parseSuperblock(seal(data, at, sbBlocknr, superblockCsumXor), at)
		if err != nil {
			return
		}
		if sb.Block != at || sb.check() != nil || sb.DataBlockBytes() == 0 {
			t.Fatalf("accepted %+v", sb)
		}
	})
}
