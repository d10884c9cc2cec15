package node

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	mount "k8s.io/mount-utils"
)

func TestStageMountOptions(t *testing.T) {
	tests := []struct {
		name   string
		cap    *csi.VolumeCapability
		fsType string
		want   []string
	}{
		{"ext4 without flags", mountCap(rwo, ""), "ext4", nil},
		{"ext4 keeps the flags", mountCap(rwo, "ext4", "noatime", "discard"), "ext4", []string{"noatime", "discard"}},
		{"xfs adds nouuid", mountCap(rwo, "xfs"), "xfs", []string{"nouuid"}},
		{"xfs keeps the flags", mountCap(rwo, "xfs", "noatime"), "xfs", []string{"noatime", "nouuid"}},
		{"xfs does not repeat nouuid", mountCap(rwo, "xfs", "nouuid"), "xfs", []string{"nouuid"}},
		{"xfs from the volume context", mountCap(rwo, ""), "xfs", []string{"nouuid"}},
		{"block", blockCap(rwo), "ext4", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := stageMountOptions(tt.cap, tt.fsType)
			if !slices.Equal(got, tt.want) {
				t.Errorf("options %q, want %q", got, tt.want)
			}
		})
	}
	// The capability's flags are not changed.
	c := mountCap(rwo, "xfs", "noatime")
	stageMountOptions(c, "xfs")
	if f := c.GetMount().GetMountFlags(); !slices.Equal(f, []string{"noatime"}) {
		t.Errorf("capability's flags became %q", f)
	}
}

const device = "/dev/dm-7"

func TestStageFilesystem(t *testing.T) {
	type setup struct {
		mounted []mount.MountPoint // before; the staging path is "STAGING"
		fsType  string
		opts    []string
		mkfs    []string
	}
	tests := []struct {
		name      string
		setup     setup
		runs      func(staging string) []run
		want      codes.Code // OK, or a status code; plain: a plain error
		wantMount *mount.MountPoint
	}{
		{
			name:  "blank ext4 is formatted, mounted and grown",
			setup: setup{fsType: "ext4", mkfs: []string{"-E", "nodiscard"}},
			runs: func(staging string) []run {
				return append([]run{
					{argv: blkidArgv(device), err: exitStatus(2)},
					{argv: []string{"mkfs.ext4", "-E", "nodiscard", "-F", "-m0", device}},
				}, growRuns(device, staging, "ext4")...)
			},
			wantMount: &mount.MountPoint{Device: device, Type: "ext4"},
		},
		{
			name:  "formatted xfs is checked, mounted with nouuid and grown",
			setup: setup{fsType: "xfs", opts: []string{"nouuid"}},
			runs: func(staging string) []run {
				return append([]run{
					{argv: blkidArgv(device), out: "TYPE=xfs\n"},
					{argv: []string{"fsck", "-a", device}},
				}, growRuns(device, staging, "xfs")...)
			},
			wantMount: &mount.MountPoint{Device: device, Type: "xfs", Opts: []string{"nouuid", "defaults"}},
		},
		{
			name:  "staged already: only grown",
			setup: setup{fsType: "ext4", mounted: []mount.MountPoint{{Device: device, Path: "STAGING", Type: "ext4"}}},
			runs: func(staging string) []run {
				return growRuns(device, staging, "ext4")
			},
			wantMount: &mount.MountPoint{Device: device, Type: "ext4"},
		},
		{
			name:  "staged with another filesystem",
			setup: setup{fsType: "xfs", mounted: []mount.MountPoint{{Device: device, Path: "STAGING", Type: "ext4"}}},
			want:  codes.AlreadyExists,
		},
		{
			name:  "another device at the staging path",
			setup: setup{fsType: "ext4", mounted: []mount.MountPoint{{Device: "/dev/dm-9", Path: "STAGING", Type: "ext4"}}},
			want:  codes.FailedPrecondition,
		},
		{
			name:  "mkfs fails",
			setup: setup{fsType: "ext4"},
			runs: func(string) []run {
				return []run{
					{argv: blkidArgv(device), err: exitStatus(2)},
					{argv: []string{"mkfs.ext4", "-F", "-m0", device}, out: "mkfs.ext4: No space", err: exitStatus(1)},
				}
			},
			want: plain,
		},
		{
			name:  "growing fails",
			setup: setup{fsType: "ext4", mounted: []mount.MountPoint{{Device: device, Path: "STAGING", Type: "ext4"}}},
			runs: func(staging string) []run {
				r := growRuns(device, staging, "ext4")
				r[3].err = exitStatus(1)
				return r
			},
			want: plain,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			staging := filepath.Join(t.TempDir(), "globalmount")
			var mps []mount.MountPoint
			for _, mp := range tt.setup.mounted {
				mp.Path = staging
				mps = append(mps, mp)
			}
			if len(mps) > 0 {
				if err := os.MkdirAll(staging, 0o750); err != nil {
					t.Fatal(err)
				}
			}
			var runs []run
			if tt.runs != nil {
				runs = tt.runs(staging)
			}
			m := mount.NewFakeMounter(mps)
			s := testServer(t, m, runs...)
			err := s.stageFilesystem("vol-1", device, staging, tt.setup.fsType, tt.setup.opts, tt.setup.mkfs)
			if tt.want == plain {
				wantPlain(t, err)
				return
			}
			wantCode(t, err, tt.want)
			if tt.wantMount == nil {
				return
			}
			if fi, err := os.Stat(staging); err != nil || !fi.IsDir() {
				t.Fatalf("staging path: %v, %v", fi, err)
			}
			if len(m.MountPoints) != 1 {
				t.Fatalf("mounts %+v, want one", m.MountPoints)
			}
			got := m.MountPoints[0]
			if got.Device != tt.wantMount.Device || got.Path != staging || got.Type != tt.wantMount.Type ||
				(tt.wantMount.Opts != nil && !slices.Equal(got.Opts, tt.wantMount.Opts)) {
				t.Errorf("mount %+v, want %+v at %s", got, *tt.wantMount, staging)
			}
		})
	}
}

func TestCheckBlockStaging(t *testing.T) {
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
		path string
		want codes.Code
	}{
		{mounted, codes.AlreadyExists},
		{plain, codes.OK},
		{filepath.Join(dir, "missing"), codes.OK},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) { wantCode(t, s.checkBlockStaging("vol-1", tt.path), tt.want) })
	}
}

// TestUnstageCleanup covers the mount half of NodeUnstageVolume: the
// staging path is unmounted and removed, and a second call finds nothing
// to do.
func TestUnstageCleanup(t *testing.T) {
	staging := filepath.Join(t.TempDir(), "globalmount")
	if err := os.Mkdir(staging, 0o750); err != nil {
		t.Fatal(err)
	}
	m := mount.NewFakeMounter([]mount.MountPoint{{Device: device, Path: staging, Type: "ext4"}})
	s := testServer(t, m)
	for i := range 2 {
		if err := s.cleanup(staging); err != nil {
			t.Fatalf("cleanup %d: %v", i, err)
		}
	}
	if len(m.MountPoints) != 0 {
		t.Errorf("mounts left: %+v", m.MountPoints)
	}
	if _, err := os.Stat(staging); !os.IsNotExist(err) {
		t.Errorf("staging path still there: %v", err)
	}
	if log := m.GetLog(); len(log) != 1 || log[0].Action != mount.FakeActionUnmount {
		t.Errorf("mounter calls %+v, want one unmount", log)
	}
}
