package devmapper

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/csi-thin/csi-thin/internal/kerneltest"
)

func TestLoopRejectsEmptyPaths(t *testing.T) {
	var l LoopDevice
	tests := []struct {
		name string
		call func() error
	}{
		{"AttachLoop", func() error { _, err := AttachLoop("", LoopOptions{}); return err }},
		{"AttachLoop read-only", func() error { _, err := AttachLoop("", LoopOptions{ReadOnly: true}); return err }},
		{"FindLoop", func() error { _, err := FindLoop(""); return err }},
		{"Detach", l.Detach},
		{"RefreshCapacity", l.RefreshCapacity},
		{"Size", func() error { _, err := l.Size(); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("%s with an empty path: %v, want ErrInvalidArgument", tt.name, err)
			}
		})
	}
}

// AttachLoop looks at the file before it touches /dev/loop-control, so
// these need no root.
func TestAttachLoopBadFiles(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name  string
		file  string
		opts  LoopOptions
		want  error
		errno unix.Errno
	}{
		{"missing", missing, LoopOptions{}, ErrNotFound, unix.ENOENT},
		{"missing read-only", missing, LoopOptions{ReadOnly: true}, ErrNotFound, unix.ENOENT},
		{"missing in a missing directory", filepath.Join(missing, "x"), LoopOptions{}, ErrNotFound, unix.ENOENT},
		{"directory", dir, LoopOptions{}, nil, unix.EISDIR},
		{"directory read-only", dir, LoopOptions{ReadOnly: true}, ErrInvalidArgument, 0},
		{"character device", "/dev/null", LoopOptions{}, ErrInvalidArgument, 0},
		{"character device read-only", "/dev/null", LoopOptions{ReadOnly: true}, ErrInvalidArgument, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := AttachLoop(tt.file, tt.opts)
			if err == nil {
				l.Detach()
				t.Fatalf("AttachLoop(%s) attached %s", tt.file, l.Path)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("AttachLoop(%s): %v, want %v", tt.file, err, tt.want)
			}
			if tt.errno != 0 && !errors.Is(err, tt.errno) {
				t.Errorf("AttachLoop(%s): %v, want errno %v", tt.file, err, tt.errno)
			}
			if !strings.Contains(err.Error(), tt.file) {
				t.Errorf("error %q does not name %s", err, tt.file)
			}
		})
	}
}

func TestFindLoopMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	_, err := FindLoop(missing)
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("FindLoop(missing): %v, want ErrNotFound from ENOENT", err)
	}
}

// A file made just now backs no loop device, whatever this machine has
// attached and whether or not the test can open /dev/loopN.
func TestFindLoopUnbackedFileOnThisMachine(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := FindLoop(file)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("FindLoop: %v, want ErrNotFound", err)
	}
	var de *Error
	if !errors.As(err, &de) || de.Device != file || !errors.Is(err, unix.ENXIO) {
		t.Fatalf("FindLoop error %#v, want an *Error for %s with ENXIO", err, file)
	}
}

// fakeLoop describes /sys/class/block/loopN in a fake sysfs.
type fakeLoop struct {
	name    string // loop0, loop0p1, ...
	dev     string // contents of dev
	backing string // contents of loop/backing_file; "" for an unbound device
}

func makeFakeLoops(t *testing.T, sys string, loops []fakeLoop) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(sys, "class", "block"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range loops {
		d := filepath.Join("class", "block", l.name)
		writeFakeFile(t, sys, filepath.Join(d, "dev"), l.dev+"\n")
		if l.backing != "" {
			writeFakeFile(t, sys, filepath.Join(d, "loop", "backing_file"), l.backing+"\n")
		}
	}
}

