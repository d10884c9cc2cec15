package devmapper_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/csi-thin/csi-thin/internal/kerneltest"
	"github.com/csi-thin/csi-thin/pkg/devmapper"
)

const loopMiB = 1 << 20

// loopAttachT attaches file and detaches it when the test ends, unless the
// test detached it itself.
func loopAttachT(t *testing.T, file string, opts devmapper.LoopOptions) *devmapper.LoopDevice {
	t.Helper()
	l, err := devmapper.AttachLoop(file, opts)
	if err != nil {
		t.Fatalf("AttachLoop(%s, %+v): %v", file, opts, err)
	}
	t.Cleanup(func() {
		if err := l.Detach(); err != nil && !errors.Is(err, devmapper.ErrNotFound) {
			t.Errorf("cleanup: %v", err)
		}
	})
	return l
}

// loopSysAttr reads /sys/class/block/loopN/NAME, trimmed; "" if it is missing.
func loopSysAttr(t *testing.T, l *devmapper.LoopDevice, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/class/block", filepath.Base(l.Path), name))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// loopBound reports whether the loop device has a backing file.
func loopBound(t *testing.T, l *devmapper.LoopDevice) bool {
	t.Helper()
	return loopSysAttr(t, l, "loop/backing_file") != ""
}

func loopStatusT(t *testing.T, l *devmapper.LoopDevice) *unix.LoopInfo64 {
	t.Helper()
	fd, err := unix.Open(l.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	info, err := unix.IoctlLoopGetStatus64(fd)
	if err != nil {
		t.Fatalf("LOOP_GET_STATUS64 %s: %v", l.Path, err)
	}
	return info
}

// loopCheckNode fails unless path is a block device node for major:minor.
func loopCheckNode(t *testing.T, path string, major, minor uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		t.Fatalf("%s has mode %o, not a block device", path, st.Mode)
	}
	if st.Rdev != unix.Mkdev(major, minor) {
		t.Fatalf("%s is %d:%d, want %d:%d", path, unix.Major(st.Rdev), unix.Minor(st.Rdev), major, minor)
	}
}

func loopPattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7+i/511)
	}
	return b
}

func TestLoopAttach(t *testing.T) {
	kerneltest.Require(t)
	file := kerneltest.SparseFile(t, "backing", 8*loopMiB)
	l := loopAttachT(t, file, devmapper.LoopOptions{})

	if want := fmt.Sprintf("/dev/loop%d", l.Number); l.Path != want {
		t.Errorf("Path = %q, want %q", l.Path, want)
	}
	if l.BackingFile != file {
		t.Errorf("BackingFile = %q, want %q", l.BackingFile, file)
	}
	if got := loopSysAttr(t, l, "dev"); got != l.DevNo() {
		t.Errorf("DevNo() = %q, sysfs says %q", l.DevNo(), got)
	}
	if l.Major != 7 {
		t.Errorf("Major = %d, want 7 (loop)", l.Major)
	}
	loopCheckNode(t, l.Path, l.Major, l.Minor)
	if got := loopSysAttr(t, l, "loop/backing_file"); got != file {
		t.Errorf("sysfs backing_file = %q, want %q", got, file)
	}
	info := loopStatusT(t, l)
	if got := unix.ByteSliceToString(info.File_name[:]); got != file {
		t.Errorf("lo_file_name = %q, want %q", got, file)
	}
	if info.Flags&(unix.LO_FLAGS_AUTOCLEAR|unix.LO_FLAGS_READ_ONLY) != 0 {
		t.Errorf("lo_flags = %#x, want neither autoclear nor read-only", info.Flags)
	}
	size, err := l.Size()
	if err != nil || size != 8*loopMiB {
		t.Errorf("Size() = %d, %v; want %d", size, err, 8*loopMiB)
	}
	if size, err := devmapper.BlockDeviceSize(l.Path); err != nil || size != 8*loopMiB {
		t.Errorf("BlockDeviceSize = %d, %v; want %d", size, err, 8*loopMiB)
	}

	// A second attach of the same file gets another device.
	l2 := loopAttachT(t, file, devmapper.LoopOptions{})
	if l2.Number == l.Number || l2.Path == l.Path {
		t.Errorf("second attach got the same device %s", l2.Path)
	}
}

