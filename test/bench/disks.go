package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"k8s.io/klog/v2"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// The disks the benchmark is given, in this order (test/bench/run makes
// them as User-Mode Linux ubd disks): each pool has a disk of its own, its
// metadata and data two linear devices over it, as lvm2 lays out a thin
// pool's metadata and data on its physical volume.
const (
	diskState     = iota // ext4: csi-thin's state directory and lvm2's metadata backups
	diskPoolExt4         // the pool of csi-thin with its state on diskState, then the linear devices of the data path
	diskPoolTmpfs        // the pool of csi-thin with its state on tmpfs
	diskFloor            // the pool the bare ioctls run on
	diskLVM              // lvm2's physical volume
	diskCount
)

var diskRoles = [diskCount]string{
	"the ext4 state directory", "csi-thin's pool (state on ext4) and the linear devices",
	"csi-thin's pool (state on tmpfs)", "the bare ioctls' pool", "lvm2's physical volume",
}

const (
	mib = uint64(1) << 20
	gib = uint64(1) << 30
	// metaBytes is every pool's metadata device: room for 10,000 thin
	// devices and more (about 4 KiB each).
	metaBytes = 256 * mib
	// blankBytes of a disk are checked to be zero before it is used.
	blankBytes = 1 << 20
)

// poolDevices are the metadata and data devices of a pool on one disk.
type poolDevices struct{ meta, data string }

// diskSize is a block device's size in bytes.
func diskSize(path string) (uint64, error) {
	n, err := dm.BlockDeviceSize(path)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", path, err)
	}
	return n, nil
}

// checkBlank refuses a disk whose first MiB holds anything: the benchmark
// formats and overwrites every disk it is given, so it takes only blank
// ones (test/bench/run makes them from new sparse files).
func checkBlank(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, blankBytes)
	if _, err := io.ReadFull(f, buf); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if !bytes.Equal(buf, make([]byte, blankBytes)) {
		return fmt.Errorf("%s is not blank (its first MiB holds data): the benchmark overwrites its disks, so give it empty ones "+
			"(test/bench/run makes them), or zero this one yourself if it is really yours to lose", path)
	}
	return nil
}

// linear makes a linear dm device over length bytes of disk from start,
// which cleanup removes, and returns its device node.
func (b *bench) linear(name, disk string, start, length uint64) (string, error) {
	fi, err := os.Stat(disk)
	if err != nil {
		return "", err
	}
	st, err := devNumber(fi)
	if err != nil {
		return "", err
	}
	dev, err := b.ctl.Activate(name, "", []dm.Target{{
		Length: length / 512, Type: "linear", Params: fmt.Sprintf("%s %d", st, start/512),
	}}, dm.ActivateOptions{})
	if err != nil {
		return "", fmt.Errorf("linear device %s over %s: %w", name, disk, err)
	}
	b.defer_("remove "+name, func() error { return b.ctl.Remove(name, dm.RemoveOptions{}) })
	return dm.DeviceNode(dev.Major, dev.Minor)
}

// poolOn lays a pool's metadata and then dataBytes of data (all the rest
// with 0) out on disk as two linear devices.
func (b *bench) poolOn(role int, dataBytes uint64) (poolDevices, error) {
	disk := b.cfg.disks[role]
	size, err := diskSize(disk)
	if err != nil {
		return poolDevices{}, err
	}
	if dataBytes == 0 {
		dataBytes = size - metaBytes
	}
	if size < metaBytes+dataBytes || dataBytes < gib {
		return poolDevices{}, fmt.Errorf("%s (%s) has %d MiB: it needs %d MiB, make it larger", disk, diskRoles[role], size/mib, (metaBytes+max(dataBytes, gib))/mib)
	}
	tag := fmt.Sprintf("csi-thin-bench-disk%d", role)
	var p poolDevices
	if p.meta, err = b.linear(tag+"-meta", disk, 0, metaBytes); err != nil {
		return p, err
	}
	if p.data, err = b.linear(tag+"-data", disk, metaBytes, dataBytes); err != nil {
		return p, err
	}
	return p, nil
}

// mountState makes an ext4 filesystem on the state disk and mounts it at
// dir, as a node's root disk holds /var/lib.
func (b *bench) mountState(dir string) error {
	disk := b.cfg.disks[diskState]
	if out, err := exec.CommandContext(b.ctx, "mkfs.ext4", "-q", "-F", disk).CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %w: %s", disk, err, out)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if out, err := exec.CommandContext(b.ctx, "mount", "-t", "ext4", disk, dir).CombinedOutput(); err != nil {
		return fmt.Errorf("mount %s at %s: %w: %s", disk, dir, err, out)
	}
	b.defer_("unmount "+dir, func() error { return unmount(dir) })
	klog.InfoS("State disk formatted and mounted", "disk", disk, "fs", "ext4", "at", dir)
	return nil
}

func unmount(dir string) error {
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("umount %s: %w: %s", dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// devNumber is a block device node's major:minor.
func devNumber(fi os.FileInfo) (string, error) {
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return "", fmt.Errorf("%s is not a block device", fi.Name())
	}
	rdev, ok := sysRdev(fi)
	if !ok {
		return "", errors.New("no device number for " + fi.Name())
	}
	return dm.DevFromUint64(rdev).String(), nil
}

// thinDevice is the device node of an active volume of pool.
func (b *bench) thinDevice(pool, volumeID string) (string, error) {
	info, err := b.ctl.Info(pool + "-" + volumeID)
	if err != nil {
		return "", err
	}
	if !info.Exists {
		return "", fmt.Errorf("volume %s has no active device %s-%s: stage it first", volumeID, pool, volumeID)
	}
	return dm.DeviceNode(info.Dev.Major, info.Dev.Minor)
}

// workPath is a path under the benchmark's work directory.
func (b *bench) workPath(elem ...string) string {
	return filepath.Join(append([]string{b.dir}, elem...)...)
}

func sysRdev(fi os.FileInfo) (uint64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Rdev, true
}
