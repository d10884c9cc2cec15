package controller

import (
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// seedGet makes an xfs volume vol, its snapshot snap, and a volume other
// deleted since its snapshot orphan was taken.
func seedGet(t *testing.T) *fixture {
	f := newFixture(t)
	v, err := f.pool.CreateVolume(t.Context(), thinpool.CreateRequest{Name: "vol", RequiredBytes: gib, Parameters: map[string]string{volcap.ParamFsType: "xfs"}})
	if err != nil {
		t.Fatal(err)
	}
	f.ids["vol"] = v.ID
	f.snapshot("snap", "vol")
	f.volume("other", 2*gib)
	f.snapshot("orphan", "other")
	f.remove("other")
	return f
}

// TestControllerGetVolume: a volume here as ListVolumes gives it, and the
// spec's NOT_FOUND for any other id.
func TestControllerGetVolume(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*fixture)
		id    string
		code  codes.Code
		says  []string
	}{
		{name: "a volume", id: "vol"},
		{name: "a volume while the pool is unhealthy", setup: func(f *fixture) { f.pool.SetHealth(errPoolUnhealthy) }, id: "vol"},
		{name: "a volume not here", id: "gone", code: codes.NotFound, says: []string{`"vol-unknown-gone"`}},
		{name: "a deleted volume", id: "other", code: codes.NotFound},
		{name: "a snapshot's id", id: "snap", code: codes.NotFound, says: []string{"it is a snapshot's id; pass a volume id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := seedGet(t)
			if tt.setup != nil {
				tt.setup(f)
			}
			resp, err := f.s.ControllerGetVolume(t.Context(), &csi.ControllerGetVolumeRequest{VolumeId: f.id(tt.id)})
			wantCode(t, err, tt.code, tt.says...)
			if err != nil {
				return
			}
			want := &csi.Volume{VolumeId: f.id(tt.id), CapacityBytes: gib, VolumeContext: map[string]string{volcap.ParamFsType: "xfs"},
				AccessibleTopology: []*csi.Topology{volcap.Topology(thisNode)}}
			if !proto.Equal(resp.GetVolume(), want) || resp.GetStatus() == nil {
				t.Errorf("got %v, want volume %v and a status", resp, want)
			}
		})
	}
}

// TestGetSnapshot: a snapshot here, its volume deleted or not, and the
// spec's NOT_FOUND for any other id.
func TestGetSnapshot(t *testing.T) {
	tests := []struct {
		name   string
		id     string
		code   codes.Code
		says   []string
		source string
		bytes  int64
	}{
		{name: "a snapshot", id: "snap", source: "vol", bytes: gib},
		{name: "a snapshot whose volume is deleted", id: "orphan", source: "other", bytes: 2 * gib},
		{name: "a snapshot not here", id: "gone", code: codes.NotFound},
		{name: "a volume's id", id: "vol", code: codes.NotFound, says: []string{"it is a volume's id; pass a snapshot id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := seedGet(t)
			resp, err := f.s.GetSnapshot(t.Context(), &csi.GetSnapshotRequest{SnapshotId: f.id(tt.id)})
			wantCode(t, err, tt.code, tt.says...)
			if err != nil {
				return
			}
			s, rec := resp.GetSnapshot(), f.get(f.id(tt.id))
			if s.GetSnapshotId() != rec.ID || s.GetSourceVolumeId() != f.id(tt.source) || s.GetSizeBytes() != tt.bytes ||
				!s.GetReadyToUse() || !s.GetCreationTime().AsTime().Equal(rec.CreatedAt) {
				t.Errorf("got %v, want the pool's %+v", s, rec)
			}
			if !onlyThisNode(s.GetAccessibleTopology()) {
				t.Errorf("usable from %v, want this node's topology alone", s.GetAccessibleTopology())
			}
		})
	}
}
