package node

import (
	"os"
	"path/filepath"
	"testing"

	mount "k8s.io/mount-utils"
)

// TestUndoFailedStage: a stage that fails takes back only what it did:
// the mount it made, the staging path it made, the device it activated.
func TestUndoFailedStage(t *testing.T) {
	const other = "/dev/dm-9"
	mkfsFails := func(string) []run {
		return []run{
			{argv: blkidArgv(device), err: exitStatus(2)},
			{argv: []string{"mkfs.ext4", "-F", "-m0", device}, out: "mkfs.ext4: invalid blocks count", err: exitStatus(1)},
		}
	}
	tests := []struct {
		name       string
		dirExisted bool
		mounted    string // device mounted at the staging path before
		activated  bool   // this call activated the device
		runs       func(staging string) []run
		// after the undo
		wantDir         bool
		wantMount       string
		wantDeactivated bool
	}{
		{
			name: "mkfs fails on a device this call activated", activated: true, runs: mkfsFails,
			wantDeactivated: true,
		},
		{
			name: "mkfs fails in a staging path kubelet made", dirExisted: true, activated: true, runs: mkfsFails,
			wantDir: true, wantDeactivated: true,
		},
		{
			name: "mkfs fails on a device active before", dirExisted: true, runs: mkfsFails,
			wantDir: true,
		},
		{
			name: "growing fails after this call mounted", activated: true,
			runs: func(staging string) []run {
				r := append([]run{
					{argv: blkidArgv(device), err: exitStatus(2)},
					{argv: []string{"mkfs.ext4", "-F", "-m0", device}},
				}, growRuns(device, staging, "ext4")...)
				r[len(r)-1].err = exitStatus(1)
				return r
			},
			wantDeactivated: true,
		},
		{
			name: "growing fails on a volume staged before", dirExisted: true, mounted: device,
			runs: func(staging string) []run {
				r := growRuns(device, staging, "ext4")
				r[len(r)-1].err = exitStatus(1)
				return r
			},
			wantDir: true, wantMount: device,
		},
		{
			name: "another device is mounted at the staging path", dirExisted: true, mounted: other, activated: true,
			wantDir: true, wantMount: other, wantDeactivated: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			staging := filepath.Join(t.TempDir(), "globalmount")
			if tt.dirExisted {
				if err := os.Mkdir(staging, 0o750); err != nil {
					t.Fatal(err)
				}
			}
			var mps []mount.MountPoint
			if tt.mounted != "" {
				mps = append(mps, mount.MountPoint{Device: tt.mounted, Path: staging, Type: "ext4"})
			}
			var runs []run
			if tt.runs != nil {
				runs = tt.runs(staging)
			}
			m := mount.NewFakeMounter(mps)
			s := testServer(t, m, runs...)

			u, err := s.newStageUndo("vol-1", staging)
			if err != nil {
				t.Fatal(err)
			}
			u.device = device
			deactivated := 0
			if tt.activated {
				u.deactivate = func() error { deactivated++; return nil }
			}
			err = s.stageFilesystem("vol-1", device, staging, "ext4", nil, nil)
			if err == nil {
				t.Fatal("the stage did not fail")
			}
			s.undoStage(u, err)

			if _, err := os.Stat(staging); (err == nil) != tt.wantDir {
				t.Errorf("staging path there: %v, want %v", err == nil, tt.wantDir)
			}
			switch {
			case tt.wantMount == "" && len(m.MountPoints) != 0:
				t.Errorf("mounts left: %+v", m.MountPoints)
			case tt.wantMount != "" && (len(m.MountPoints) != 1 || m.MountPoints[0].Device != tt.wantMount):
				t.Errorf("mounts %+v, want %s kept at the staging path", m.MountPoints, tt.wantMount)
			}
			if want := map[bool]int{true: 1}[tt.wantDeactivated]; deactivated != want {
				t.Errorf("deactivated %d times, want %d", deactivated, want)
			}
		})
	}
}
