package controller

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
	"github.com/csi-thin/csi-thin/pkg/volcap"
)

func mountCap(mode csi.VolumeCapability_AccessMode_Mode, fs string) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fs}},
	}
}

func blockCap(mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
	}
}

// ext4Min is the smallest ext4 volume with mkfs's default options.
const ext4Min = 256 * kib

var rwo = mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, "")

func TestParseCreateVolume(t *testing.T) {
	valid := func(edit func(*csi.CreateVolumeRequest)) *csi.CreateVolumeRequest {
		r := &csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: []*csi.VolumeCapability{rwo}}
		if edit != nil {
			edit(r)
		}
		return r
	}
	tests := []struct {
		name    string
		req     *csi.CreateVolumeRequest
		code    codes.Code
		msg     string // in the message
		ctx     map[string]string
		fsMin   uint64
		source  string
		srcKind thinpool.Kind
	}{
		{name: "minimal", req: valid(nil), ctx: map[string]string{}, fsMin: ext4Min},
		{name: "parameters become the context, sidecar ones dropped", req: valid(func(r *csi.CreateVolumeRequest) {
			r.Parameters = map[string]string{volcap.ParamFsType: "xfs", volcap.ParamBlockSize: "2048", "csi.storage.k8s.io/pvc/name": "data"}
		}), ctx: map[string]string{volcap.ParamFsType: "xfs", volcap.ParamBlockSize: "2048"}, fsMin: 300 * mib},
		{name: "xfs from the capability has its minimum", req: valid(func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, "xfs")}
		}), ctx: map[string]string{}, fsMin: 300 * mib},
		{name: "ext4 formatting parameters", req: valid(func(r *csi.CreateVolumeRequest) {
			r.Parameters = map[string]string{volcap.ParamBlockSize: "4096", volcap.ParamExt4BigAlloc: "true", volcap.ParamExt4ClusterSize: "16384"}
		}), ctx: map[string]string{volcap.ParamBlockSize: "4096", volcap.ParamExt4BigAlloc: "true", volcap.ParamExt4ClusterSize: "16384"}, fsMin: 384 * kib},
		{name: "block volume: no minimum", req: valid(func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = []*csi.VolumeCapability{blockCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)}
			r.Parameters = map[string]string{volcap.ParamFsType: "xfs"}
		}), ctx: map[string]string{volcap.ParamFsType: "xfs"}},
		{name: "block and multi-writer", req: valid(func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = []*csi.VolumeCapability{blockCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER), rwo}
		}), ctx: map[string]string{}, fsMin: ext4Min},
		{name: "restore", req: valid(func(r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
				Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: "snap-1"}}}
		}), ctx: map[string]string{}, fsMin: ext4Min, source: "snap-1", srcKind: thinpool.KindSnapshot},
		{name: "clone", req: valid(func(r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{
				Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: "vol-1"}}}
		}), ctx: map[string]string{}, fsMin: ext4Min, source: "vol-1", srcKind: thinpool.KindVolume},
		{name: "on this node", req: valid(func(r *csi.CreateVolumeRequest) {
			r.AccessibilityRequirements = &csi.TopologyRequirement{Requisite: []*csi.Topology{volcap.Topology("n1")}}
		}), ctx: map[string]string{}, fsMin: ext4Min},

		{name: "no name", req: valid(func(r *csi.CreateVolumeRequest) { r.Name = "" }), code: codes.InvalidArgument, msg: "name is required"},
		{name: "control character in name", req: valid(func(r *csi.CreateVolumeRequest) { r.Name = "a\x01b" }), code: codes.InvalidArgument, msg: "U+0001"},
		{name: "C1 control character in name", req: valid(func(r *csi.CreateVolumeRequest) { r.Name = "a\u0085" }), code: codes.InvalidArgument, msg: "U+0085"},
		{name: "no capabilities", req: valid(func(r *csi.CreateVolumeRequest) { r.VolumeCapabilities = nil }), code: codes.InvalidArgument, msg: "capabilities"},
		{name: "multi-node access", req: valid(func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = []*csi.VolumeCapability{rwo, mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER, "")}
		}), code: codes.InvalidArgument, msg: "MULTI_NODE_MULTI_WRITER"},
		{name: "unsupported filesystem", req: valid(func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, "btrfs")}
		}), code: codes.InvalidArgument, msg: "btrfs"},
		{name: "unknown parameter", req: valid(func(r *csi.CreateVolumeRequest) { r.Parameters = map[string]string{"fstype": "xfs"} }),
			code: codes.InvalidArgument, msg: "fstype"},
		{name: "raw mkfs options are gone", req: valid(func(r *csi.CreateVolumeRequest) {
			r.Parameters = map[string]string{"mkfsOptions": "-d /var/lib/kubelet"}
		}), code: codes.InvalidArgument, msg: "unknown parameters mkfsOptions: csi-thin accepts fsType, blockSize"},
		{name: "an argument smuggled into a value", req: valid(func(r *csi.CreateVolumeRequest) {
			r.Parameters = map[string]string{volcap.ParamBlockSize: "4096 -d /var/lib/kubelet"}
		}), code: codes.InvalidArgument, msg: "blockSize"},
		{name: "ext4 parameter on an xfs capability", req: valid(func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, "xfs")}
			r.Parameters = map[string]string{volcap.ParamExt4BigAlloc: "true"}
		}), code: codes.InvalidArgument, msg: "ext4 only"},
		{name: "mutable parameters", req: valid(func(r *csi.CreateVolumeRequest) { r.MutableParameters = map[string]string{"iops": "1"} }),
			code: codes.InvalidArgument, msg: "VolumeAttributesClass"},
		{name: "empty content source", req: valid(func(r *csi.CreateVolumeRequest) { r.VolumeContentSource = &csi.VolumeContentSource{} }),
			code: codes.InvalidArgument, msg: "neither"},
		{name: "snapshot source without id", req: valid(func(r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{}}}
		}), code: codes.InvalidArgument, msg: "snapshot_id"},
		{name: "volume source without id", req: valid(func(r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{}}}
		}), code: codes.InvalidArgument, msg: "volume_id"},
		{name: "another node", req: valid(func(r *csi.CreateVolumeRequest) {
			r.AccessibilityRequirements = &csi.TopologyRequirement{Requisite: []*csi.Topology{volcap.Topology("n2")}}
		}), code: codes.ResourceExhausted, msg: `node "n2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := parseCreateVolume(tt.req, "n1")
			if status.Code(err) != tt.code {
				t.Fatalf("parseCreateVolume: %v, want code %s", err, tt.code)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("message %q does not say %q", err, tt.msg)
				}
				return
			}
			if !maps.Equal(a.volumeContext, tt.ctx) || a.volumeContext == nil {
				t.Fatalf("volume context %v, want %v", a.volumeContext, tt.ctx)
			}
			if a.fsMinBytes != tt.fsMin {
				t.Fatalf("filesystem minimum %d, want %d", a.fsMinBytes, tt.fsMin)
			}
			if a.sourceID != tt.source || a.sourceKind != tt.srcKind {
				t.Fatalf("source %q %q, want %q %q", a.sourceKind, a.sourceID, tt.srcKind, tt.source)
			}
		})
	}
}

func TestCheckCreateSnapshot(t *testing.T) {
	tests := []struct {
		name string
		req  *csi.CreateSnapshotRequest
		code codes.Code
	}{
		{"valid", &csi.CreateSnapshotRequest{Name: "snap", SourceVolumeId: "vol-1"}, codes.OK},
		{"sidecar parameters", &csi.CreateSnapshotRequest{Name: "snap", SourceVolumeId: "vol-1",
			Parameters: map[string]string{"csi.storage.k8s.io/volumesnapshot/name": "s"}}, codes.OK},
		{"on this node", &csi.CreateSnapshotRequest{Name: "snap", SourceVolumeId: "vol-1",
			AccessibilityRequirements: &csi.TopologyRequirement{Requisite: []*csi.Topology{volcap.Topology("n1")}}}, codes.OK},
		{"no name", &csi.CreateSnapshotRequest{SourceVolumeId: "vol-1"}, codes.InvalidArgument},
		{"control character in name", &csi.CreateSnapshotRequest{Name: "s\x7f", SourceVolumeId: "vol-1"}, codes.InvalidArgument},
		{"no source", &csi.CreateSnapshotRequest{Name: "snap"}, codes.InvalidArgument},
		{"unknown parameter", &csi.CreateSnapshotRequest{Name: "snap", SourceVolumeId: "vol-1",
			Parameters: map[string]string{"retention": "1d"}}, codes.InvalidArgument},
		{"another node", &csi.CreateSnapshotRequest{Name: "snap", SourceVolumeId: "vol-1",
			AccessibilityRequirements: &csi.TopologyRequirement{Requisite: []*csi.Topology{volcap.Topology("n2")}}}, codes.ResourceExhausted},
		{"preferred another node alone", &csi.CreateSnapshotRequest{Name: "snap", SourceVolumeId: "vol-1",
			AccessibilityRequirements: &csi.TopologyRequirement{Preferred: []*csi.Topology{volcap.Topology("n2")}}}, codes.ResourceExhausted},
		{"preferred not requisite", &csi.CreateSnapshotRequest{Name: "snap", SourceVolumeId: "vol-1",
			AccessibilityRequirements: &csi.TopologyRequirement{Requisite: []*csi.Topology{volcap.Topology("n1")}, Preferred: []*csi.Topology{volcap.Topology("n2")}}}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		if err := checkCreateSnapshot(tt.req, "n1"); status.Code(err) != tt.code {
			t.Errorf("%s: checkCreateSnapshot = %v, want code %s", tt.name, err, tt.code)
		}
	}
	err := checkSnapshotParameters(map[string]string{"b": "1", "a": "2", "csi.storage.k8s.io/x": "y"})
	if err == nil || !strings.Contains(err.Error(), "a, b") {
		t.Errorf("checkSnapshotParameters = %v, want both unknown keys named in order", err)
	}
}

func TestConfirm(t *testing.T) {
	caps := []*csi.VolumeCapability{rwo, blockCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY)}
	tests := []struct {
		name      string
		req       *csi.ValidateVolumeCapabilitiesRequest
		confirmed bool
		msg       string
	}{
		{"supported", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: "vol-1", VolumeCapabilities: caps,
			VolumeContext: map[string]string{"fsType": "xfs"}, Parameters: map[string]string{"fsType": "xfs"}}, true, ""},
		{"formatting parameter for another filesystem", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: "vol-1",
			VolumeCapabilities: []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, "xfs")},
			Parameters:         map[string]string{"numberOfInodes": "1000"}}, false, "ext4 only"},
		{"one unsupported", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: "vol-1", VolumeCapabilities: append(caps,
			mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY, ""))}, false, "MULTI_NODE_READER_ONLY"},
		{"no access type", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: "vol-1", VolumeCapabilities: []*csi.VolumeCapability{
			{AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}}}, false, "access type"},
		{"unknown parameter", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: "vol-1", VolumeCapabilities: caps,
			Parameters: map[string]string{"size": "1"}}, false, "size"},
		{"mutable parameters", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: "vol-1", VolumeCapabilities: caps,
			MutableParameters: map[string]string{"iops": "1"}}, false, "mutable"},
	}
	for _, tt := range tests {
		resp := confirm(tt.req)
		if got := resp.GetConfirmed() != nil; got != tt.confirmed {
			t.Errorf("%s: confirmed = %v, want %v (message %q)", tt.name, got, tt.confirmed, resp.GetMessage())
			continue
		}
		if tt.confirmed {
			c := resp.GetConfirmed()
			if len(c.GetVolumeCapabilities()) != len(tt.req.VolumeCapabilities) || !maps.Equal(c.GetVolumeContext(), tt.req.VolumeContext) ||
				!maps.Equal(c.GetParameters(), tt.req.Parameters) {
				t.Errorf("%s: confirmed %v does not echo the request", tt.name, c)
			}
		} else if !strings.Contains(resp.GetMessage(), tt.msg) {
			t.Errorf("%s: message %q does not say %q", tt.name, resp.GetMessage(), tt.msg)
		}
	}
}

// Requests the controller refuses before it asks the engine: the server
// has none here, so reaching it would panic.
func TestRequestValidation(t *testing.T) {
	s := New(nil, "n1")
	ctx := context.Background()
	call := func(_ any, err error) error { return err }
	tests := []struct {
		name string
		err  error
		code codes.Code
	}{
		{"CreateVolume without name", call(s.CreateVolume(ctx, &csi.CreateVolumeRequest{VolumeCapabilities: []*csi.VolumeCapability{rwo}})), codes.InvalidArgument},
		{"CreateVolume without capabilities", call(s.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "v"})), codes.InvalidArgument},
		{"CreateVolume on another node", call(s.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "v", VolumeCapabilities: []*csi.VolumeCapability{rwo},
			AccessibilityRequirements: &csi.TopologyRequirement{Preferred: []*csi.Topology{volcap.Topology("n2")}}})), codes.ResourceExhausted},
		{"CreateVolume with a negative capacity range", call(s.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "v", VolumeCapabilities: []*csi.VolumeCapability{rwo},
			CapacityRange: &csi.CapacityRange{RequiredBytes: -1}})), codes.InvalidArgument},
		{"CreateVolume with a negative limit", call(s.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "v", VolumeCapabilities: []*csi.VolumeCapability{rwo},
			CapacityRange: &csi.CapacityRange{RequiredBytes: gib, LimitBytes: -1}})), codes.InvalidArgument},
		{"CreateVolume with an access mode across nodes", call(s.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "v",
			VolumeCapabilities: []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_SINGLE_WRITER, "")}})), codes.InvalidArgument},
		{"CreateVolume with an unknown parameter", call(s.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "v", VolumeCapabilities: []*csi.VolumeCapability{rwo},
			Parameters: map[string]string{"size": "1Gi"}})), codes.InvalidArgument},
		{"CreateVolume with mutable parameters", call(s.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "v", VolumeCapabilities: []*csi.VolumeCapability{rwo},
			MutableParameters: map[string]string{"iops": "1"}})), codes.InvalidArgument},
		{"CreateVolume from a source of no kind", call(s.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "v", VolumeCapabilities: []*csi.VolumeCapability{rwo},
			VolumeContentSource: &csi.VolumeContentSource{}})), codes.InvalidArgument},
		{"CreateVolume preferring a topology not requisite", call(s.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "v", VolumeCapabilities: []*csi.VolumeCapability{rwo},
			AccessibilityRequirements: &csi.TopologyRequirement{Requisite: []*csi.Topology{volcap.Topology("n2")}, Preferred: []*csi.Topology{volcap.Topology("n1")}}})),
			codes.InvalidArgument},
		{"CreateSnapshot with an unknown parameter", call(s.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: "vol-1",
			Parameters: map[string]string{"retention": "1d"}})), codes.InvalidArgument},
		{"CreateSnapshot on another node", call(s.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: "vol-1",
			AccessibilityRequirements: &csi.TopologyRequirement{Requisite: []*csi.Topology{volcap.Topology("n2")}}})), codes.ResourceExhausted},
		{"DeleteVolume without id", call(s.DeleteVolume(ctx, &csi.DeleteVolumeRequest{})), codes.InvalidArgument},
		{"ValidateVolumeCapabilities without id", call(s.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{
			VolumeCapabilities: []*csi.VolumeCapability{rwo}})), codes.InvalidArgument},
		{"ValidateVolumeCapabilities without capabilities", call(s.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: "vol-1"})), codes.InvalidArgument},
		{"ListVolumes with negative max_entries", call(s.ListVolumes(ctx, &csi.ListVolumesRequest{MaxEntries: -1})), codes.InvalidArgument},
		{"ControllerGetVolume without id", call(s.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{})), codes.InvalidArgument},
		{"ControllerGetVolumeHealth without id", call(s.ControllerGetVolumeHealth(ctx, &csi.ControllerGetVolumeHealthRequest{})), codes.InvalidArgument},
		{"ControllerListVolumeHealth with negative max_entries", call(s.ControllerListVolumeHealth(ctx, &csi.ControllerListVolumeHealthRequest{MaxEntries: -5})), codes.InvalidArgument},
		{"GetCapacity with an unsupported capability", call(s.GetCapacity(ctx, &csi.GetCapacityRequest{
			VolumeCapabilities: []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER, "")}})), codes.InvalidArgument},
		{"GetCapacity with an unknown parameter", call(s.GetCapacity(ctx, &csi.GetCapacityRequest{Parameters: map[string]string{"x": "y"}})), codes.InvalidArgument},
		{"CreateSnapshot without name", call(s.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{SourceVolumeId: "vol-1"})), codes.InvalidArgument},
		{"CreateSnapshot without source", call(s.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s"})), codes.InvalidArgument},
		{"DeleteSnapshot without id", call(s.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{})), codes.InvalidArgument},
		{"ListSnapshots with negative max_entries", call(s.ListSnapshots(ctx, &csi.ListSnapshotsRequest{MaxEntries: -1})), codes.InvalidArgument},
		{"GetSnapshot without id", call(s.GetSnapshot(ctx, &csi.GetSnapshotRequest{})), codes.InvalidArgument},
		{"ControllerExpandVolume: the node's", call(s.ControllerExpandVolume(ctx, &csi.ControllerExpandVolumeRequest{VolumeId: "vol-1"})), codes.Unimplemented},
		{"ControllerPublishVolume: nothing to attach", call(s.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: "vol-1"})), codes.Unimplemented},
		{"ControllerModifyVolume: no mutable parameters", call(s.ControllerModifyVolume(ctx, &csi.ControllerModifyVolumeRequest{VolumeId: "vol-1"})), codes.Unimplemented},
	}
	for _, tt := range tests {
		if status.Code(tt.err) != tt.code {
			t.Errorf("%s: %v, want code %s", tt.name, tt.err, tt.code)
		}
	}
}

func TestNotKind(t *testing.T) {
	err := notKind(&thinpool.Volume{ID: "snap-1", Kind: thinpool.KindSnapshot}, thinpool.KindVolume)
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), `no volume has id "snap-1": it is a snapshot's id`) {
		t.Fatalf("notKind = %v", err)
	}
}

// A restore or a clone asked of a node without its source says how to put
// the claim's first pod on the source's node, and how to find that node.
func TestSourceElsewhere(t *testing.T) {
	tests := []struct {
		kind  thinpool.Kind
		where string
	}{
		{thinpool.KindSnapshot, "its VolumeSnapshotContent's label snapshot.storage.kubernetes.io/managed-by, or its source PersistentVolume's node affinity"},
		{thinpool.KindVolume, "its PersistentVolume's node affinity"},
	}
	for _, tt := range tests {
		msg := sourceElsewhere(tt.kind, "node-2")
		for _, want := range []string{`node "node-2" has none`, "nodeSelector topology.csi-thin.io/node: <the source's node>", tt.where} {
			if !strings.Contains(msg, want) {
				t.Errorf("sourceElsewhere(%s) = %q, want it to say %q", tt.kind, msg, want)
			}
		}
	}
}
