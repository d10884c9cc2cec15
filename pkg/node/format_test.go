package node

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	mount "k8s.io/mount-utils"

	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// A volume context that a static PersistentVolume could carry is refused
// before anything is activated or run.
func TestStageRefusesVolumeContext(t *testing.T) {
	tests := []struct {
		name string
		cap  *csi.VolumeCapability
		vctx map[string]string
		msg  string
	}{
		{"raw arguments under another key", mountCap(rwo, ""), map[string]string{"mkfsArgs": "-d /var/lib/kubelet"}, "unknown keys mkfsArgs"},
		{"an argument smuggled into a value", mountCap(rwo, ""), map[string]string{volcap.ParamBlockSize: "4096 -d /var/lib/kubelet"}, "blockSize"},
		{"an xfs protofile smuggled into a value", mountCap(rwo, "xfs"), map[string]string{volcap.ParamInodeSize: "512 -p /etc/shadow"}, "inodeSize"},
		{"unknown filesystem", mountCap(rwo, ""), map[string]string{volcap.ParamFsType: "btrfs"}, "ext4 or xfs"},
		{"ext4 parameter on xfs", mountCap(rwo, "xfs"), map[string]string{volcap.ParamExt4BigAlloc: "true"}, "ext4 only"},
		{"block volume too", blockCap(rwo), map[string]string{"x": "y"}, "unknown keys x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testServer(t, mount.NewFakeMounter(nil)) // no engine: nothing may be activated
			_, err := s.NodeStageVolume(context.Background(), &csi.NodeStageVolumeRequest{
				VolumeId: "vol-1", StagingTargetPath: filepath.Join(t.TempDir(), "globalmount"),
				VolumeCapability: tt.cap, VolumeContext: tt.vctx,
			})
			wantCode(t, err, codes.InvalidArgument)
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("message %q does not say %q", status.Convert(err).Message(), tt.msg)
			}
		})
	}
}

func TestCheckLegacyMkfsOptions(t *testing.T) {
	tests := []struct {
		name string
		blk  run
		want codes.Code
	}{
		{"formatted: ignored", run{argv: blkidArgv(device), out: "TYPE=ext4\n"}, codes.OK},
		{"blank: refused", run{argv: blkidArgv(device), err: exitStatus(2)}, codes.InvalidArgument},
		{"blkid fails", run{argv: blkidArgv(device), err: exitStatus(4)}, plain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testServer(t, mount.NewFakeMounter(nil), tt.blk)
			err := s.checkLegacyMkfsOptions("vol-1", device, "-d /var/lib/kubelet")
			if tt.want == plain {
				wantPlain(t, err)
				return
			}
			wantCode(t, err, tt.want)
			if err != nil && !strings.Contains(err.Error(), "blockSize") {
				t.Errorf("message %q does not name the formatting parameters", err)
			}
		})
	}
}

// The formatting parameters reach mkfs as their fixed flags, before the
// mounter's own.
func TestStageFormatArguments(t *testing.T) {
	tests := []struct {
		name string
		fs   string
		vctx map[string]string
		mkfs []string
	}{
		{"ext4", "ext4", map[string]string{volcap.ParamBlockSize: "4096", volcap.ParamInodeSize: "512", volcap.ParamBytesPerInode: "8192"},
			[]string{"mkfs.ext4", "-b", "4096", "-I", "512", "-i", "8192", "-F", "-m0", device}},
		{"ext4 bigalloc", "ext4", map[string]string{volcap.ParamBlockSize: "4096", volcap.ParamExt4BigAlloc: "true", volcap.ParamExt4ClusterSize: "16384"},
			[]string{"mkfs.ext4", "-b", "4096", "-O", "bigalloc", "-C", "16384", "-F", "-m0", device}},
		{"ext4 inodes", "ext4", map[string]string{volcap.ParamNumberOfInodes: "5000"},
			[]string{"mkfs.ext4", "-N", "5000", "-F", "-m0", device}},
		{"xfs", "xfs", map[string]string{volcap.ParamFsType: "xfs", volcap.ParamBlockSize: "2048", volcap.ParamInodeSize: "1024"},
			[]string{"mkfs.xfs", "-b", "size=2048", "-i", "size=1024", "-f", device}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, legacy, err := volcap.StageFormat(mountCap(rwo, ""), tt.vctx)
			if err != nil || legacy != "" || f.FsType != tt.fs {
				t.Fatalf("StageFormat = %+v, %q, %v", f, legacy, err)
			}
			staging := filepath.Join(t.TempDir(), "globalmount")
			runs := append([]run{
				{argv: blkidArgv(device), err: exitStatus(2)},
				{argv: tt.mkfs},
			}, growRuns(device, staging, tt.fs)...)
			s := testServer(t, mount.NewFakeMounter(nil), runs...)
			wantCode(t, s.stageFilesystem("vol-1", device, staging, f.FsType, nil, f.MkfsArgs()), codes.OK)
		})
	}
}

// A mount that fails with mount options says where they come from and how
// to find the one refused; a format failure, or a mount without options,
// says nothing of options.
func TestStageMountFailureHint(t *testing.T) {
	const device = "/dev/dm-7"
	tests := []struct {
		name     string
		opts     []string
		wantHint bool
	}{
		{"with options", []string{"no-such-option"}, true},
		{"without options", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			staging := filepath.Join(t.TempDir(), "globalmount")
			m := failingMounter{mount.NewFakeMounter(nil), errors.New("mount failed: exit status 32")}
			s := New(Options{NodeID: "node-1", Mounter: mount.NewSafeFormatAndMount(m, scriptedExec(t,
				run{argv: blkidArgv(device), out: "TYPE=ext4\n"},
				run{argv: []string{"fsck", "-a", device}}))})
			err := s.stageFilesystem("vol-1", device, staging, "ext4", tt.opts, nil)
			if err == nil {
				t.Fatal("the mount failed and stageFilesystem did not")
			}
			hint := strings.Contains(err.Error(), "the mount options were no-such-option: if one is wrong, fix the StorageClass's mountOptions")
			if hint != tt.wantHint {
				t.Errorf("error %q: hint about the options %v, want %v", err, hint, tt.wantHint)
			}
		})
	}
}

// failingMounter is a fake mounter whose mounts fail.
type failingMounter struct {
	*mount.FakeMounter
	err error
}

func (f failingMounter) MountSensitive(_, _, _ string, _, _ []string) error { return f.err }
