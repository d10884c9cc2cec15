package devmapper

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeBlockRoots points sysfs and /dev at empty directories for the test.
func fakeBlockRoots(t *testing.T) (sys, dev string) {
	t.Helper()
	sys, dev = filepath.Join(t.TempDir(), "sys"), filepath.Join(t.TempDir(), "dev")
	for _, d := range []string{sys, dev} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	oldSys, oldDev := blockSysRoot, blockDevRoot
	blockSysRoot, blockDevRoot = sys, dev
	t.Cleanup(func() { blockSysRoot, blockDevRoot = oldSys, oldDev })
	return sys, dev
}

// writeFakeFile writes a file under root, making its directories.
func writeFakeFile(t *testing.T, root, rel, content string) string {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDiscardRejectsBadArguments(t *testing.T) {
	// The path does not exist: an error other than ErrInvalidArgument
	// would mean the arguments reached the open or the ioctl.
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name           string
		path           string
		offset, length uint64
	}{
		{"empty path", "", 0, 512},
		{"offset 1", missing, 1, 512},
		{"offset 511", missing, 511, 512},
		{"offset 4097", missing, 4097, 4096},
		{"length 1", missing, 0, 1},
		{"length 4095", missing, 4096, 4095},
		{"overflow", missing, 1<<64 - 512, 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Discard(tt.path, tt.offset, tt.length)
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("Discard(%q, %d, %d) = %v, want ErrInvalidArgument", tt.path, tt.offset, tt.length, err)
			}
		})
	}
}

func TestBlockCallsOnWhatIsNotABlockDevice(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	calls := []struct {
		name string
		call func(path string) error
	}{
		{"BlockDeviceSize", func(p string) error { _, err := BlockDeviceSize(p); return err }},
		{"Discard", func(p string) error { return Discard(p, 0, 4096) }},
		{"Discard zero length", func(p string) error { return Discard(p, 0, 0) }},
		{"LoopDevice.Size", func(p string) error { _, err := (&LoopDevice{Path: p}).Size(); return err }},
		{"LoopDevice.RefreshCapacity", func(p string) error { return (&LoopDevice{Path: p}).RefreshCapacity() }},
	}
	paths := []struct {
		name    string
		path    string
		want    error
		wantErr unix.Errno
	}{
		{"empty", "", ErrInvalidArgument, 0},
		{"missing", missing, ErrNotFound, unix.ENOENT},
		{"regular file", regular, nil, unix.ENOTBLK},
		{"directory", dir, nil, 0}, // EISDIR for a write open, ENOTBLK for a read
	}
	for _, c := range calls {
		for _, p := range paths {
			t.Run(c.name+"/"+p.name, func(t *testing.T) {
				err := c.call(p.path)
				if err == nil {
					t.Fatal("no error")
				}
				if p.want != nil && !errors.Is(err, p.want) {
					t.Errorf("error %v, want %v", err, p.want)
				}
				if p.wantErr != 0 && !errors.Is(err, p.wantErr) {
					t.Errorf("error %v, want errno %v", err, p.wantErr)
				}
				if p.path == "" {
					return
				}
				var de *Error
				if !errors.As(err, &de) {
					t.Fatalf("error %v (%T) is not an *Error", err, err)
				}
				if de.Device != p.path || !strings.Contains(err.Error(), p.path) {
					t.Errorf("error %q does not name %s", err, p.path)
				}
				if !errors.Is(err, unix.ENOTBLK) && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EISDIR) {
					t.Errorf("error %v has an unexpected cause", err)
				}
			})
		}
	}
}