func TestLoopLongFileName(t *testing.T) {
	kerneltest.Require(t)
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "backing")
	if err := os.WriteFile(file, make([]byte, loopMiB), 0o600); err != nil {
		t.Fatal(err)
	}
	l := loopAttachT(t, file, devmapper.LoopOptions{})
	// lo_file_name keeps 63 bytes; sysfs has the whole path.
	if got := unix.ByteSliceToString(loopStatusT(t, l).File_name[:]); got != file[:63] {
		t.Errorf("lo_file_name = %q, want %q", got, file[:63])
	}
	if got := loopSysAttr(t, l, "loop/backing_file"); got != file {
		t.Errorf("sysfs backing_file = %q, want %q", got, file)
	}
	found, err := devmapper.FindLoop(file)
	if err != nil || found.Number != l.Number {
		t.Errorf("FindLoop = %+v, %v; want loop%d", found, err, l.Number)
	}
}

func TestLoopWriteRead(t *testing.T) {
	kerneltest.Require(t)
	file := kerneltest.SparseFile(t, "backing", 4*loopMiB)
	l := loopAttachT(t, file, devmapper.LoopOptions{})

	// Device to file.
	want := loopPattern(64<<10, 3)
	dev, err := os.OpenFile(l.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if _, err := dev.WriteAt(want, loopMiB); err != nil {
		t.Fatalf("write %s: %v", l.Path, err)
	}
	if err := dev.Sync(); err != nil {
		t.Fatalf("fsync %s: %v", l.Path, err)
	}
	got := make([]byte, len(want))
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(got, loopMiB); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the backing file does not hold what was written to %s", l.Path)
	}

	// File to device, in a range the device never cached.
	want = loopPattern(16<<10, 99)
	wf, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wf.WriteAt(want, 3*loopMiB); err != nil {
		t.Fatal(err)
	}
	if err := wf.Close(); err != nil {
		t.Fatal(err)
	}
	got = make([]byte, len(want))
	if _, err := dev.ReadAt(got, 3*loopMiB); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s does not read what was written to the backing file", l.Path)
	}
}

func TestFindLoop(t *testing.T) {
	kerneltest.Require(t)
	dir := t.TempDir()
	file := kerneltest.SparseFile(t, "backing", 2*loopMiB)
	other := kerneltest.SparseFile(t, "other", 2*loopMiB)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	hard := filepath.Join(filepath.Dir(file), "hardlink")
	if err := os.Link(file, hard); err != nil {
		t.Fatal(err)
	}

	if _, err := devmapper.FindLoop(file); !errors.Is(err, devmapper.ErrNotFound) {
		t.Fatalf("FindLoop before attach: %v, want ErrNotFound", err)
	}
	l := loopAttachT(t, file, devmapper.LoopOptions{})
	// Another file attached at a lower or higher number must not match.
	loopAttachT(t, other, devmapper.LoopOptions{})

	for _, p := range []string{file, link, hard, filepath.Join(dir, "..", filepath.Base(dir), "link")} {
		got, err := devmapper.FindLoop(p)
		if err != nil {
			t.Errorf("FindLoop(%s): %v", p, err)
			continue
		}
		if got.Number != l.Number || got.Path != l.Path || got.DevNo() != l.DevNo() {
			t.Errorf("FindLoop(%s) = %s (%s), want %s (%s)", p, got.Path, got.DevNo(), l.Path, l.DevNo())
		}
		if got.BackingFile != file {
			t.Errorf("FindLoop(%s).BackingFile = %q, want %q", p, got.BackingFile, file)
		}
	}

	if err := l.Detach(); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if loopBound(t, l) {
		t.Fatalf("%s is still bound after Detach", l.Path)
	}
	_, err := devmapper.FindLoop(file)
	if !errors.Is(err, devmapper.ErrNotFound) {
		t.Fatalf("FindLoop after Detach: %v, want ErrNotFound", err)
	}
	var de *devmapper.Error
	if !errors.As(err, &de) || de.Device != file {
		t.Errorf("FindLoop error %v does not name the file", err)
	}
	// Detaching again: the device is no longer bound.
	if err := l.Detach(); !errors.Is(err, devmapper.ErrNotFound) || !errors.Is(err, unix.ENXIO) {
		t.Errorf("second Detach: %v, want ENXIO (ErrNotFound)", err)
	}
}

