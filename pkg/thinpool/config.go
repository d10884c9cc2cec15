package thinpool

import (
	"fmt"
	"path/filepath"
	"time"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// Defaults of Config.
const (
	DefaultPoolName               = "csi-thin"
	DefaultBlockSizeBytes         = 64 << 10
	DefaultOverprovisionRatio     = 10.0
	DefaultDataReservePercent     = 5.0
	DefaultMetadataReservePercent = 10.0
	DefaultGrowPercent            = 20.0
	DefaultFSReservePercent       = 10.0
	DefaultGroupSnapshotTimeout   = 10 * time.Second
)

// Config describes a node's pool.
type Config struct {
	// StateDir holds the state database and, for a loopback pool, its
	// backing files.
	StateDir string
	// PoolName is the dm name of the pool; volumes are named after it.
	PoolName string
	// DataDevice and MetadataDevice are block devices for the pool. Both
	// empty: a loopback pool on sparse files in StateDir.
	DataDevice, MetadataDevice string
	// PoolSizeBytes is the size of a loopback pool's data file. A larger
	// size on a later start grows the pool; a smaller one is ignored.
	PoolSizeBytes uint64
	// BlockSizeBytes is the pool's data block size: the unit of allocation
	// and of copy-on-write after a snapshot. 64 KiB to 1 GiB in 64 KiB
	// steps; fixed when the pool is created.
	BlockSizeBytes uint64
	// OverprovisionRatio bounds the sum of all volume and snapshot sizes
	// to this many times the pool's data size.
	OverprovisionRatio float64
	// Creates are refused while free data or metadata space is below these
	// percentages of the pool, keeping room for writes to existing volumes.
	DataReservePercent, MetadataReservePercent float64
	// MaxSizeBytes turns on auto-grow of a loopback pool: when its free
	// data falls below the low water mark, or its free metadata below the
	// kernel's metadata low watermark, the files grow by a step and the
	// pool is reloaded, until the data reaches this size. 0: the pool grows
	// only when asked (a larger PoolSizeBytes, Grow).
	MaxSizeBytes uint64
	// GrowPercent is the auto-grow step, a percentage of the pool's data
	// size (LVM's thin_pool_autoextend_percent). The low water mark is one
	// step of free data.
	GrowPercent float64
	// FSReservePercent is the part of the file system under StateDir that
	// auto-grow leaves free: it stops where the pool's files, once filled,
	// would leave less.
	FSReservePercent float64
	// ErrorIfNoSpace makes writes fail at once when the pool is full,
	// instead of queueing until it grows.
	ErrorIfNoSpace bool
	// GroupSnapshotTimeout bounds a group snapshot's window, from the
	// first member's freeze: past it the group is undone and every member
	// resumed and thawed, so that a slow flush or a busy pool stalls the
	// members' applications for no longer.
	GroupSnapshotTimeout time.Duration
	// ThinCheck is the thin_check binary run on existing metadata before
	// the pool is activated; empty looks it up in PATH, "none" skips it.
	ThinCheck string
}

func (c *Config) loop() bool { return c.DataDevice == "" && c.MetadataDevice == "" }

func (c *Config) dbPath() string       { return filepath.Join(c.StateDir, "csi-thin.db") }
func (c *Config) dataFile() string     { return filepath.Join(c.StateDir, "pool-data.img") }
func (c *Config) metadataFile() string { return filepath.Join(c.StateDir, "pool-metadata.img") }

// withDefaults fills unset fields and checks the rest, with messages that
// say which setting is wrong and what it may be.
func (c Config) withDefaults() (Config, error) {
	if c.PoolName == "" {
		c.PoolName = DefaultPoolName
	}
	if c.BlockSizeBytes == 0 {
		c.BlockSizeBytes = DefaultBlockSizeBytes
	}
	if c.OverprovisionRatio == 0 {
		c.OverprovisionRatio = DefaultOverprovisionRatio
	}
	if c.DataReservePercent == 0 {
		c.DataReservePercent = DefaultDataReservePercent
	}
	if c.MetadataReservePercent == 0 {
		c.MetadataReservePercent = DefaultMetadataReservePercent
	}
	if c.GrowPercent == 0 {
		c.GrowPercent = DefaultGrowPercent
	}
	if c.FSReservePercent == 0 {
		c.FSReservePercent = DefaultFSReservePercent
	}
	if c.GroupSnapshotTimeout == 0 {
		c.GroupSnapshotTimeout = DefaultGroupSnapshotTimeout
	}
	switch {
	case c.StateDir == "" || !filepath.IsAbs(c.StateDir):
		return c, invalidf("state directory %q must be an absolute path", c.StateDir)
	case len(c.PoolName)+len("-vol-")+24 > dm.MaxNameLen:
		return c, invalidf("pool name %q is too long: volumes are named after it and dm names hold %d bytes", c.PoolName, dm.MaxNameLen)
	case (c.DataDevice == "") != (c.MetadataDevice == ""):
		return c, invalidf("give both a data device and a metadata device, or neither for a loopback pool in the state directory")
	case c.loop() && c.PoolSizeBytes < 64<<20:
		return c, invalidf("pool size %d bytes is too small: a loopback pool needs at least 64 MiB", c.PoolSizeBytes)
	case c.BlockSizeBytes%(dm.MinDataBlockSize*sectorSize) != 0 ||
		c.BlockSizeBytes < dm.MinDataBlockSize*sectorSize || c.BlockSizeBytes > dm.MaxDataBlockSize*sectorSize:
		return c, invalidf("block size %d bytes: use a multiple of 64 KiB from 64 KiB to 1 GiB", c.BlockSizeBytes)
	case c.OverprovisionRatio < 1:
		return c, invalidf("overprovision ratio %g is below 1", c.OverprovisionRatio)
	case c.DataReservePercent < 0 || c.DataReservePercent >= 100 || c.MetadataReservePercent < 0 || c.MetadataReservePercent >= 100:
		return c, invalidf("reserves must be percentages from 0 to below 100 (data %g, metadata %g)", c.DataReservePercent, c.MetadataReservePercent)
	case c.MaxSizeBytes != 0 && !c.loop():
		return c, invalidf("a maximum pool size applies to loopback pools only: a pool on block devices takes its data device's size, so grow that device instead")
	case c.MaxSizeBytes != 0 && c.MaxSizeBytes < c.PoolSizeBytes:
		return c, invalidf("maximum pool size %d bytes is below the pool size %d bytes: raise it, or leave it 0 to turn auto-grow off", c.MaxSizeBytes, c.PoolSizeBytes)
	case c.GrowPercent < 1 || c.GrowPercent > 100:
		return c, invalidf("grow step %g%% is out of range: use 1 to 100 percent of the pool's size", c.GrowPercent)
	case c.GroupSnapshotTimeout < 0:
		return c, invalidf("group snapshot timeout %v is negative: give how long a group's members may stay frozen, or 0 for %v", c.GroupSnapshotTimeout, DefaultGroupSnapshotTimeout)
	case c.FSReservePercent <= 0 || c.FSReservePercent >= 100:
		return c, invalidf("file system reserve %g%% is out of range: use more than 0 and less than 100 percent", c.FSReservePercent)
	}
	for _, r := range c.PoolName {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return c, invalidf("pool name %q may hold only a-z, 0-9 and '-'", c.PoolName)
		}
	}
	return c, nil
}

