package thinmeta_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/csi-thin/csi-thin/pkg/thinmeta"
)

// Only a regular file may be read through the page cache, and only when
// its filesystem refuses O_DIRECT.
func TestBufferedFallback(t *testing.T) {
	tests := []struct {
		name string
		err  error
		mode os.FileMode
		want bool
	}{
		{"regular file, O_DIRECT refused", unix.EINVAL, 0o644, true},
		{"regular file, refused at open", &fs.PathError{Op: "open", Path: "x", Err: unix.EINVAL}, 0o600, true},
		{"regular file, refused at read", fmt.Errorf("read: %w", unix.EINVAL), 0o600, true},
		{"block device, O_DIRECT refused", unix.EINVAL, os.ModeDevice, false},
		{"character device", unix.EINVAL, os.ModeDevice | os.ModeCharDevice, false},
		{"regular file, no permission", unix.EACCES, 0o600, false},
		{"regular file, I/O error", unix.EIO, 0o600, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := thinmeta.BufferedFallback(tt.err, tt.mode); got != tt.want {
				t.Fatalf("BufferedFallback(%v, %v) = %v, want %v", tt.err, tt.mode, got, tt.want)
			}
		})
	}
}

// A file on a filesystem that takes O_DIRECT is read with it, and reads
// back what was written.
func TestOpenFile(t *testing.T) {
	w := newImageWriter(t)
	w.finish(superblock{devices: []device{{1, w.mappingTree(map[uint64]uint64{3: 4}, 10)}}}, 0)
	r := openReader(t, w.file()) // on the test's temporary directory
	t.Logf("O_DIRECT: %v", r.DirectIO())
	checkExtents(t, "mappings", mappings(t, openTree(t, r, 0), 1, 0), []extent{{Block: 3, Len: 1}})

	if _, err := thinmeta.Open(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open of a missing file: got %v, want ErrNotExist", err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r = openReader(t, empty)
	if _, err := r.Superblock(); !errors.Is(err, thinmeta.ErrCorrupt) {
		t.Fatalf("superblock of an empty file: got %v, want ErrCorrupt", err)
	}
}