func TestDeviceNodeFromSysfs(t *testing.T) {
	t.Run("no such device", func(t *testing.T) {
		fakeBlockRoots(t)
		_, err := DeviceNode(253, 4)
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("DeviceNode of a device sysfs does not have: %v, want ErrNotFound", err)
		}
		if !strings.Contains(err.Error(), "253:4") {
			t.Errorf("error %q does not name 253:4", err)
		}
	})
	t.Run("no DEVNAME and no /dev/block link", func(t *testing.T) {
		sys, _ := fakeBlockRoots(t)
		writeFakeFile(t, sys, "dev/block/253:4/uevent", "MAJOR=253\nMINOR=4\nDEVTYPE=disk\n")
		_, err := DeviceNode(253, 4)
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("DeviceNode: %v, want ErrNotFound", err)
		}
	})
	for _, bad := range []string{"../etc/passwd", "/etc/passwd", "a/../../b", "DEVNAME="} {
		t.Run("unusable DEVNAME "+bad, func(t *testing.T) {
			sys, _ := fakeBlockRoots(t)
			name := strings.TrimPrefix(bad, "DEVNAME=")
			writeFakeFile(t, sys, "dev/block/253:4/uevent", "MAJOR=253\nMINOR=4\nDEVNAME="+name+"\n")
			_, err := DeviceNode(253, 4)
			if err == nil || errors.Is(err, ErrNotFound) {
				t.Fatalf("DeviceNode with DEVNAME %q: %v, want an error that is not ErrNotFound", name, err)
			}
		})
	}
	t.Run("DEVNAME taken by a regular file", func(t *testing.T) {
		sys, dev := fakeBlockRoots(t)
		writeFakeFile(t, sys, "dev/block/253:4/uevent", "MAJOR=253\nMINOR=4\nDEVNAME=dm-4\nDEVTYPE=disk\n")
		f := writeFakeFile(t, dev, "dm-4", "not a device")
		_, err := DeviceNode(253, 4)
		if !errors.Is(err, unix.ENOTBLK) {
			t.Fatalf("DeviceNode: %v, want ENOTBLK", err)
		}
		if b, err := os.ReadFile(f); err != nil || string(b) != "not a device" {
			t.Fatalf("DeviceNode touched %s: %q, %v", f, b, err)
		}
	})
}

func TestBlockDevName(t *testing.T) {
	tests := []struct {
		uevent string
		want   string
	}{
		{"MAJOR=253\nMINOR=3\nDEVNAME=dm-3\nDEVTYPE=disk\nDISKSEQ=12\n", "dm-3"},
		{"DEVNAME=loop7", "loop7"},
		{"MAJOR=104\nDEVNAME=cciss/c0d0\n", "cciss/c0d0"},
		{"MAJOR=8\nMINOR=0\n", ""},
		{"", ""},
		{"XDEVNAME=sda\n", ""},
	}
	for _, tt := range tests {
		sys, _ := fakeBlockRoots(t)
		writeFakeFile(t, sys, "dev/block/1:2/uevent", tt.uevent)
		got, err := blockDevName("1:2")
		if err != nil || got != tt.want {
			t.Errorf("blockDevName for uevent %q = %q, %v; want %q", tt.uevent, got, err, tt.want)
		}
	}
}

// TestDeviceNodeOnThisMachine asks for a block device the running kernel
// has, whatever it is.
func TestDeviceNodeOnThisMachine(t *testing.T) {
	ents, err := os.ReadDir("/sys/dev/block")
	if err != nil || len(ents) == 0 {
		t.Skipf("no block devices in /sys/dev/block (%v)", err)
	}
	major, minor, ok := parseDevNo(ents[0].Name())
	if !ok {
		t.Fatalf("cannot parse %q", ents[0].Name())
	}
	// Only where a node exists: this test must not make one in the real
	// /dev (the kernel tests do that).
	devname, err := blockDevName(ents[0].Name())
	if err != nil {
		t.Fatal(err)
	}
	_, err1 := os.Stat(filepath.Join("/dev", devname))
	_, err2 := os.Stat(filepath.Join("/dev/block", ents[0].Name()))
	if devname == "" || err1 != nil && err2 != nil {
		t.Skipf("no node in /dev for %s (DEVNAME %q)", ents[0].Name(), devname)
	}
	p, err := DeviceNode(major, minor)
	if err != nil {
		t.Fatalf("DeviceNode(%d, %d): %v", major, minor, err)
	}
	if want := filepath.Join("/dev", devname); err1 == nil && p != want {
		t.Errorf("DeviceNode(%d, %d) = %s, want %s", major, minor, p, want)
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != unix.Mkdev(major, minor) {
		t.Fatalf("DeviceNode(%d, %d) = %s, which is mode %o rdev %d:%d", major, minor, p, st.Mode,
			unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
}
