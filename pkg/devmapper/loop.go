package devmapper

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

const (
	// loopMajor is the block major of loop devices (LOOP_MAJOR).
	loopMajor = 7
	// loopAttachTries bounds how often AttachLoop takes a new free device
	// after another process bound the one it was given.
	loopAttachTries = 32
)

// loopTryConfigure is false only in tests, to take the path of kernels
// without LOOP_CONFIGURE.
var loopTryConfigure = true

// LoopOptions say how AttachLoop binds a file.
type LoopOptions struct {
	// DirectIO asks for direct I/O to the backing file, bypassing the page
	// cache (LO_FLAGS_DIRECT_IO). Where the backing file system or the
	// alignment does not allow it the kernel keeps buffered I/O, as losetup
	// does.
	DirectIO bool
	// ReadOnly opens the backing file read-only, which makes the loop
	// device read-only.
	ReadOnly bool
	// Autoclear has the kernel detach the device when its last user closes
	// it (LO_FLAGS_AUTOCLEAR). AttachLoop's LoopDevice then holds the device
	// open until its Close, so that it lasts until a dm table (or the
	// caller) opens it. Pool devices do not use it, so that a pool survives
	// the process.
	Autoclear bool
}

// LoopDevice is a loop device bound to a backing file.
type LoopDevice struct {
	Path         string // device node, /dev/loopN
	Number       int    // N
	Major, Minor uint32
	// BackingFile is the backing file's path: as given to AttachLoop (made
	// absolute), or as the kernel reports it for FindLoop.
	BackingFile string

	held   bool // AttachLoop with Autoclear: heldFd keeps the device alive
	heldFd int
}

// DevNo returns the device number as "major:minor", the form dm tables use.
func (l *LoopDevice) DevNo() string { return fmt.Sprintf("%d:%d", l.Major, l.Minor) }

// AttachLoop binds file to a free loop device and returns it. It takes the
// device from /dev/loop-control, binds with LOOP_CONFIGURE (LOOP_SET_FD and
// LOOP_SET_STATUS64 on kernels before 5.8) and records the file's absolute
// path as the device's lo_file_name. When another process binds the same
// free device first, it takes another, a bounded number of times. A missing
// /dev/loopN (no udev) is created with mknod.
func AttachLoop(file string, opts LoopOptions) (*LoopDevice, error) {
	const op = "loop attach"
	if file == "" {
		return nil, invalidf("loop backing file path is empty")
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, &Error{Op: op, Device: file, Err: blockErrno(err)}
	}
	mode := unix.O_RDWR
	if opts.ReadOnly {
		mode = unix.O_RDONLY
	}
	ffd, err := unix.Open(abs, mode|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &Error{Op: op, Device: abs, Err: err}
	}
	// The kernel keeps its own reference to the file.
	defer unix.Close(ffd)
	var st unix.Stat_t
	if err := unix.Fstat(ffd, &st); err != nil {
		return nil, &Error{Op: op, Device: abs, Err: err}
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFREG && t != unix.S_IFBLK {
		return nil, invalidf("loop backing file %s is not a regular file or a block device", abs)
	}

	ctlPath := filepath.Join(blockDevRoot, "loop-control")
	ctl, err := unix.Open(ctlPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &Error{Op: op + " " + abs, Device: ctlPath, Err: err}
	}
	defer unix.Close(ctl)

	for try := 1; ; try++ {
		n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, &Error{Op: "loop get free", Device: ctlPath, Err: err}
		}
		l := &LoopDevice{Number: n, BackingFile: abs}
		if err := l.locate(true); err != nil {
			return nil, err
		}
		lfd, err := unix.Open(l.Path, mode|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &Error{Op: op + " " + abs, Device: l.Path, Err: err}
		}
		step, err := bindLoop(lfd, ffd, abs, opts)
		if err != nil {
			unix.Close(lfd)
			if errors.Is(err, unix.EBUSY) && try < loopAttachTries {
				// Another process bound it between GET_FREE and now.
				klog.V(4).InfoS("Free loop device was taken, trying another", "device", l.Path, "file", abs, "try", try)
				continue
			}
			return nil, &Error{Op: fmt.Sprintf("%s %s (%s)", op, abs, step), Device: l.Path, Err: err}
		}
		flags := uint32(0)
		if info, err := unix.IoctlLoopGetStatus64(lfd); err == nil {
			flags = info.Flags
		}
		if opts.DirectIO && flags&unix.LO_FLAGS_DIRECT_IO == 0 {
			klog.V(2).InfoS("Loop device uses buffered I/O: the backing file does not allow direct I/O", "device", l.Path, "file", abs)
		}
		if opts.Autoclear {
			l.held, l.heldFd = true, lfd
		} else {
			unix.Close(lfd)
		}
		klog.V(2).InfoS("Attached loop device", "device", l.Path, "devno", l.DevNo(), "file", abs,
			"readOnly", flags&unix.LO_FLAGS_READ_ONLY != 0, "directIO", flags&unix.LO_FLAGS_DIRECT_IO != 0,
			"autoclear", flags&unix.LO_FLAGS_AUTOCLEAR != 0)
		return l, nil
	}
}