func TestLoopRefreshCapacity(t *testing.T) {
	kerneltest.Require(t)
	file := kerneltest.SparseFile(t, "backing", 4*loopMiB)
	l := loopAttachT(t, file, devmapper.LoopOptions{})
	if err := os.Truncate(file, 12*loopMiB); err != nil {
		t.Fatal(err)
	}
	if size, err := l.Size(); err != nil || size != 4*loopMiB {
		t.Fatalf("Size after the file grew, before refresh = %d, %v; want %d", size, err, 4*loopMiB)
	}
	if err := l.RefreshCapacity(); err != nil {
		t.Fatalf("RefreshCapacity: %v", err)
	}
	if size, err := l.Size(); err != nil || size != 12*loopMiB {
		t.Fatalf("Size after RefreshCapacity = %d, %v; want %d", size, err, 12*loopMiB)
	}
	// The new space is usable.
	dev, err := os.OpenFile(l.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if _, err := dev.WriteAt(loopPattern(4096, 1), 11*loopMiB); err != nil {
		t.Fatalf("write past the old end: %v", err)
	}
	if err := dev.Sync(); err != nil {
		t.Fatal(err)
	}
	dev.Close()

	if err := l.Detach(); err != nil {
		t.Fatal(err)
	}
	if loopBound(t, l) {
		t.Fatal("still bound after Detach")
	}
	if err := l.RefreshCapacity(); !errors.Is(err, unix.ENXIO) {
		t.Errorf("RefreshCapacity on a detached device: %v, want ENXIO", err)
	}
}

func TestLoopDirectIO(t *testing.T) {
	kerneltest.Require(t)
	// Over a regular file, direct I/O is used where the file system allows
	// O_DIRECT; elsewhere (tmpfs before 6.6) the kernel keeps buffered I/O
	// and the device still works.
	file := kerneltest.SparseFile(t, "backing", 8*loopMiB)
	l := loopAttachT(t, file, devmapper.LoopOptions{DirectIO: true})
	odirect := true
	if fd, err := unix.Open(file, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0); err != nil {
		odirect = false
		t.Logf("%s does not allow O_DIRECT (%v)", file, err)
	} else {
		unix.Close(fd)
	}
	dio := loopSysAttr(t, l, "loop/dio")
	t.Logf("loop over a file: O_DIRECT allowed %v, dio=%s", odirect, dio)
	dev, err := os.OpenFile(l.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := loopPattern(8192, 5)
	if _, err := dev.WriteAt(want, 4096); err != nil {
		t.Fatal(err)
	}
	if err := dev.Sync(); err != nil {
		t.Fatal(err)
	}
	dev.Close()
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[4096:4096+len(want)], want) {
		t.Fatal("the backing file does not hold what was written")
	}

	// A block device always allows direct I/O: a loop over the first loop
	// device must use it, and a loop without the option must not.
	top := loopAttachT(t, l.Path, devmapper.LoopOptions{DirectIO: true})
	if got := loopSysAttr(t, top, "loop/dio"); got != "1" {
		t.Errorf("loop with DirectIO over %s: dio=%q, want 1", l.Path, got)
	}
	if info := loopStatusT(t, top); info.Flags&unix.LO_FLAGS_DIRECT_IO == 0 {
		t.Errorf("loop with DirectIO: lo_flags %#x lack LO_FLAGS_DIRECT_IO", info.Flags)
	}
	plain := loopAttachT(t, l.Path, devmapper.LoopOptions{})
	if got := loopSysAttr(t, plain, "loop/dio"); got != "0" {
		t.Errorf("loop without DirectIO over %s: dio=%q, want 0", l.Path, got)
	}
	buf := make([]byte, len(want))
	tf, err := os.Open(top.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer tf.Close()
	if _, err := tf.ReadAt(buf, 4096); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, want) {
		t.Fatal("the direct-I/O loop does not read what was written below it")
	}
}

func TestLoopReadOnly(t *testing.T) {
	kerneltest.Require(t)
	file := kerneltest.SparseFile(t, "backing", 2*loopMiB)
	if err := os.WriteFile(file, loopPattern(4096, 7), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, 2*loopMiB); err != nil {
		t.Fatal(err)
	}
	l := loopAttachT(t, file, devmapper.LoopOptions{ReadOnly: true})
	if got := loopSysAttr(t, l, "ro"); got != "1" {
		t.Errorf("sysfs ro = %q, want 1", got)
	}
	if info := loopStatusT(t, l); info.Flags&unix.LO_FLAGS_READ_ONLY == 0 {
		t.Errorf("lo_flags %#x lack LO_FLAGS_READ_ONLY", info.Flags)
	}
	got := make([]byte, 4096)
	r, err := os.Open(l.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, loopPattern(4096, 7)) {
		t.Fatal("read-only loop does not read the file's contents")
	}

	fd, err := unix.Open(l.Path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		_, err = unix.Pwrite(fd, make([]byte, 4096), 0)
		unix.Close(fd)
	}
	if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EROFS) && !errors.Is(err, unix.EACCES) {
		t.Fatalf("write to a read-only loop device: %v, want EPERM, EROFS or EACCES", err)
	}
	t.Logf("write to a read-only loop device: %v", err)
	if err := devmapper.Discard(l.Path, 0, 4096); err == nil {
		t.Error("Discard on a read-only loop device succeeded")
	}
}

