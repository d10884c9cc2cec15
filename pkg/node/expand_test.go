package node

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	mount "k8s.io/mount-utils"
)

func TestRequiredBytes(t *testing.T) {
	tests := []struct {
		name string
		r    *csi.CapacityRange
		want uint64
		code codes.Code
	}{
		{"no range", nil, 0, codes.OK},
		{"required", &csi.CapacityRange{RequiredBytes: 5 << 30}, 5 << 30, codes.OK},
		{"required within limit", &csi.CapacityRange{RequiredBytes: 1 << 30, LimitBytes: 2 << 30}, 1 << 30, codes.OK},
		{"limit only", &csi.CapacityRange{LimitBytes: 2 << 30}, 0, codes.OK},
		{"negative required", &csi.CapacityRange{RequiredBytes: -1}, 0, codes.InvalidArgument},
		{"negative limit", &csi.CapacityRange{LimitBytes: -1}, 0, codes.InvalidArgument},
		{"required above limit", &csi.CapacityRange{RequiredBytes: 3, LimitBytes: 2}, 0, codes.OutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := requiredBytes(tt.r)
			wantCode(t, err, tt.code)
			if got != tt.want {
				t.Errorf("required %d, want %d", got, tt.want)
			}
		})
	}
}

func TestResizePath(t *testing.T) {
	dir := t.TempDir()
	staging := filepath.Join(dir, "globalmount")
	unmounted := filepath.Join(dir, "unmounted")
	target := filepath.Join(dir, "target")
	for _, d := range []string{staging, unmounted, target} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	s := testServer(t, mount.NewFakeMounter([]mount.MountPoint{
		{Device: device, Path: staging, Type: "xfs"},
		{Device: device, Path: target, Type: "xfs", Opts: []string{"bind", "ro"}},
	}))
	tests := []struct {
		name, volumePath, staging, want string
	}{
		{"staging mount preferred", target, staging, staging},
		{"no staging path", target, "", target},
		{"staging path not mounted", target, unmounted, target},
		{"volume path is the staging path", staging, staging, staging},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.resizePath(tt.volumePath, tt.staging); got != tt.want {
				t.Errorf("resizePath = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestGrowFilesystem(t *testing.T) {
	tests := []struct {
		name string
		runs []run
		want codes.Code
	}{
		{"ext4 grows through the device", growRuns(device, "/mnt", "ext4"), codes.OK},
		{"xfs grows through the mount", growRuns(device, "/mnt", "xfs"), codes.OK},
		{"read-only device is left alone", []run{{argv: []string{"blockdev", "--getro", device}, out: "1\n"}}, codes.OK},
		{"blank device has nothing to grow", []run{
			{argv: []string{"blockdev", "--getro", device}, out: "0\n"},
			{argv: blkidArgv(device), err: exitStatus(2)},
		}, codes.OK},
		{"blockdev fails", []run{{argv: []string{"blockdev", "--getro", device}, err: exitStatus(1)}}, plain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := testServer(t, mount.NewFakeMounter(nil), tt.runs...).growFilesystem(device, "/mnt")
			if tt.want == plain {
				wantPlain(t, err)
				return
			}
			wantCode(t, err, tt.want)
		})
	}
}
