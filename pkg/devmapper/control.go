package devmapper

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// ControlPath is the device-mapper control node.
const ControlPath = "/dev/mapper/control"

// Version is a device-mapper interface or target version.
type Version [3]uint32

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }

// Control is an open /dev/mapper/control. It is safe for concurrent use:
// every call packs its own buffer and the kernel serialises what it must.
type Control struct {
	f       *os.File
	fd      uintptr // f's descriptor, read once: each f.Fd() is an fcntl call
	version Version
}

// Open opens the device-mapper control node and reads the kernel's
// interface version. It fails with a message that says what to do when the
// kernel has no device-mapper or the caller is not privileged.
func Open() (*Control, error) {
	f, err := os.OpenFile(ControlPath, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, &Error{Op: "open", Device: ControlPath, Err: fmt.Errorf(
				"%w: the kernel has no device-mapper loaded; run `modprobe dm-thin-pool` on the node "+
					"(in a container, also mount the host's /dev)", unix.ENOENT)}
		case errors.Is(err, os.ErrPermission):
			return nil, &Error{Op: "open", Device: ControlPath, Err: fmt.Errorf(
				"%w: device-mapper needs root with CAP_SYS_ADMIN (a privileged container)", unix.EACCES)}
		}
		return nil, &Error{Op: "open", Device: ControlPath, Err: err}
	}
	c := &Control{f: f, fd: f.Fd()}
	r, err := c.run(cmdVersion, &request{})
	if err != nil {
		f.Close()
		return nil, err
	}
	c.version = r.version
	klog.V(4).InfoS("Opened device-mapper control", "interface", c.version)
	return c, nil
}

// Close closes the control node.
func (c *Control) Close() error { return c.f.Close() }

// Version is the kernel's dm ioctl interface version, as read by Open.
func (c *Control) Version() Version { return c.version }

// supports reports whether the kernel's interface is at least 4.minor.
func (c *Control) supports(minor uint32) bool {
	return c.version[0] == unix.DM_VERSION_MAJOR && c.version[1] >= minor
}

// run sends one ioctl. A reply that did not fit (DM_BUFFER_FULL_FLAG) is
// asked for again with a buffer twice the size; each try packs a fresh,
// zeroed buffer. A target message is never sent twice: it may have acted.
func (c *Control) run(cmd command, req *request) (*reply, error) {
	if c.version != (Version{}) && !c.supports(cmd.minMinor) {
		return nil, &Error{Op: cmd.name, Device: req.name, Err: fmt.Errorf(
			"%w: needs device-mapper interface 4.%d, the kernel has %s", ErrUnsupported, cmd.minMinor, c.version)}
	}
	size := initialBufferSize
	for {
		buf := pack(cmd, req, size)
		if err := c.ioctl(cmd.code, buf); err != nil {
			return nil, &Error{Op: cmd.name, Device: req.name, Err: err}
		}
		r, err := unpack(buf)
		if err != nil {
			return nil, &Error{Op: cmd.name, Device: req.name, Err: err}
		}
		if r.flags&unix.DM_BUFFER_FULL_FLAG == 0 {
			return r, nil
		}
		if cmd.code == unix.DM_TARGET_MSG {
			return nil, &Error{Op: cmd.name, Device: req.name, Err: fmt.Errorf(
				"the message was delivered but its reply is larger than %d bytes", size)}
		}
		if size*2 > maxBufferSize {
			return nil, &Error{Op: cmd.name, Device: req.name, Err: fmt.Errorf(
				"the reply is larger than %d bytes", maxBufferSize)}
		}
		size *= 2
		klog.V(5).InfoS("Device-mapper reply did not fit, retrying", "op", cmd.name, "device", req.name, "bufferBytes", size)
	}
}

// ioctl issues the request in buf, retrying when a signal interrupts it.
func (c *Control) ioctl(code uintptr, buf []byte) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, c.fd, code, uintptr(unsafe.Pointer(&buf[0])))
		runtime.KeepAlive(c.f) // its finalizer would close fd
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}
