package thinpool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// backing is how the pool's devices are kept: loop devices over sparse
// files in the state directory, or the administrator's block devices.
type backing struct {
	loop               bool
	dataPath, metaPath string         // the files, or the block devices
	dataLoop, metaLoop *dm.LoopDevice // loopback pools only
	dataDev, metaDev   dm.Dev         // what the pool's table names
	dataBytes          uint64         // size of the data file or device
}

// Open brings up a node's pool and its engine: it creates the pool on the
// first start (sparse files in the state directory unless block devices
// are named), and on later starts re-attaches the files, re-activates the
// pool if it is down, checks it, and recovers the journal. The pool stays
// up when the engine closes.
func Open(cfg Config) (*Engine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	ctl, err := dm.Open()
	if err != nil {
		return nil, err
	}
	e, err := open(ctl, cfg)
	if err != nil {
		ctl.Close()
		return nil, err
	}
	return e, nil
}

func open(ctl *dm.Control, cfg Config) (*Engine, error) {
	s, err := openStore(cfg.dbPath())
	if err != nil {
		return nil, err
	}
	e, err := openPool(ctl, s, cfg)
	if err != nil {
		s.close()
		return nil, err
	}
	e.closer = ctl.Close
	return e, nil
}

func openPool(ctl *dm.Control, s *store, cfg Config) (*Engine, error) {
	b, fresh, err := prepareBacking(cfg)
	if err != nil {
		return nil, err
	}
	if err := checkIdentity(s, &cfg, b, fresh); err != nil {
		return nil, err
	}
	blockSectors := uint32(cfg.BlockSizeBytes / sectorSize)
	table := poolTable(cfg, b, b.dataBytes, b.loop && b.dataBytes < cfg.MaxSizeBytes/cfg.BlockSizeBytes*cfg.BlockSizeBytes)
	info, err := ctl.Info(cfg.PoolName)
	if err != nil {
		return nil, err
	}
	var poolDev dm.Dev
	if info.Exists {
		if err := checkLiveTable(ctl, cfg.PoolName, table); err != nil {
			return nil, err
		}
		poolDev = info.Dev
		klog.InfoS("Adopted the running pool", "pool", cfg.PoolName, "dev", poolDev)
	} else {
		if !fresh {
			// Check the device the kernel will read: thin_check opens it
			// with O_DIRECT, which a loopback pool's metadata file may not
			// allow (tmpfs), though its loop device does.
			if err := thinCheck(cfg.ThinCheck, devicePathOf(b, false)); err != nil {
				return nil, err
			}
		}
		sectors := b.dataBytes / sectorSize / uint64(blockSectors) * uint64(blockSectors)
		poolDev, err = ctl.CreatePool(cfg.PoolName, uuidPrefix+cfg.PoolName, table, sectors)
		if err != nil {
			return nil, explainPoolError(ctl, err)
		}
		klog.InfoS("Activated the pool", "pool", cfg.PoolName, "dev", poolDev, "new", fresh, "dataBytes", sectors*sectorSize)
	}
	e := newEngine(ctl, s, cfg, cfg.PoolName, poolDev)
	e.backing = b
	if err := e.start(); err != nil {
		return nil, err
	}
	if err := e.startGrowth(); err != nil {
		return nil, err
	}
	if b.loop && cfg.PoolSizeBytes > b.dataBytes {
		if err := e.Grow(context.Background(), cfg.PoolSizeBytes); err != nil {
			return nil, fmt.Errorf("grow the pool to the configured %d bytes: %w", cfg.PoolSizeBytes, err)
		}
	}
	if err := e.startWatch(); err != nil {
		return nil, err
	}
	return e, nil
}

// prepareBacking gets the pool's devices ready and says whether the
// metadata is blank, so that a new pool will be formatted on it.
func prepareBacking(cfg Config) (*backing, bool, error) {
	b := &backing{loop: cfg.loop(), dataPath: cfg.DataDevice, metaPath: cfg.MetadataDevice}
	if b.loop {
		b.dataPath, b.metaPath = cfg.dataFile(), cfg.metadataFile()
		dataBytes := cfg.PoolSizeBytes / cfg.BlockSizeBytes * cfg.BlockSizeBytes
		if err := createSparse(b.dataPath, dataBytes); err != nil {
			return nil, false, err
		}
		if err := createSparse(b.metaPath, metadataSize(dataBytes, cfg.BlockSizeBytes)); err != nil {
			return nil, false, err
		}
		var err error
		if b.dataLoop, err = loopFor(b.dataPath); err != nil {
			return nil, false, err
		}
		if b.metaLoop, err = loopFor(b.metaPath); err != nil {
			return nil, false, err
		}
		b.dataDev = dm.Dev{Major: b.dataLoop.Major, Minor: b.dataLoop.Minor}
		b.metaDev = dm.Dev{Major: b.metaLoop.Major, Minor: b.metaLoop.Minor}
	} else {
		var err error
		if b.dataDev, err = blockDev(b.dataPath); err != nil {
			return nil, false, err
		}
		if b.metaDev, err = blockDev(b.metaPath); err != nil {
			return nil, false, err
		}
	}
	size, err := dm.BlockDeviceSize(devicePathOf(b, true))
	if err != nil {
		return nil, false, err
	}
	b.dataBytes = size
	fresh, err := blankMetadata(b.metaPath)
	return b, fresh, err
}

func devicePathOf(b *backing, data bool) string {
	switch {
	case b.loop && data:
		return b.dataLoop.Path
	case b.loop:
		return b.metaLoop.Path
	case data:
		return b.dataPath
	}
	return b.metaPath
}

