// Package faultdev gives real-kernel tests block devices that fail on
// demand, as the kernel's own device-mapper test suite builds them: a dm
// device over a loop device (on a sparse file) or a block device, whose
// table a reload switches between healthy (linear) and failing (error,
// flakey) or slow (delay) while the pool on it keeps running.
package faultdev

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/csi-thin/csi-thin/internal/kerneltest"
	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// Mode is what a Device does to the I/O sent to it.
type Mode struct {
	name   string
	target func(backing string, sectors uint64) dm.Target
}

func (m Mode) String() string { return m.name }

// Healthy passes every I/O to the backing device (the linear target).
var Healthy = Mode{"healthy", func(b string, n uint64) dm.Target {
	return dm.Target{Length: n, Type: "linear", Params: b + " 0"}
}}

// Failing fails every I/O with EIO (the error target), as a dead disk does.
var Failing = Mode{"failing", func(_ string, n uint64) dm.Target {
	return dm.Target{Length: n, Type: "error"}
}}

// FailingWrites passes reads and fails every write, flushes included
// (dm-flakey, down all the time, with error_writes), as a disk that went
// read-only does.
var FailingWrites = Mode{"failing-writes", func(b string, n uint64) dm.Target {
	return dm.Target{Length: n, Type: "flakey", Params: b + " 0 0 1 1 error_writes"}
}}

// Flaky passes I/O for up and then fails writes for down, over and over
// (dm-flakey with error_writes).
func Flaky(up, down time.Duration) Mode {
	return Mode{fmt.Sprintf("flaky(up %v, down %v)", up, down), func(b string, n uint64) dm.Target {
		return dm.Target{Length: n, Type: "flakey",
			Params: fmt.Sprintf("%s 0 %d %d 1 error_writes", b, secs(up), secs(down))}
	}}
}

// Delayed holds every read and write for d before passing it on
// (dm-delay).
func Delayed(d time.Duration) Mode {
	return Mode{fmt.Sprintf("delayed(%v)", d), func(b string, n uint64) dm.Target {
		return dm.Target{Length: n, Type: "delay", Params: fmt.Sprintf("%s 0 %d", b, d.Milliseconds())}
	}}
}

func secs(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

// Device is a dm device whose mode a test switches.
type Device struct {
	ctl     *dm.Control
	Name    string // dm name
	Path    string // device node
	backing string // major:minor of the device under it
	sectors uint64
	mode    Mode
}

// New makes a healthy Device named name over the block device at backing;
// the test's cleanup removes it.
func New(t testing.TB, name, backing string) *Device {
	t.Helper()
	ctl, err := dm.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	size, err := dm.BlockDeviceSize(backing)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(backing)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := sysStat(fi)
	if !ok {
		t.Fatalf("%s is not a block device", backing)
	}
	d := &Device{ctl: ctl, Name: name, backing: st.String(), sectors: size / 512, mode: Healthy}
	dev, err := ctl.Activate(name, "", []dm.Target{Healthy.target(d.backing, d.sectors)}, dm.ActivateOptions{})
	if err != nil {
		t.Fatalf("create fault device %s over %s: %v", name, backing, err)
	}
	t.Cleanup(func() {
		if err := ctl.Remove(name, dm.RemoveOptions{}); err != nil {
			t.Errorf("remove fault device %s: %v", name, err)
		}
	})
	if d.Path, err = dm.DeviceNode(dev.Major, dev.Minor); err != nil {
		t.Fatal(err)
	}
	return d
}

// OnSparseFile makes a healthy Device named name over a loop device on a
// sparse file of size bytes in the test's temporary directory. It skips
// the test where the kernel has no device-mapper (see kerneltest.Require).
func OnSparseFile(t testing.TB, name string, size int64) *Device {
	t.Helper()
	kerneltest.Require(t)
	file := filepath.Join(t.TempDir(), name+".img")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, size); err != nil {
		t.Fatal(err)
	}
	l, err := dm.AttachLoop(file, dm.LoopOptions{})
	if err != nil {
		t.Fatalf("attach a loop device to %s: %v", file, err)
	}
	t.Cleanup(func() {
		if err := l.Detach(); err != nil {
			t.Errorf("detach %s: %v", l.Path, err)
		}
	})
	return New(t, name, l.Path)
}

// Set switches the device to mode by a table reload: load, suspend
// (flushing what is in flight), resume.
func (d *Device) Set(mode Mode) error {
	err := d.ctl.Reload(d.Name, []dm.Target{mode.target(d.backing, d.sectors)}, dm.ActivateOptions{})
	if err != nil {
		return fmt.Errorf("switch fault device %s from %s to %s: %w", d.Name, d.mode, mode, err)
	}
	d.mode = mode
	return nil
}

// MustSet is Set, failing the test on an error.
func (d *Device) MustSet(t testing.TB, mode Mode) {
	t.Helper()
	if err := d.Set(mode); err != nil {
		t.Fatal(err)
	}
}

// Mode is the device's mode.
func (d *Device) Mode() Mode { return d.mode }

// Backing is the major:minor of the device under it.
func (d *Device) Backing() string { return d.backing }

// sysStat is the device number of a block device node.
func sysStat(fi os.FileInfo) (dm.Dev, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return dm.Dev{}, false
	}
	return dm.DevFromUint64(st.Rdev), true
}

// IsHealthy reports whether the device passes I/O through untouched.
func (d *Device) IsHealthy() bool { return d.mode.name == Healthy.name }