// bindLoop binds the open file ffd to the open loop device lfd. On failure
// it returns the step that failed and the errno; the device is then unbound.
func bindLoop(lfd, ffd int, name string, opts LoopOptions) (string, error) {
	var info unix.LoopInfo64
	copy(info.File_name[:len(info.File_name)-1], name)
	if opts.Autoclear {
		info.Flags |= unix.LO_FLAGS_AUTOCLEAR
	}
	cfg := unix.LoopConfig{Fd: uint32(ffd), Info: info}
	if opts.ReadOnly {
		cfg.Info.Flags |= unix.LO_FLAGS_READ_ONLY
	}
	if opts.DirectIO {
		cfg.Info.Flags |= unix.LO_FLAGS_DIRECT_IO
	}
	err := error(unix.ENOTTY)
	if loopTryConfigure {
		err = unix.IoctlLoopConfigure(lfd, &cfg)
	}
	if err == nil || (err != unix.EINVAL && err != unix.ENOTTY) {
		return "LOOP_CONFIGURE", err
	}
	// Before Linux 5.8: no LOOP_CONFIGURE. The file's open mode makes the
	// device read-only; LOOP_SET_STATUS64 sets the name and autoclear.
	klog.V(4).InfoS("LOOP_CONFIGURE refused, using LOOP_SET_FD", "err", err)
	if err := unix.IoctlSetInt(lfd, unix.LOOP_SET_FD, ffd); err != nil {
		return "LOOP_SET_FD", err
	}
	if err := unix.IoctlLoopSetStatus64(lfd, &info); err != nil {
		_ = unix.IoctlSetInt(lfd, unix.LOOP_CLR_FD, 0)
		return "LOOP_SET_STATUS64", err
	}
	if opts.DirectIO {
		if err := unix.IoctlSetInt(lfd, unix.LOOP_SET_DIRECT_IO, 1); err != nil {
			klog.V(4).InfoS("LOOP_SET_DIRECT_IO refused", "err", err)
		}
	}
	return "", nil
}

// locate fills in Path, Major and Minor from Number: the device number from
// /sys/class/block/loopN/dev (major 7, minor N if sysfs does not have it).
// With create, a missing /dev/loopN is made with mknod.
func (l *LoopDevice) locate(create bool) error {
	name := fmt.Sprintf("loop%d", l.Number)
	l.Path = filepath.Join(blockDevRoot, name)
	l.Major, l.Minor = loopMajor, uint32(l.Number)
	if b, err := os.ReadFile(filepath.Join(blockSysRoot, "class", "block", name, "dev")); err == nil {
		if major, minor, ok := parseDevNo(strings.TrimSpace(string(b))); ok {
			l.Major, l.Minor = major, minor
		}
	}
	if !create {
		return nil
	}
	ok, err := isBlockNode(l.Path, unix.Mkdev(l.Major, l.Minor))
	if err != nil || ok {
		return err
	}
	return makeBlockNode(l.Path, l.Major, l.Minor)
}

// parseDevNo parses "major:minor".
func parseDevNo(s string) (major, minor uint32, ok bool) {
	a, b, found := strings.Cut(s, ":")
	if !found {
		return 0, 0, false
	}
	mj, err1 := strconv.ParseUint(a, 10, 32)
	mn, err2 := strconv.ParseUint(b, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uint32(mj), uint32(mn), true
}

// FindLoop returns the loop device whose backing file is file, matched by
// device and inode, so any path to the file (a symlink, a bind mount) finds
// it. When several devices back the file it returns the lowest-numbered.
// When none does, errors.Is(err, ErrNotFound) holds.
//
// It reads each bound device's LOOP_GET_STATUS64; where /dev/loopN cannot
// be opened (not root, no node) it compares the file with the backing file
// path in sysfs instead.
func FindLoop(file string) (*LoopDevice, error) {
	const op = "loop find"
	if file == "" {
		return nil, invalidf("loop backing file path is empty")
	}
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		return nil, &Error{Op: op, Device: file, Err: err}
	}
	nums, err := loopNumbers()
	if err != nil {
		return nil, &Error{Op: op, Device: file, Err: err}
	}
	for _, n := range nums {
		sysLoop := filepath.Join(blockSysRoot, "class", "block", fmt.Sprintf("loop%d", n), "loop")
		b, err := os.ReadFile(filepath.Join(sysLoop, "backing_file"))
		if err != nil {
			continue // unbound: sysfs has no loop/ directory
		}
		backing := strings.TrimSuffix(string(b), "\n")
		l := &LoopDevice{Number: n, BackingFile: backing}
		_ = l.locate(false)
		if !loopBacks(l.Path, backing, &st) {
			continue
		}
		if err := l.locate(true); err != nil {
			// The device is still the answer; using it will fail with
			// the node's error.
			klog.V(2).InfoS("Found loop device has no usable node", "device", l.Path, "err", err)
		}
		klog.V(4).InfoS("Found loop device", "device", l.Path, "file", file, "backingFile", backing)
		return l, nil
	}
	return nil, &Error{Op: op, Device: file, Err: unix.ENXIO}
}

