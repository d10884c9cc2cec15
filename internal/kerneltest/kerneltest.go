// Package kerneltest holds what csi-thin's real-kernel tests share: the check
// that the running kernel has device-mapper (so that a plain `go test` on a
// machine without it skips them and says how to run them), and sparse
// backing files in a test's temporary directory.
package kerneltest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Require skips the test unless it runs as root on a kernel with
// /dev/mapper/control. `make test-kernel` runs such tests inside a
// User-Mode Linux kernel that has dm-thin.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root and a kernel with device-mapper: run `make test-kernel`")
	}
	if _, err := os.Stat("/dev/mapper/control"); err != nil {
		t.Skip("needs a kernel with device-mapper (/dev/mapper/control is missing): run `make test-kernel`")
	}
}

// SparseFile creates a sparse file of size bytes in the test's temporary
// directory and returns its path.
func SparseFile(t testing.TB, name string, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

// ScratchDir is a fresh directory for a test that writes more than the
// kernel's memory holds: under KERNEL_SCRATCH_DIR, a directory on disk that
// test/kernel/test.sh passes in and removes afterwards, or the test's
// temporary directory when it is unset. It is removed when the test ends.
func ScratchDir(t testing.TB) string {
	t.Helper()
	base := os.Getenv("KERNEL_SCRATCH_DIR")
	if base == "" {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp(base, "scratch-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// BlockDevices returns the block devices the kernel harness attached for
// this run (test/kernel/run -b FILE), or skips the test when there are
// fewer than n.
func BlockDevices(t testing.TB, n int) []string {
	t.Helper()
	devs := strings.Fields(os.Getenv("KERNEL_BLOCK_DEVICES"))
	if len(devs) < n {
		t.Skipf("needs %d block devices from the kernel harness (test/kernel/run -b FILE), has %d", n, len(devs))
	}
	return devs[:n]
}

// OpenFiles counts the process's open files on path, such as the
// device-mapper control node, to show that something closed what it
// opened.
func OpenFiles(t testing.TB, path string) int {
	t.Helper()
	links, err := filepath.Glob("/proc/self/fd/*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && target == path {
			n++
		}
	}
	return n
}
