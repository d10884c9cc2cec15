package thinmeta

import "fmt"

// Superblock is a thin-pool superblock (struct thin_disk_superblock): the
// live one in block 0, or the copy a metadata snapshot holds.
type Superblock struct {
	Block         uint64   // the block it was read from
	Flags         uint32   // see NeedsCheck
	UUID          [16]byte // unused by the kernel: zero
	Version       uint32   // format version, 1 or 2
	Time          uint32   // the pool's snapshot counter
	TransactionID uint64   // userspace's transaction id (set_transaction_id)

	// HeldRoot is the block of the metadata snapshot's superblock copy,
	// 0 when none is held. Always 0 in the copy itself.
	HeldRoot uint64

	DataMappingRoot   uint64 // root of the two-level tree: thin id -> virtual block -> data block
	DeviceDetailsRoot uint64 // root of the tree: thin id -> DeviceDetails

	DataBlockSize     uint32 // pool data block size in 512-byte sectors
	MetadataBlockSize uint32 // metadata block size in 512-byte sectors: 8
	// MetadataNrBlocks is the size of the metadata device in blocks when
	// the pool was formatted; the kernel does not change it when the
	// metadata device grows (see MetadataSpaceMapBlocks).
	MetadataNrBlocks uint64

	// MetadataSpaceMapBlocks is how many metadata blocks the metadata
	// space map manages: the metadata device's size as the pool last
	// committed it, grown ones included. 0 in a snapshot's copy, whose
	// space map roots the kernel wipes.
	MetadataSpaceMapBlocks uint64
	// DataSpaceMapBlocks is likewise the pool's size in data blocks.
	DataSpaceMapBlocks uint64

	CompatFlags, CompatROFlags, IncompatFlags uint32
}

// NeedsCheck reports the superblock's needs_check flag: the kernel found
// the metadata damaged and wants thin_check run on it.
func (s Superblock) NeedsCheck() bool { return s.Flags&flagNeedsCheck != 0 }

// DataBlockBytes is the pool's data block size in bytes.
func (s Superblock) DataBlockBytes() uint64 { return uint64(s.DataBlockSize) * sectorSize }

// parseSuperblock checks and decodes the superblock in data, read from
// block.
func parseSuperblock(data []byte, block uint64) (Superblock, error) {
	if len(data) != BlockSize {
		return Superblock{}, corruptf(block, "superblock is %d bytes, want %d", len(data), BlockSize)
	}
	if m := le64(data, sbMagic); m != superblockMagic {
		return Superblock{}, corruptf(block, "magic %d, want %d: not a thin-pool superblock", m, superblockMagic)
	}
	if got, want := le32(data, 0), checksum(data, superblockCsumXor); got != want {
		return Superblock{}, corruptf(block, "superblock checksum %#08x, want %#08x", got, want)
	}
	if b := le64(data, sbBlocknr); b != block {
		return Superblock{}, corruptf(block, "superblock says it is block %d", b)
	}
	s := Superblock{
		Block:                  block,
		Flags:                  le32(data, sbFlags),
		Version:                le32(data, sbVersion),
		Time:                   le32(data, sbTime),
		TransactionID:          le64(data, sbTransID),
		HeldRoot:               le64(data, sbHeldRoot),
		DataMappingRoot:        le64(data, sbDataMappingRoot),
		DeviceDetailsRoot:      le64(data, sbDeviceDetailsRoot),
		DataBlockSize:          le32(data, sbDataBlockSize),
		MetadataBlockSize:      le32(data, sbMetadataBlockSize),
		MetadataNrBlocks:       le64(data, sbMetadataNrBlocks),
		MetadataSpaceMapBlocks: le64(data, sbMetadataSpaceMap),
		DataSpaceMapBlocks:     le64(data, sbDataSpaceMap),
		CompatFlags:            le32(data, sbCompatFlags),
		CompatROFlags:          le32(data, sbCompatROFlags),
		IncompatFlags:          le32(data, sbIncompatFlags),
	}
	copy(s.UUID[:], data[sbUUID:sbUUID+16])
	if err := s.check(); err != nil {
		return Superblock{}, err
	}
	return s, nil
}

// Data block sizes the kernel allows, in sectors (drivers/md/dm-thin.c).
const (
	minDataBlockSize = 128
	maxDataBlockSize = 2097152
)

func (s Superblock) check() error {
	bad := func(format string, args ...any) error { return corruptf(s.Block, format, args...) }
	switch {
	case s.Version < 1 || s.Version > 2:
		return bad("superblock version %d, want 1 or 2", s.Version)
	case s.IncompatFlags != 0:
		return bad("superblock has incompatible features %#x this reader does not know", s.IncompatFlags)
	case s.MetadataBlockSize != BlockSize/sectorSize:
		return bad("metadata block size %d sectors, want %d", s.MetadataBlockSize, BlockSize/sectorSize)
	case s.DataBlockSize < minDataBlockSize || s.DataBlockSize > maxDataBlockSize || s.DataBlockSize%minDataBlockSize != 0:
		return bad("data block size %d sectors, want a multiple of %d from %d to %d", s.DataBlockSize,
			minDataBlockSize, minDataBlockSize, maxDataBlockSize)
	case s.DataMappingRoot == 0:
		return bad("superblock has no data mapping root")
	case s.DeviceDetailsRoot == 0:
		return bad("superblock has no device details root")
	case s.HeldRoot != 0 && s.HeldRoot == s.Block:
		return bad("superblock holds itself as its metadata snapshot")
	}
	return nil
}

// blockLimit is the number of metadata blocks a tree of s may use: the
// metadata space map's size, which follows the device as it grows, and
// MetadataNrBlocks where the space map root is wiped (a snapshot's copy).
func (s Superblock) blockLimit() uint64 {
	return max(s.MetadataSpaceMapBlocks, s.MetadataNrBlocks)
}

func (s Superblock) String() string {
	return fmt.Sprintf("superblock at %d: transaction %d, time %d, held root %d, data block %d sectors",
		s.Block, s.TransactionID, s.Time, s.HeldRoot, s.DataBlockSize)
}