// createSparse creates a sparse file of size bytes unless it exists.
func createSparse(path string, size uint64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create pool file: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(int64(size)); err != nil {
		os.Remove(path)
		return fmt.Errorf("size pool file %s to %d bytes: %w", path, size, err)
	}
	klog.InfoS("Created sparse pool file", "file", path, "bytes", size)
	return f.Sync()
}

// loopFor returns the loop device backing file, attaching one if none
// does. Pool loops use direct I/O where the file system allows it, so
// data is not cached twice, and no autoclear, so they outlive csi-thin.
func loopFor(file string) (*dm.LoopDevice, error) {
	l, err := dm.FindLoop(file)
	if err == nil {
		return l, nil
	}
	if !errors.Is(err, dm.ErrNotFound) {
		return nil, err
	}
	return dm.AttachLoop(file, dm.LoopOptions{DirectIO: true})
}

func blockDev(path string) (dm.Dev, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return dm.Dev{}, fmt.Errorf("pool device %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return dm.Dev{}, invalidf("pool device %s is not a block device", path)
	}
	return dm.DevFromUint64(st.Rdev), nil
}

// blankMetadata reports whether the metadata's first block, where the
// thin-pool superblock lives, is all zero.
func blankMetadata(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("read pool metadata: %w", err)
	}
	defer f.Close()
	buf := make([]byte, metadataBlockBytes)
	if _, err := io.ReadFull(f, buf); err != nil {
		return false, fmt.Errorf("read pool metadata %s: %w", path, err)
	}
	return bytes.Count(buf, []byte{0}) == len(buf), nil
}

// checkIdentity ties the state directory to its pool: a database that has
// never seen a pool may only start on blank metadata, and one that has
// must keep the same kind of pool, devices and block size.
func checkIdentity(s *store, cfg *Config, b *backing, fresh bool) error {
	want := poolIdentity{
		Name: cfg.PoolName, DataBlockSize: uint32(cfg.BlockSizeBytes / sectorSize), Loop: b.loop,
		DataDevice: cfg.DataDevice, MetaDevice: cfg.MetadataDevice,
	}
	have, err := s.poolIdentity()
	if err != nil {
		return err
	}
	if have == nil {
		if !fresh {
			return fmt.Errorf("%w: the metadata on %s holds a thin pool that the state database %s has never seen; "+
				"to start a new pool there, zero its first 4 KiB (dd if=/dev/zero of=%s bs=4k count=1), "+
				"or restore the state directory that belongs to it", ErrStoreMismatch, b.metaPath, s.path, b.metaPath)
		}
		return s.setPoolIdentity(want)
	}
	if have.Loop != want.Loop || have.DataDevice != want.DataDevice || have.MetaDevice != want.MetaDevice || have.Name != want.Name {
		return fmt.Errorf("%w: the state directory belongs to pool %s on %s, not %s: use the devices and pool name it was created with",
			ErrStoreMismatch, have.Name, describeIdentity(*have), cfg.String())
	}
	if have.DataBlockSize != want.DataBlockSize {
		klog.InfoS("Keeping the pool's block size; it is fixed when a pool is created",
			"blockBytes", uint64(have.DataBlockSize)*sectorSize, "configuredBytes", cfg.BlockSizeBytes)
		cfg.BlockSizeBytes = uint64(have.DataBlockSize) * sectorSize
	}
	return nil
}

func describeIdentity(p poolIdentity) string {
	if p.Loop {
		return "loopback files"
	}
	return p.DataDevice + " and " + p.MetaDevice
}

// checkLiveTable makes sure a running device with the pool's name is this
// pool, on these devices.
func checkLiveTable(ctl *dm.Control, name string, want dm.PoolTable) error {
	ts, err := ctl.Table(name)
	if err != nil {
		return err
	}
	if len(ts) != 1 || ts[0].Type != "thin-pool" {
		return fmt.Errorf("%w: dm device %s exists but is not a thin pool: choose another pool name", ErrStoreMismatch, name)
	}
	have, err := dm.ParsePoolParams(ts[0].Params)
	if err != nil {
		return err
	}
	if have.MetadataDev != want.MetadataDev || have.DataDev != want.DataDev || have.DataBlockSize != want.DataBlockSize {
		return fmt.Errorf("%w: running pool %s uses metadata %s, data %s, blocks of %d sectors, not this state directory's %s, %s, %d: "+
			"remove that device or choose another pool name", ErrStoreMismatch, name,
			have.MetadataDev, have.DataDev, have.DataBlockSize, want.MetadataDev, want.DataDev, want.DataBlockSize)
	}
	return nil
}

// thinCheck runs thin_check on existing metadata before the pool is
// activated, when the tool is installed.
func thinCheck(bin, metaPath string) error {
	if bin == "none" {
		return nil
	}
	if bin == "" {
		p, err := exec.LookPath("thin_check")
		if err != nil {
			klog.InfoS("thin_check is not installed; activating the pool without checking its metadata")
			return nil
		}
		bin = p
	}
	out, err := exec.Command(bin, "-q", metaPath).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: thin_check found the pool metadata on %s damaged (%v): %s; "+
			"repair it with thin_repair before starting csi-thin", ErrUnhealthy, metaPath, err, strings.TrimSpace(string(out)))
	}
	klog.V(2).InfoS("thin_check passed", "metadata", metaPath)
	return nil
}

// explainPoolError adds what to do when the kernel refuses the pool.
func explainPoolError(ctl *dm.Control, err error) error {
	if vs, vErr := ctl.TargetVersions(); vErr == nil {
		if _, ok := vs["thin-pool"]; !ok {
			return fmt.Errorf("the kernel has no thin-pool target: run `modprobe dm-thin-pool` on the node: %w", err)
		}
	}
	return fmt.Errorf("activate the pool: %w (the kernel log, dmesg, says why)", err)
}
