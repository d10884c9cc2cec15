package devmapper

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// Where sysfs and /dev are. They are variables only so that unit tests can
// point them at a fake tree.
var (
	blockSysRoot = "/sys"
	blockDevRoot = "/dev"
)

// sectorBytes is the unit of BLKDISCARD offsets and lengths.
const sectorBytes = 512

// BlockDeviceSize returns the size in bytes of the block device at path
// (BLKGETSIZE64).
func BlockDeviceSize(path string) (uint64, error) {
	const op = "block size"
	if path == "" {
		return 0, invalidf("block device path is empty")
	}
	fd, err := openBlockDevice(op, path, unix.O_RDONLY)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	var size uint64
	if err := blockIoctl(fd, unix.BLKGETSIZE64, unsafe.Pointer(&size)); err != nil {
		return 0, &Error{Op: op, Device: path, Err: err}
	}
	return size, nil
}

// Discard tells the block device at path that length bytes from offset are
// no longer used (BLKDISCARD). Both must be multiples of 512; a zero length
// discards nothing. The device may also refuse a range that is not aligned
// to its logical block size or that runs past its end (EINVAL).
func Discard(path string, offset, length uint64) error {
	const op = "discard"
	if path == "" {
		return invalidf("block device path is empty")
	}
	if offset%sectorBytes != 0 {
		return invalidf("discard offset %d is not a multiple of %d", offset, sectorBytes)
	}
	if length%sectorBytes != 0 {
		return invalidf("discard length %d is not a multiple of %d", length, sectorBytes)
	}
	if offset+length < offset {
		return invalidf("discard range %d+%d overflows", offset, length)
	}
	fd, err := openBlockDevice(op, path, unix.O_WRONLY)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if length == 0 {
		return nil
	}
	r := [2]uint64{offset, length}
	if err := blockIoctl(fd, unix.BLKDISCARD, unsafe.Pointer(&r)); err != nil {
		return &Error{Op: fmt.Sprintf("%s %d+%d", op, offset, length), Device: path, Err: err}
	}
	klog.V(4).InfoS("Discarded block device range", "device", path, "offset", offset, "length", length)
	return nil
}

// DeviceNode returns the path of a block device node for major:minor: a
// block special file with that device number. It prefers the kernel's name
// for the device (/dev/dm-3, /dev/loop0: DEVNAME in
// /sys/dev/block/MAJOR:MINOR/uevent), then udev's /dev/block/MAJOR:MINOR.
// Where neither exists (udev never ran), it creates /dev/DEVNAME (mode 0600)
// and returns that. It never waits for udev.
func DeviceNode(major, minor uint32) (string, error) {
	devno := fmt.Sprintf("%d:%d", major, minor)
	rdev := unix.Mkdev(major, minor)
	devname, err := blockDevName(devno)
	if err != nil {
		return "", err
	}
	var named string
	var namedErr error
	if devname != "" {
		named = filepath.Join(blockDevRoot, devname)
		ok, err := isBlockNode(named, rdev)
		if ok {
			return named, nil
		}
		namedErr = err
	}
	byNumber := filepath.Join(blockDevRoot, "block", devno)
	if ok, _ := isBlockNode(byNumber, rdev); ok {
		return byNumber, nil
	}
	if namedErr != nil {
		// /dev/DEVNAME is something else: leave it alone.
		return "", namedErr
	}
	if devname == "" {
		return "", &Error{Op: "device node", Device: devno,
			Err: fmt.Errorf("no DEVNAME in sysfs uevent and no %s: %w", byNumber, unix.ENOENT)}
	}
	if err := makeBlockNode(named, major, minor); err != nil {
		return "", err
	}
	return named, nil
}

// blockDevName returns DEVNAME from /sys/dev/block/MAJOR:MINOR/uevent, or ""
// if the uevent has none. An error means the kernel has no such block
// device (or sysfs is not readable).
func blockDevName(devno string) (string, error) {
	p := filepath.Join(blockSysRoot, "dev", "block", devno, "uevent")
	data, err := os.ReadFile(p)
	if err != nil {
		return "", &Error{Op: "device node", Device: devno, Err: blockErrno(err)}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "DEVNAME=")
		if !ok {
			continue
		}
		if v == "" || filepath.IsAbs(v) || !filepath.IsLocal(v) {
			return "", &Error{Op: "device node", Device: devno,
				Err: fmt.Errorf("sysfs uevent has unusable DEVNAME %q", v)}
		}
		return filepath.Clean(v), nil
	}
	return "", nil
}

// isBlockNode reports whether path is a block special file for rdev. A
// missing path is (false, nil); a path that is something else is an error,
// so that DeviceNode never shadows or replaces an unrelated file.
func isBlockNode(path string, rdev uint64) (bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, &Error{Op: "device node stat", Device: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return false, &Error{Op: "device node", Device: path, Err: unix.ENOTBLK}
	}
	if st.Rdev != rdev {
		return false, &Error{Op: "device node", Device: path,
			Err: fmt.Errorf("is block device %d:%d, not %d:%d",
				unix.Major(st.Rdev), unix.Minor(st.Rdev), unix.Major(rdev), unix.Minor(rdev))}
	}
	return true, nil
}

// makeBlockNode creates path as a block special file for major:minor (mode
// 0600), or accepts one that is already there, e.g. made by a concurrent
// caller or by udev in the meantime.
func makeBlockNode(path string, major, minor uint32) error {
	rdev := unix.Mkdev(major, minor)
	if dir := filepath.Dir(path); dir != blockDevRoot {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return &Error{Op: "mkdir", Device: dir, Err: blockErrno(err)}
		}
	}
	err := unix.Mknod(path, unix.S_IFBLK|0o600, int(rdev))
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return &Error{Op: fmt.Sprintf("mknod %d:%d", major, minor), Device: path, Err: err}
	}
	if err == nil {
		klog.V(4).InfoS("Created block device node", "path", path, "major", major, "minor", minor)
	}
	ok, serr := isBlockNode(path, rdev)
	if serr != nil {
		return serr
	}
	if !ok {
		// Created and gone again: someone removed it under us.
		return &Error{Op: fmt.Sprintf("mknod %d:%d", major, minor), Device: path, Err: unix.ENOENT}
	}
	return nil
}

// openBlockDevice opens path, which must be a block device, with the given
// access mode. Errors name op and path.
func openBlockDevice(op, path string, mode int) (int, error) {
	fd, err := unix.Open(path, mode|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &Error{Op: op, Device: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &Error{Op: op, Device: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		unix.Close(fd)
		return -1, &Error{Op: op, Device: path, Err: unix.ENOTBLK}
	}
	return fd, nil
}

// blockIoctl is an ioctl whose argument is a pointer. The result is nil or
// a unix.Errno.
func blockIoctl(fd int, req uint, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

// blockErrno returns the unix.Errno inside err (from the os package's
// *PathError and the like), or err itself when it has none.
func blockErrno(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