func TestLoopDetachBusy(t *testing.T) {
	kerneltest.Require(t)
	file := kerneltest.SparseFile(t, "backing", 4*loopMiB)
	l := loopAttachT(t, file, devmapper.LoopOptions{})

	// An exclusive holder (what a dm table or a mounted file system is).
	holder, err := unix.Open(l.Path, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = l.Detach()
	unix.Close(holder)
	if !errors.Is(err, devmapper.ErrBusy) || !errors.Is(err, unix.EBUSY) {
		t.Fatalf("Detach of a held device: %v, want ErrBusy", err)
	}
	var de *devmapper.Error
	if !errors.As(err, &de) || de.Device != l.Path || !strings.Contains(de.Op, "detach") {
		t.Errorf("Detach error %#v does not say detach of %s", err, l.Path)
	}
	if !loopBound(t, l) {
		t.Fatal("a refused Detach unbound the device")
	}
	if err := l.Detach(); err != nil {
		t.Fatalf("Detach after the holder closed: %v", err)
	}
	if loopBound(t, l) {
		t.Fatal("still bound after Detach")
	}
}

func TestLoopDetachHeldByDMTable(t *testing.T) {
	kerneltest.Require(t)
	file := kerneltest.SparseFile(t, "backing", 4*loopMiB)
	l := loopAttachT(t, file, devmapper.LoopOptions{})
	c, err := devmapper.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name := fmt.Sprintf("csi-thin-looptest-%d", os.Getpid())
	if _, err := c.Create(name, ""); err != nil {
		t.Fatal(err)
	}
	removed := false
	defer func() {
		if !removed {
			_ = c.Remove(name, devmapper.RemoveOptions{})
		}
	}()
	table := []devmapper.Target{{Start: 0, Length: 4 * loopMiB / 512, Type: "linear", Params: l.DevNo() + " 0"}}
	if err := c.Load(name, table, false); err != nil {
		t.Fatal(err)
	}
	if err := c.Resume(name, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Detach(); !errors.Is(err, devmapper.ErrBusy) {
		t.Fatalf("Detach under a dm table: %v, want ErrBusy", err)
	}
	if !loopBound(t, l) {
		t.Fatal("a refused Detach unbound the device")
	}
	if err := c.Remove(name, devmapper.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	removed = true
	if err := l.Detach(); err != nil {
		t.Fatalf("Detach after the dm device went: %v", err)
	}
	if loopBound(t, l) {
		t.Fatal("still bound after Detach")
	}
}

func TestLoopDetachDeferredWhileOpen(t *testing.T) {
	kerneltest.Require(t)
	file := kerneltest.SparseFile(t, "backing", 4*loopMiB)
	l := loopAttachT(t, file, devmapper.LoopOptions{})
	// A plain (not exclusive) opener, like udev's blkid: the kernel detaches
	// when it closes.
	opener, err := unix.Open(l.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Detach(); err != nil {
		unix.Close(opener)
		t.Fatalf("Detach with a plain opener: %v", err)
	}
	stillBound := loopBound(t, l)
	unix.Close(opener)
	t.Logf("bound after Detach while another opener had it open: %v", stillBound)
	if loopBound(t, l) {
		t.Fatal("still bound after the last opener closed")
	}
	if _, err := devmapper.FindLoop(file); !errors.Is(err, devmapper.ErrNotFound) {
		t.Fatalf("FindLoop after the deferred detach: %v, want ErrNotFound", err)
	}
}

func TestLoopAutoclear(t *testing.T) {
	kerneltest.Require(t)
	file := kerneltest.SparseFile(t, "backing", 4*loopMiB)
	l := loopAttachT(t, file, devmapper.LoopOptions{Autoclear: true})
	if info := loopStatusT(t, l); info.Flags&unix.LO_FLAGS_AUTOCLEAR == 0 {
		t.Errorf("lo_flags %#x lack LO_FLAGS_AUTOCLEAR", info.Flags)
	}
	if got := loopSysAttr(t, l, "loop/autoclear"); got != "1" {
		t.Errorf("sysfs autoclear = %q, want 1", got)
	}
	// Opened and closed by someone else: still held by the LoopDevice.
	if _, err := devmapper.BlockDeviceSize(l.Path); err != nil {
		t.Fatal(err)
	}
	if !loopBound(t, l) {
		t.Fatal("autoclear device went away while AttachLoop's hold was open")
	}
	if got, err := devmapper.FindLoop(file); err != nil || got.Number != l.Number {
		t.Fatalf("FindLoop = %v, %v", got, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if loopBound(t, l) {
		t.Fatal("autoclear device still bound after Close")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// Without Autoclear, Close does nothing.
	l2 := loopAttachT(t, file, devmapper.LoopOptions{})
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if !loopBound(t, l2) {
		t.Fatal("Close detached a device without autoclear")
	}
}

func TestAttachLoopMissingFile(t *testing.T) {
	kerneltest.Require(t)
	missing := filepath.Join(t.TempDir(), "missing")
	_, err := devmapper.AttachLoop(missing, devmapper.LoopOptions{})
	if !errors.Is(err, devmapper.ErrNotFound) || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("AttachLoop(missing): %v, want ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), missing) {
		t.Errorf("error %q does not name the file", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("AttachLoop created the missing file: %v", err)
	}
}

// loopFreeNumber returns the number LOOP_CTL_GET_FREE gives now.
func loopFreeNumber(t *testing.T) int {
	t.Helper()
	ctl, err := unix.Open("/dev/loop-control", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ctl)
	n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAttachLoopCreatesMissingNode(t *testing.T) {
	kerneltest.Require(t)
	n := loopFreeNumber(t)
	node := fmt.Sprintf("/dev/loop%d", n)
	if err := os.Remove(node); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	file := kerneltest.SparseFile(t, "backing", 2*loopMiB)
	l := loopAttachT(t, file, devmapper.LoopOptions{})
	if l.Path != node {
		t.Fatalf("attached %s, want the free device %s", l.Path, node)
	}
	loopCheckNode(t, l.Path, l.Major, l.Minor)
	if size, err := l.Size(); err != nil || size != 2*loopMiB {
		t.Fatalf("Size = %d, %v", size, err)
	}
}

func TestDeviceNode(t *testing.T) {
	kerneltest.Require(t)
	file := kerneltest.SparseFile(t, "backing", 2*loopMiB)
	l := loopAttachT(t, file, devmapper.LoopOptions{})
	p, err := devmapper.DeviceNode(l.Major, l.Minor)
	if err != nil {
		t.Fatal(err)
	}
	if p != l.Path {
		t.Errorf("DeviceNode(%s) = %s, want %s", l.DevNo(), p, l.Path)
	}
	loopCheckNode(t, p, l.Major, l.Minor)

	// With the node gone (no udev), DeviceNode makes it.
	if err := os.Remove(l.Path); err != nil {
		t.Fatal(err)
	}
	p, err = devmapper.DeviceNode(l.Major, l.Minor)
	if err != nil {
		t.Fatalf("DeviceNode without a node: %v", err)
	}
	if p != l.Path {
		t.Errorf("DeviceNode(%s) = %s, want %s", l.DevNo(), p, l.Path)
	}
	loopCheckNode(t, p, l.Major, l.Minor)
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777&^0o600 != 0 {
		t.Errorf("created node has mode %o, want at most 0600", st.Mode&0o777)
	}

	// A device the kernel does not have.
	if _, err := devmapper.DeviceNode(l.Major, 1<<19+7); !errors.Is(err, devmapper.ErrNotFound) {
		t.Errorf("DeviceNode of a missing device: %v, want ErrNotFound", err)
	}
}

func TestDeviceNodeDM(t *testing.T) {
	kerneltest.Require(t)
	file := kerneltest.SparseFile(t, "backing", 2*loopMiB)
	l := loopAttachT(t, file, devmapper.LoopOptions{})
	c, err := devmapper.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name := fmt.Sprintf("csi-thin-nodetest-%d", os.Getpid())
	dev, err := c.Create(name, "")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Remove(name, devmapper.RemoveOptions{}); err != nil {
			t.Error(err)
		}
	}()
	table := []devmapper.Target{{Start: 0, Length: 2 * loopMiB / 512, Type: "linear", Params: l.DevNo() + " 0"}}
	if err := c.Load(name, table, false); err != nil {
		t.Fatal(err)
	}
	if err := c.Resume(name, 0); err != nil {
		t.Fatal(err)
	}
	p, err := devmapper.DeviceNode(dev.Major, dev.Minor)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("/dev/dm-%d", dev.Minor); p != want {
		t.Errorf("DeviceNode(%s) = %s, want %s", dev, p, want)
	}
	loopCheckNode(t, p, dev.Major, dev.Minor)
	if size, err := devmapper.BlockDeviceSize(p); err != nil || size != 2*loopMiB {
		t.Errorf("BlockDeviceSize(%s) = %d, %v", p, size, err)
	}
}

func TestBlockDiscard(t *testing.T) {
	kerneltest.Require(t)
	const size = 16 * loopMiB
	file := kerneltest.SparseFile(t, "backing", size)
	fill := bytes.Repeat([]byte{0xab}, 4*loopMiB)
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(fill, 2*loopMiB); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	l := loopAttachT(t, file, devmapper.LoopOptions{})
	if got, err := devmapper.BlockDeviceSize(l.Path); err != nil || got != size {
		t.Fatalf("BlockDeviceSize = %d, %v; want %d", got, err, size)
	}

	const off, n = 3 * loopMiB, 256 << 10
	if err := devmapper.Discard(l.Path, off, n); err != nil {
		t.Fatalf("Discard: %v", err)
	}
	got := make([]byte, 4*loopMiB)
	if _, err := f.ReadAt(got, 2*loopMiB); err != nil {
		t.Fatal(err)
	}
	for i, b := range got {
		in := int64(2*loopMiB+i) >= off && int64(2*loopMiB+i) < off+n
		if in && b != 0 {
			t.Fatalf("byte %d of the discarded range is %#x, want 0", 2*loopMiB+i-off, b)
		}
		if !in && b != 0xab {
			t.Fatalf("byte at %d, outside the discarded range, is %#x, want 0xab", 2*loopMiB+i, b)
		}
	}
	// The device reads zeros there too.
	dev, err := os.Open(l.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	buf := make([]byte, n)
	if _, err := dev.ReadAt(buf, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, make([]byte, n)) {
		t.Error("the device does not read zeros in the discarded range")
	}

	// Past the end, the kernel refuses.
	err = devmapper.Discard(l.Path, size-4096, 8192)
	if !errors.Is(err, unix.EINVAL) {
		t.Errorf("Discard past the end: %v, want EINVAL", err)
	}
	var de *devmapper.Error
	if !errors.As(err, &de) || de.Device != l.Path {
		t.Errorf("Discard error %v does not name %s", err, l.Path)
	}
	// Zero length is fine and discards nothing.
	if err := devmapper.Discard(l.Path, 0, 0); err != nil {
		t.Errorf("Discard of nothing: %v", err)
	}
	// A regular file is not a block device.
	if err := devmapper.Discard(file, 0, 4096); !errors.Is(err, unix.ENOTBLK) {
		t.Errorf("Discard on a regular file: %v, want ENOTBLK", err)
	}
}

// Concurrent attaches race for the same free device: each must end up on
// its own.
func TestAttachLoopConcurrent(t *testing.T) {
	kerneltest.Require(t)
	const n = 16
	files := make([]string, n)
	for i := range files {
		files[i] = kerneltest.SparseFile(t, fmt.Sprintf("backing%d", i), loopMiB)
	}
	devs := make([]*devmapper.LoopDevice, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { devs[i], errs[i] = devmapper.AttachLoop(files[i], devmapper.LoopOptions{}) })
	}
	wg.Wait()
	seen := map[int]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("AttachLoop %d: %v", i, errs[i])
			continue
		}
		l := devs[i]
		t.Cleanup(func() {
			if err := l.Detach(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
		if seen[l.Number] {
			t.Errorf("loop%d handed out twice", l.Number)
		}
		seen[l.Number] = true
		if got := loopSysAttr(t, l, "loop/backing_file"); got != files[i] {
			t.Errorf("%s backs %q, want %q", l.Path, got, files[i])
		}
	}
}
