package volcap

import (
	"slices"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

func TestParseFormat(t *testing.T) {
	tests := []struct {
		name   string
		fs     string
		ctx    map[string]string
		args   []string
		min    uint64
		errMsg string // in the error; "" for none
	}{
		{name: "ext4 defaults", fs: "ext4", min: 256 << 10},
		{name: "xfs defaults", fs: "xfs", min: 300 << 20},
		{name: "ext4 every size", fs: "ext4", ctx: map[string]string{
			ParamBlockSize: "4096", ParamInodeSize: "512", ParamBytesPerInode: "65536"},
			args: []string{"-b", "4096", "-I", "512", "-i", "65536"}, min: 1 << 20},
		{name: "ext4 number of inodes", fs: "ext4", ctx: map[string]string{ParamNumberOfInodes: "10000"},
			args: []string{"-N", "10000"}, min: 1<<20 + 2*10000*256},
		{name: "ext4 number of large inodes", fs: "ext4", ctx: map[string]string{ParamNumberOfInodes: "1000", ParamInodeSize: "1024"},
			args: []string{"-I", "1024", "-N", "1000"}, min: 1<<20 + 2*1000*1024},
		{name: "ext4 bigalloc", fs: "ext4", ctx: map[string]string{ParamExt4BigAlloc: "true"},
			args: []string{"-O", "bigalloc"}, min: 384 << 10},
		{name: "ext4 bigalloc false", fs: "ext4", ctx: map[string]string{ParamExt4BigAlloc: "false"}, min: 256 << 10},
		{name: "ext4 cluster size", fs: "ext4", ctx: map[string]string{ParamExt4BigAlloc: "true", ParamBlockSize: "4096", ParamExt4ClusterSize: "65536"},
			args: []string{"-b", "4096", "-O", "bigalloc", "-C", "65536"}, min: 384 << 10},
		{name: "xfs sizes", fs: "xfs", ctx: map[string]string{ParamBlockSize: "4096", ParamInodeSize: "1024"},
			args: []string{"-b", "size=4096", "-i", "size=1024"}, min: 300 << 20},

		{name: "a flag in a value", fs: "ext4", ctx: map[string]string{ParamBlockSize: "4096 -d /var/lib/kubelet"}, errMsg: "blockSize"},
		{name: "a negative number", fs: "ext4", ctx: map[string]string{ParamNumberOfInodes: "-1"}, errMsg: "numberOfInodes"},
		{name: "a sign", fs: "ext4", ctx: map[string]string{ParamNumberOfInodes: "+100"}, errMsg: "whole number"},
		{name: "hex", fs: "ext4", ctx: map[string]string{ParamBlockSize: "0x1000"}, errMsg: "power of two"},
		{name: "not a power of two", fs: "ext4", ctx: map[string]string{ParamBlockSize: "3072"}, errMsg: "power of two"},
		{name: "xfs block above the page", fs: "xfs", ctx: map[string]string{ParamBlockSize: "65536"}, errMsg: "1024 to 4096"},
		{name: "xfs inode too small", fs: "xfs", ctx: map[string]string{ParamInodeSize: "256"}, errMsg: "512 to 2048"},
		{name: "xfs inode over half a block", fs: "xfs", ctx: map[string]string{ParamBlockSize: "1024", ParamInodeSize: "1024"}, errMsg: "half a block"},
		{name: "ext4 block below 1 KiB", fs: "ext4", ctx: map[string]string{ParamBlockSize: "512"}, errMsg: "1024 to 4096"},
		{name: "ext4 inode above 1 KiB", fs: "ext4", ctx: map[string]string{ParamInodeSize: "2048"}, errMsg: "128 to 1024"},
		{name: "bytes per inode below 1 KiB", fs: "ext4", ctx: map[string]string{ParamBytesPerInode: "512"}, errMsg: "bytesPerInode"},
		{name: "bytes per inode below the block", fs: "ext4", ctx: map[string]string{ParamBlockSize: "4096", ParamBytesPerInode: "2048"}, errMsg: "one block per inode"},
		{name: "both inode counts", fs: "ext4", ctx: map[string]string{ParamBytesPerInode: "4096", ParamNumberOfInodes: "100"}, errMsg: "give one"},
		{name: "too few inodes", fs: "ext4", ctx: map[string]string{ParamNumberOfInodes: "1"}, errMsg: "16 to"},
		{name: "cluster without bigalloc", fs: "ext4", ctx: map[string]string{ParamBlockSize: "4096", ParamExt4ClusterSize: "16384"}, errMsg: "ext4BigAlloc=true"},
		{name: "cluster without block size", fs: "ext4", ctx: map[string]string{ParamExt4BigAlloc: "true", ParamExt4ClusterSize: "16384"}, errMsg: "needs blockSize"},
		{name: "cluster of one block", fs: "ext4", ctx: map[string]string{ParamExt4BigAlloc: "true", ParamBlockSize: "4096", ParamExt4ClusterSize: "4096"}, errMsg: "2 to 16 blocks"},
		{name: "cluster of 32 blocks", fs: "ext4", ctx: map[string]string{ParamExt4BigAlloc: "true", ParamBlockSize: "1024", ParamExt4ClusterSize: "32768"}, errMsg: "2 to 16 blocks"},
		{name: "bigalloc with a number of inodes", fs: "ext4", ctx: map[string]string{ParamExt4BigAlloc: "true", ParamNumberOfInodes: "100"}, errMsg: "bytesPerInode instead"},
		{name: "bigalloc not a bool", fs: "ext4", ctx: map[string]string{ParamExt4BigAlloc: "yes"}, errMsg: "true or false"},
		{name: "bigalloc as 1", fs: "ext4", ctx: map[string]string{ParamExt4BigAlloc: "1"}, errMsg: "true or false"},
		{name: "ext4 parameter on xfs", fs: "xfs", ctx: map[string]string{ParamBytesPerInode: "4096"}, errMsg: "ext4 only"},
		{name: "unknown filesystem", fs: "btrfs", errMsg: "btrfs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFormat(tt.fs, tt.ctx)
			if tt.errMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errMsg) {
					t.Fatalf("ParseFormat = %+v, %v; want an error saying %q", f, err, tt.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := f.MkfsArgs(); !slices.Equal(got, tt.args) {
				t.Errorf("mkfs arguments %q, want %q", got, tt.args)
			}
			if got := f.MinBytes(); got != tt.min {
				t.Errorf("minimum %d, want %d", got, tt.min)
			}
		})
	}
}

func TestParameters(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]string
		want   map[string]string
		errMsg string
	}{
		{name: "empty", want: map[string]string{}},
		{name: "kept, sidecar ones dropped", params: map[string]string{ParamFsType: "xfs", ParamInodeSize: "512", "csi.storage.k8s.io/pvc/name": "p"},
			want: map[string]string{ParamFsType: "xfs", ParamInodeSize: "512"}},
		{name: "raw mkfs options", params: map[string]string{ParamLegacyMkfsOptions: "-d /"}, errMsg: "unknown parameters mkfsOptions"},
		{name: "unknown named with what is accepted", params: map[string]string{"b": "1", "a": "1"},
			errMsg: "unknown parameters a, b: csi-thin accepts fsType, blockSize, bytesPerInode, ext4BigAlloc, ext4ClusterSize, inodeSize, numberOfInodes"},
		{name: "bad filesystem", params: map[string]string{ParamFsType: "ntfs"}, errMsg: "ext4 or xfs"},
		{name: "ext4 parameter on the class's xfs", params: map[string]string{ParamFsType: "xfs", ParamExt4BigAlloc: "true"}, errMsg: "ext4 only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parameters(tt.params)
			if tt.errMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errMsg) {
					t.Fatalf("Parameters = %v, %v; want an error saying %q", got, err, tt.errMsg)
				}
				return
			}
			if err != nil || len(got) != len(tt.want) {
				t.Fatalf("Parameters = %v, %v; want %v", got, err, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Fatalf("Parameters = %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestStageFormat(t *testing.T) {
	mount := func(fs string) *csi.VolumeCapability {
		return &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fs}}}
	}
	block := &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}}
	tests := []struct {
		name   string
		c      *csi.VolumeCapability
		ctx    map[string]string
		args   []string
		fs     string
		legacy string
		errMsg string
	}{
		{name: "empty", c: mount(""), fs: "ext4"},
		{name: "from the context", c: mount(""), ctx: map[string]string{ParamFsType: "xfs", ParamBlockSize: "2048"}, fs: "xfs", args: []string{"-b", "size=2048"}},
		{name: "the capability's filesystem wins", c: mount("xfs"), ctx: map[string]string{ParamFsType: "ext4"}, fs: "xfs"},
		{name: "pod information is allowed", c: mount(""), ctx: map[string]string{"csi.storage.k8s.io/pod.name": "p"}, fs: "ext4"},
		// Every PV the external-provisioner creates has it.
		{name: "the provisioner's identity is allowed", c: block,
			ctx: map[string]string{"storage.kubernetes.io/csiProvisionerIdentity": "1764637200000-1234-csi-thin.io"}, fs: "ext4"},
		{name: "legacy options handed back", c: mount(""), ctx: map[string]string{ParamLegacyMkfsOptions: "-E nodiscard"}, fs: "ext4", legacy: "-E nodiscard"},
		{name: "block", c: block, ctx: map[string]string{ParamFsType: "xfs", ParamInodeSize: "512"}, fs: "xfs", args: []string{"-i", "size=512"}},

		{name: "unknown key", c: mount(""), ctx: map[string]string{"mkfsArgs": "-d /"}, errMsg: "unknown keys mkfsArgs: csi-thin accepts fsType"},
		{name: "bad filesystem", c: mount(""), ctx: map[string]string{ParamFsType: "vfat"}, errMsg: "ext4 or xfs"},
		{name: "bad value", c: mount(""), ctx: map[string]string{ParamInodeSize: "256 -d /"}, errMsg: "inodeSize"},
		{name: "ext4 parameter staged as xfs", c: mount("xfs"), ctx: map[string]string{ParamNumberOfInodes: "100"}, errMsg: "ext4 only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, legacy, err := StageFormat(tt.c, tt.ctx)
			if tt.errMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errMsg) {
					t.Fatalf("StageFormat = %+v, %v; want an error saying %q", f, err, tt.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.FsType != tt.fs || !slices.Equal(f.MkfsArgs(), tt.args) || legacy != tt.legacy {
				t.Errorf("StageFormat = %+v (%q), %q; want %s %q, %q", f, f.MkfsArgs(), legacy, tt.fs, tt.args, tt.legacy)
			}
		})
	}
}