// Kernel limits on thin-pool metadata: 4 KiB blocks, at most
// THIN_METADATA_MAX_SECTORS (255 × 2^14 blocks, just under 16 GiB).
const (
	metadataBlockBytes = 4096
	minMetadataBytes   = 2 << 20
	maxMetadataBytes   = 255 * (1 << 14) * metadataBlockBytes

	// thinDeviceRoom is how many volumes and snapshots a loopback pool's
	// metadata has room for beyond its data mappings, however small the
	// pool.
	thinDeviceRoom = 16384
)

// metadataSize is the metadata a loopback pool of dataBytes in blocks of
// blockBytes wants: the kernel's rule of about 48 bytes a block, doubled
// for the mappings snapshots share and split, plus 4 MiB, plus room for
// thinDeviceRoom thin devices at 8 KiB each, twice what an empty volume's
// own metadata measured (2,000 volumes added about 8 MiB), within the
// kernel's limits, in whole MiB. The file is sparse: the room costs
// nothing until volumes use it.
func metadataSize(dataBytes, blockBytes uint64) uint64 {
	n := 2*48*(dataBytes/blockBytes) + 4<<20 + thinDeviceRoom*2*metadataBlockBytes
	n = (n + 1<<20 - 1) &^ (1<<20 - 1)
	return min(max(n, minMetadataBytes), maxMetadataBytes)
}

// growStep is the auto-grow step of a pool of dataBytes: GrowPercent of
// it, in whole blocks, at least one.
func (c *Config) growStep(dataBytes uint64) uint64 {
	step := uint64(float64(dataBytes) * c.GrowPercent / 100)
	step = (step + c.BlockSizeBytes - 1) / c.BlockSizeBytes * c.BlockSizeBytes
	return max(step, c.BlockSizeBytes)
}

// lowWaterFloorBytes is the least free data that raises the low water
// event, for pools small enough that one grow step is less: what writers
// at several hundred MiB/s fill while a grow takes its tenths of a second.
const lowWaterFloorBytes = 256 << 20

// lowWaterBlocks is the pool table's low water mark for a pool of
// dataBytes: the kernel raises an event once fewer blocks are free. It is
// one grow step or lowWaterFloorBytes, whichever is more, and at most
// half the pool. Loopback pools without a maximum size do not grow by
// themselves and have none; a pool on block devices has one so that the
// event finds its data device grown.
func (c *Config) lowWaterBlocks(loop bool, dataBytes uint64) uint64 {
	if loop && c.MaxSizeBytes == 0 {
		return 0
	}
	blocks := dataBytes / c.BlockSizeBytes
	return min(max(c.growStep(dataBytes), lowWaterFloorBytes)/c.BlockSizeBytes, blocks/2)
}

func (c *Config) String() string {
	if c.loop() {
		return fmt.Sprintf("loopback pool %s of %d bytes in %s", c.PoolName, c.PoolSizeBytes, c.StateDir)
	}
	return fmt.Sprintf("pool %s on %s (metadata %s)", c.PoolName, c.DataDevice, c.MetadataDevice)
}

// Validate checks the configuration as Open would, without opening
// anything.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}