// With a fake sysfs and an empty /dev, FindLoop cannot open any device
// and compares the backing files sysfs names.
func TestFindLoopInSysfs(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	other := filepath.Join(dir, "other")
	for _, p := range []string{file, other} {
		if err := os.WriteFile(p, []byte(p), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	// Minors far from any real loop device, in case a node is made.
	tests := []struct {
		name     string
		noSysfs  bool
		loops    []fakeLoop
		query    string
		wantN    int // -1: ErrNotFound
		wantDev  string
		wantFile string
	}{
		{name: "no class/block", noSysfs: true, query: file, wantN: -1},
		{name: "no loop devices", loops: []fakeLoop{{"vda", "253:0", ""}, {"zram0", "252:0", ""}}, query: file, wantN: -1},
		{name: "all unbound", loops: []fakeLoop{{"loop0", "7:900", ""}, {"loop1", "7:901", ""}}, query: file, wantN: -1},
		{name: "another file", loops: []fakeLoop{{"loop0", "7:900", other}}, query: file, wantN: -1},
		{name: "deleted backing file", loops: []fakeLoop{{"loop0", "7:900", file + " (deleted)"}}, query: file, wantN: -1},
		{name: "partition only", loops: []fakeLoop{{"loop3p1", "259:900", file}}, query: file, wantN: -1},
		{
			name:  "found",
			loops: []fakeLoop{{"loop0", "7:900", other}, {"loop1", "7:901", ""}, {"loop2", "7:902", file}},
			query: file, wantN: 2, wantDev: "7:902", wantFile: file,
		},
		{
			name:  "found by symlink",
			loops: []fakeLoop{{"loop2", "7:902", file}},
			query: link, wantN: 2, wantDev: "7:902", wantFile: file,
		},
		{
			name:  "sysfs names a symlink to it",
			loops: []fakeLoop{{"loop5", "7:905", link}},
			query: file, wantN: 5, wantDev: "7:905", wantFile: link,
		},
		{
			name:  "lowest number wins, numerically",
			loops: []fakeLoop{{"loop10", "7:910", file}, {"loop9", "7:909", file}, {"loop100", "7:999", file}},
			query: file, wantN: 9, wantDev: "7:909", wantFile: file,
		},
		{
			name:  "no dev file: major 7, minor N",
			loops: []fakeLoop{{"loop4", "", file}},
			query: file, wantN: 4, wantDev: "7:4", wantFile: file,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sys, dev := fakeBlockRoots(t)
			if !tt.noSysfs {
				makeFakeLoops(t, sys, tt.loops)
			}
			got, err := FindLoop(tt.query)
			if tt.wantN < 0 {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("FindLoop = %+v, %v; want ErrNotFound", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("FindLoop: %v", err)
			}
			if got.Number != tt.wantN || got.DevNo() != tt.wantDev || got.BackingFile != tt.wantFile ||
				got.Path != filepath.Join(dev, filepath.Base(got.Path)) || filepath.Base(got.Path) != "loop"+strconv.Itoa(tt.wantN) {
				t.Fatalf("FindLoop = %+v, want loop%d (%s) backed by %s", got, tt.wantN, tt.wantDev, tt.wantFile)
			}
		})
	}
}

func TestLoopNumbers(t *testing.T) {
	sys, _ := fakeBlockRoots(t)
	var loops []fakeLoop
	for _, name := range []string{"loop10", "loop2", "loop0p1", "loopx", "loop-1", "loop02", "loop", "vda", "loop0", "dm-0"} {
		loops = append(loops, fakeLoop{name: name, dev: "1:1"})
	}
	makeFakeLoops(t, sys, loops)
	got, err := loopNumbers()
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 2, 10}; !slices.Equal(got, want) {
		t.Fatalf("loopNumbers = %v, want %v", got, want)
	}
}

func TestParseDevNo(t *testing.T) {
	tests := []struct {
		in           string
		major, minor uint32
		ok           bool
	}{
		{"7:0", 7, 0, true},
		{"253:12", 253, 12, true},
		{"259:1048575", 259, 1048575, true},
		{"4294967295:4294967295", 1<<32 - 1, 1<<32 - 1, true},
		{"4294967296:0", 0, 0, false},
		{"7", 0, 0, false},
		{"7:", 0, 0, false},
		{":7", 0, 0, false},
		{"7:0:1", 0, 0, false},
		{"-1:0", 0, 0, false},
		{"a:b", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		major, minor, ok := parseDevNo(tt.in)
		if major != tt.major || minor != tt.minor || ok != tt.ok {
			t.Errorf("parseDevNo(%q) = %d, %d, %v; want %d, %d, %v", tt.in, major, minor, ok, tt.major, tt.minor, tt.ok)
		}
	}
}

func TestLoopDevNo(t *testing.T) {
	tests := []struct {
		l    LoopDevice
		want string
	}{
		{LoopDevice{Major: 7, Minor: 0}, "7:0"},
		{LoopDevice{Major: 7, Minor: 1234}, "7:1234"},
		{LoopDevice{Major: 259, Minor: 3}, "259:3"},
	}
	for _, tt := range tests {
		if got := tt.l.DevNo(); got != tt.want {
			t.Errorf("DevNo() = %q, want %q", got, tt.want)
		}
	}
}

// TestAttachLoopLegacyIoctls takes the path of kernels before 5.8, which
// have no LOOP_CONFIGURE: LOOP_SET_FD, LOOP_SET_STATUS64 and
// LOOP_SET_DIRECT_IO. It needs root and a real kernel.
func TestAttachLoopLegacyIoctls(t *testing.T) {
	kerneltest.Require(t)
	loopTryConfigure = false
	t.Cleanup(func() { loopTryConfigure = true })

	sysAttr := func(l *LoopDevice, name string) string {
		b, err := os.ReadFile(filepath.Join("/sys/class/block", filepath.Base(l.Path), name))
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	attach := func(file string, opts LoopOptions) *LoopDevice {
		l, err := AttachLoop(file, opts)
		if err != nil {
			t.Fatalf("AttachLoop(%s, %+v): %v", file, opts, err)
		}
		t.Cleanup(func() {
			if err := l.Detach(); err != nil && !errors.Is(err, ErrNotFound) {
				t.Errorf("cleanup: %v", err)
			}
		})
		if got := sysAttr(l, "loop/backing_file"); got != file {
			t.Fatalf("sysfs backing_file = %q, want %q", got, file)
		}
		return l
	}
	flags := func(l *LoopDevice) uint32 {
		fd, err := unix.Open(l.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		info, err := unix.IoctlLoopGetStatus64(fd)
		if err != nil {
			t.Fatal(err)
		}
		if got := unix.ByteSliceToString(info.File_name[:]); got != l.BackingFile {
			t.Errorf("lo_file_name = %q, want %q", got, l.BackingFile)
		}
		return info.Flags
	}
	file := kerneltest.SparseFile(t, "backing", 4<<20)

	l := attach(file, LoopOptions{})
	if f := flags(l); f&(unix.LO_FLAGS_READ_ONLY|unix.LO_FLAGS_AUTOCLEAR|unix.LO_FLAGS_DIRECT_IO) != 0 {
		t.Errorf("plain attach: lo_flags %#x", f)
	}
	if size, err := l.Size(); err != nil || size != 4<<20 {
		t.Errorf("Size = %d, %v", size, err)
	}
	if _, err := FindLoop(file); err != nil {
		t.Errorf("FindLoop: %v", err)
	}

	ro := attach(file, LoopOptions{ReadOnly: true})
	if f := flags(ro); f&unix.LO_FLAGS_READ_ONLY == 0 || sysAttr(ro, "ro") != "1" {
		t.Errorf("ReadOnly attach: lo_flags %#x, sysfs ro %q", f, sysAttr(ro, "ro"))
	}

	// Over a block device, LOOP_SET_DIRECT_IO must succeed.
	dio := attach(l.Path, LoopOptions{DirectIO: true})
	if f := flags(dio); f&unix.LO_FLAGS_DIRECT_IO == 0 || sysAttr(dio, "loop/dio") != "1" {
		t.Errorf("DirectIO attach: lo_flags %#x, sysfs dio %q", f, sysAttr(dio, "loop/dio"))
	}
	if err := dio.Detach(); err != nil {
		t.Fatal(err)
	}

	ac := attach(file, LoopOptions{Autoclear: true})
	if f := flags(ac); f&unix.LO_FLAGS_AUTOCLEAR == 0 {
		t.Errorf("Autoclear attach: lo_flags %#x", f)
	}
	if err := ac.Close(); err != nil {
		t.Fatal(err)
	}
	if sysAttr(ac, "loop/backing_file") != "" {
		t.Error("autoclear device still bound after Close")
	}
}
