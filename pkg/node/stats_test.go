package node

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	mount "k8s.io/mount-utils"
)

func TestVolumeUsage(t *testing.T) {
	dir := t.TempDir()
	mounted := filepath.Join(dir, "mounted")
	plain := filepath.Join(dir, "plain")
	for _, d := range []string{mounted, plain} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	s := testServer(t, mount.NewFakeMounter([]mount.MountPoint{{Device: device, Path: mounted, Type: "ext4"}}))
	tests := []struct {
		name string
		path string
		want codes.Code
	}{
		{"mounted filesystem", mounted, codes.OK},
		{"directory with nothing mounted", plain, codes.NotFound},
		{"missing path", filepath.Join(dir, "missing"), codes.NotFound},
		{"relative missing path", "some/path", codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			usage, err := s.volumeUsage("vol-1", tt.path)
			wantCode(t, err, tt.want)
			if tt.want != codes.OK {
				return
			}
			if len(usage) != 2 {
				t.Fatalf("usage %v, want bytes and inodes", usage)
			}
			for _, u := range usage {
				if u.GetTotal() <= 0 || u.GetAvailable() < 0 || u.GetUsed() < 0 || u.GetAvailable() > u.GetTotal() {
					t.Errorf("usage %v", u)
				}
			}
			if usage[0].GetUnit() != csi.VolumeUsage_BYTES || usage[1].GetUnit() != csi.VolumeUsage_INODES {
				t.Errorf("units %s %s, want BYTES INODES", usage[0].GetUnit(), usage[1].GetUnit())
			}
		})
	}
}

func TestIsBlockDevice(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want bool
	}{
		{file, false},
		{filepath.Dir(file), false},
		{"/dev/null", false}, // a character device
	}
	for _, tt := range tests {
		fi, err := os.Stat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := isBlockDevice(fi); got != tt.want {
			t.Errorf("isBlockDevice(%s) = %t, want %t", tt.path, got, tt.want)
		}
	}
}

func TestSameDevice(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "link")
	if err := os.Symlink("/dev/null", link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		a, b string
		want bool
	}{
		{"/dev/dm-3", "/dev/dm-3", true},
		{"/dev/dm-3", "/dev/dm-3/", true},
		{"/dev/dm-3", "/dev/dm-4", false},
		{"", "", false},
		{link, "/dev/null", true},
		{"udev", "/dev/dm-3", false},
	}
	for _, tt := range tests {
		if got := sameDevice(tt.a, tt.b); got != tt.want {
			t.Errorf("sameDevice(%q, %q) = %t, want %t", tt.a, tt.b, got, tt.want)
		}
	}
}
