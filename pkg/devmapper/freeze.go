package devmapper

import (
	"os"

	"golang.org/x/sys/unix"
)

// FIFREEZE and FITHAW are _IOWR('X', 119, int) and _IOWR('X', 120, int)
// in linux/fs.h, in the generic ioctl encoding (x86, arm, arm64, riscv,
// s390x); golang.org/x/sys does not name them.
const (
	ioctlFIFREEZE = 0xc0045877
	ioctlFITHAW   = 0xc0045878
)

// MountPoints lists where filesystems on the block device d are mounted
// in this process's mount namespace, from mountinfo. Bind mounts of one
// filesystem (a staging path and its publish paths) are all listed; they
// share one superblock, which freezes as one.
func MountPoints(d Dev) ([]string, error) { return mountPointsOf(d) }

// Freeze freezes the filesystem mounted at mountPoint (FIFREEZE): it
// flushes it and blocks every write to it until Thaw, so that the block
// device under it holds a clean filesystem. A filesystem already frozen
// fails with EBUSY; one that cannot freeze with EOPNOTSUPP.
func Freeze(mountPoint string) error { return fsIoctl("freeze", mountPoint, ioctlFIFREEZE) }

// Thaw thaws a filesystem Freeze froze (FITHAW). One that is not frozen
// fails with EINVAL.
func Thaw(mountPoint string) error { return fsIoctl("thaw", mountPoint, ioctlFITHAW) }

func fsIoctl(op, mountPoint string, req uint) error {
	f, err := os.Open(mountPoint)
	if err != nil {
		return &Error{Op: op + " open", Device: mountPoint, Err: blockErrno(err)}
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), req, 0); err != nil {
		return &Error{Op: op, Device: mountPoint, Err: err}
	}
	return nil
}