// loopNumbers lists the loop devices in /sys/class/block, lowest first.
// No such directory means no loop devices.
func loopNumbers() ([]int, error) {
	ents, err := os.ReadDir(filepath.Join(blockSysRoot, "class", "block"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, blockErrno(err)
	}
	var nums []int
	for _, e := range ents {
		s, ok := strings.CutPrefix(e.Name(), "loop")
		if !ok {
			continue
		}
		// Partitions (loop0p1) and anything else not a plain number are
		// skipped.
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || strconv.Itoa(n) != s {
			continue
		}
		nums = append(nums, n)
	}
	slices.Sort(nums)
	return nums, nil
}

// loopBacks reports whether the loop device at path is bound to the file
// st describes: by LOOP_GET_STATUS64's lo_device and lo_inode, or, when the
// device cannot be opened, by stat of the backing path sysfs reports.
func loopBacks(path, sysBacking string, st *unix.Stat_t) bool {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		defer unix.Close(fd)
		info, err := unix.IoctlLoopGetStatus64(fd)
		if err != nil {
			return false // ENXIO: detached since the sysfs read
		}
		return info.Device == st.Dev && info.Inode == st.Ino
	}
	klog.V(4).InfoS("Cannot open loop device, comparing its sysfs backing file", "device", path, "err", err)
	var bst unix.Stat_t
	if unix.Stat(sysBacking, &bst) != nil {
		return false // deleted, or " (deleted)" appended
	}
	return bst.Dev == st.Dev && bst.Ino == st.Ino
}

// RefreshCapacity makes the device take the backing file's current size
// (LOOP_SET_CAPACITY), after the file grew or shrank.
func (l *LoopDevice) RefreshCapacity() error {
	const op = "loop set capacity"
	if l.Path == "" {
		return invalidf("loop device path is empty")
	}
	fd, err := openBlockDevice(op, l.Path, unix.O_RDONLY)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetInt(fd, unix.LOOP_SET_CAPACITY, 0); err != nil {
		return &Error{Op: op, Device: l.Path, Err: err}
	}
	klog.V(4).InfoS("Refreshed loop device capacity", "device", l.Path)
	return nil
}

// Size returns the device's size in bytes.
func (l *LoopDevice) Size() (uint64, error) {
	if l.Path == "" {
		return 0, invalidf("loop device path is empty")
	}
	return BlockDeviceSize(l.Path)
}

// Detach unbinds the device from its backing file (LOOP_CLR_FD). When the
// device is held exclusively, by a dm table or a mounted file system, it
// fails with an error for which errors.Is(err, ErrBusy) holds and leaves
// the device bound. When it is merely open elsewhere, the kernel finishes
// the detach once the last opener closes it. Detach also releases what
// Close releases.
func (l *LoopDevice) Detach() error {
	const op = "loop detach"
	if l.Path == "" {
		return invalidf("loop device path is empty")
	}
	// LOOP_CLR_FD on a device that others have open only marks it for
	// autoclear and succeeds; the exclusive open is what says EBUSY when a
	// dm table or a file system holds it.
	fd, err := unix.Open(l.Path, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return &Error{Op: op, Device: l.Path, Err: err}
	}
	err = unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0)
	_ = l.Close()
	unix.Close(fd)
	if err != nil {
		return &Error{Op: op, Device: l.Path, Err: err}
	}
	sysBacking := filepath.Join(blockSysRoot, "class", "block", filepath.Base(l.Path), "loop", "backing_file")
	if _, err := os.Stat(sysBacking); err == nil {
		klog.V(2).InfoS("Loop device detach deferred until its last opener closes it", "device", l.Path, "file", l.BackingFile)
	} else {
		klog.V(2).InfoS("Detached loop device", "device", l.Path, "file", l.BackingFile)
	}
	return nil
}

// Close releases the hold AttachLoop keeps on an Autoclear device, after
// which the kernel detaches it when its last user closes it. For other
// devices it does nothing. It never detaches a device itself.
func (l *LoopDevice) Close() error {
	if !l.held {
		return nil
	}
	l.held = false
	if err := unix.Close(l.heldFd); err != nil {
		return &Error{Op: "loop close", Device: l.Path, Err: err}
	}
	return nil
}
