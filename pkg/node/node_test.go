package node

import (
	"context"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	mount "k8s.io/mount-utils"

	"github.com/csi-thin/csi-thin/pkg/volcap"
)

func mountCap(mode csi.VolumeCapability_AccessMode_Mode, fsType string, flags ...string) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fsType, MountFlags: flags}},
	}
}

func blockCap(mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
	}
}

const (
	rwo  = csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER
	rwop = csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER
	snmw = csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER
	rox  = csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY
	mnmw = csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER
)

// TestRequestValidation covers the requests the node refuses before it
// asks the engine anything; the server has no engine.
func TestRequestValidation(t *testing.T) {
	s := New(Options{NodeID: "node-1", Mounter: mount.NewSafeFormatAndMount(mount.NewFakeMounter(nil), scriptedExec(t))})
	ctx := context.Background()
	good := mountCap(rwo, "ext4")
	tests := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"stage: no volume id", func() error {
			_, err := s.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{StagingTargetPath: "/s", VolumeCapability: good})
			return err
		}, codes.InvalidArgument},
		{"stage: no staging path", func() error {
			_, err := s.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "v", VolumeCapability: good})
			return err
		}, codes.InvalidArgument},
		{"stage: no capability", func() error {
			_, err := s.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "v", StagingTargetPath: "/s"})
			return err
		}, codes.InvalidArgument},
		{"stage: multi-node access mode", func() error {
			_, err := s.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "v", StagingTargetPath: "/s", VolumeCapability: mountCap(mnmw, "")})
			return err
		}, codes.InvalidArgument},
		{"stage: unsupported filesystem", func() error {
			_, err := s.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "v", StagingTargetPath: "/s", VolumeCapability: mountCap(rwo, "btrfs")})
			return err
		}, codes.InvalidArgument},
		{"stage: no access type", func() error {
			_, err := s.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "v", StagingTargetPath: "/s",
				VolumeCapability: &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: rwo}}})
			return err
		}, codes.InvalidArgument},
		{"unstage: no volume id", func() error {
			_, err := s.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{StagingTargetPath: "/s"})
			return err
		}, codes.InvalidArgument},
		{"unstage: no staging path", func() error {
			_, err := s.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: "v"})
			return err
		}, codes.InvalidArgument},
		{"publish: nothing", func() error {
			_, err := s.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{})
			return err
		}, codes.InvalidArgument},
		{"publish: no target path", func() error {
			_, err := s.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "v", StagingTargetPath: "/s", VolumeCapability: good})
			return err
		}, codes.InvalidArgument},
		{"publish: no capability (and no staging path)", func() error {
			_, err := s.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "v", TargetPath: "/t"})
			return err
		}, codes.InvalidArgument},
		{"publish: multi-node access mode", func() error {
			_, err := s.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "v", TargetPath: "/t", StagingTargetPath: "/s",
				VolumeCapability: blockCap(mnmw)})
			return err
		}, codes.InvalidArgument},
		{"publish: no staging path", func() error {
			_, err := s.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "v", TargetPath: "/t", VolumeCapability: good})
			return err
		}, codes.FailedPrecondition},
		{"unpublish: no volume id", func() error {
			_, err := s.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{TargetPath: "/t"})
			return err
		}, codes.InvalidArgument},
		{"unpublish: no target path", func() error {
			_, err := s.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "v"})
			return err
		}, codes.InvalidArgument},
		{"stats: no volume id", func() error {
			_, err := s.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumePath: "/t"})
			return err
		}, codes.InvalidArgument},
		{"stats: no volume path", func() error {
			_, err := s.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: "v"})
			return err
		}, codes.InvalidArgument},
		{"expand: no volume id", func() error {
			_, err := s.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumePath: "/t"})
			return err
		}, codes.InvalidArgument},
		{"expand: no volume path", func() error {
			_, err := s.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: "v"})
			return err
		}, codes.InvalidArgument},
		{"expand: negative size", func() error {
			_, err := s.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: "v", VolumePath: "/t",
				CapacityRange: &csi.CapacityRange{RequiredBytes: -1}})
			return err
		}, codes.InvalidArgument},
		{"expand: required above limit", func() error {
			_, err := s.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: "v", VolumePath: "/t",
				CapacityRange: &csi.CapacityRange{RequiredBytes: 2 << 30, LimitBytes: 1 << 30}})
			return err
		}, codes.OutOfRange},
		{"expand: multi-node access mode", func() error {
			_, err := s.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: "v", VolumePath: "/t",
				VolumeCapability: mountCap(mnmw, "")})
			return err
		}, codes.InvalidArgument},
		{"health: no volume id", func() error {
			_, err := s.NodeGetVolumeHealth(ctx, &csi.NodeGetVolumeHealthRequest{})
			return err
		}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.call(), tt.want) })
	}
}

func TestNodeGetCapabilities(t *testing.T) {
	resp, err := New(Options{}).NodeGetCapabilities(context.Background(), &csi.NodeGetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[csi.NodeServiceCapability_RPC_Type]bool{}
	for _, c := range resp.GetCapabilities() {
		got[c.GetRpc().GetType()] = true
	}
	want := []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_EXPAND_VOLUME,
		csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
		csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
		csi.NodeServiceCapability_RPC_GET_STORAGE_HEALTH,
	}
	if len(got) != len(want) {
		t.Errorf("capabilities %v, want %v", got, want)
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("capability %s is missing", w)
		}
	}
}

func TestNodeGetInfo(t *testing.T) {
	tests := []struct {
		name string
		max  int64
	}{{"unset", 0}, {"limited", 100}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := New(Options{NodeID: "worker-3", MaxVolumes: tt.max}).NodeGetInfo(context.Background(), &csi.NodeGetInfoRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetNodeId() != "worker-3" || resp.GetMaxVolumesPerNode() != tt.max {
				t.Errorf("node %q max %d, want worker-3 %d", resp.GetNodeId(), resp.GetMaxVolumesPerNode(), tt.max)
			}
			if seg := resp.GetAccessibleTopology().GetSegments(); seg[volcap.TopologyKey] != "worker-3" || len(seg) != 1 {
				t.Errorf("topology %v, want %s=worker-3", seg, volcap.TopologyKey)
			}
		})
	}
}

func TestNewDefaultMounter(t *testing.T) {
	s := New(Options{})
	if s.mounter == nil || s.mounter.Interface == nil || s.mounter.Exec == nil || s.resizer == nil || s.stat == nil {
		t.Fatalf("New without a mounter: %+v", s)
	}
}
