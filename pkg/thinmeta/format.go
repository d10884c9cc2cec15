package thinmeta

import (
	"encoding/binary"
	"hash/crc32"
)

// The on-disk format, from drivers/md/dm-thin-metadata.c and
// drivers/md/persistent-data/ in the kernel.
const (
	// BlockSize is the size of a metadata block in bytes.
	BlockSize = 4096

	superblockMagic = 27022010
	// Checksum salts: a block's checksum is crc32c over all of it but the
	// checksum field, xor'd with the salt of its kind.
	superblockCsumXor = 160774
	nodeCsumXor       = 121107

	// Superblock field offsets.
	sbFlags             = 4
	sbBlocknr           = 8
	sbUUID              = 16
	sbMagic             = 32
	sbVersion           = 40
	sbTime              = 44
	sbTransID           = 48
	sbHeldRoot          = 56
	sbDataSpaceMap      = 64  // struct disk_sm_root, 128 bytes reserved
	sbMetadataSpaceMap  = 192 // likewise
	sbDataMappingRoot   = 320
	sbDeviceDetailsRoot = 328
	sbDataBlockSize     = 336
	sbMetadataBlockSize = 340
	sbMetadataNrBlocks  = 344
	sbCompatFlags       = 352
	sbCompatROFlags     = 356
	sbIncompatFlags     = 360

	// Btree node header: csum, flags, blocknr, nr_entries, max_entries,
	// value_size, padding; then max_entries keys, then max_entries values.
	nodeHeaderSize   = 32
	nodeFlags        = 4
	nodeBlocknr      = 8
	nodeNrEntries    = 16
	nodeMaxEntries   = 20
	nodeValueSize    = 24
	nodeFlagInternal = 1
	nodeFlagLeaf     = 2

	// Value sizes: internal nodes and the mapping trees hold __le64s, the
	// device details tree struct disk_device_details.
	le64Size          = 8
	deviceDetailsSize = 24

	// A mapping value is the data block in the top 40 bits and the time
	// it was written in the low 24.
	blockTimeShift = 24

	// maxDepth bounds a walk from a root to a leaf. A 4 KiB node holds up
	// to 252 entries and the kernel keeps non-root nodes a third full, so
	// even 2^64 keys need fewer levels; a deeper path is a cycle.
	maxDepth = 16

	sectorSize = 512
)

// Superblock flags.
const flagNeedsCheck = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum is dm_bm_checksum over a metadata block: crc32c seeded with
// ~0 and not inverted at the end (the kernel's crc32c() leaves that to
// its callers), over all but the first four bytes, xor'd with salt.
func checksum(block []byte, salt uint32) uint32 {
	return crc32.Checksum(block[4:], castagnoli) ^ 0xffffffff ^ salt
}

func le32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
func le64(b []byte, off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }
