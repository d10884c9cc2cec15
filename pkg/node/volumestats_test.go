package node

import (
	"context"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

// TestNodeGetVolumeStats runs NodeGetVolumeStats over the fake pool on a
// published volume: a block volume's size is its active device's, from
// the engine; a mount volume's usage its filesystem's. The paths the
// usage is refused for are in TestVolumeUsage, the missing fields in
// TestRequestValidation.
func TestNodeGetVolumeStats(t *testing.T) {
	tests := []struct {
		name       string
		cap        *csi.VolumeCapability
		deactivate bool   // the device is no longer active
		id         string // another id than the volume's
		path       string // another volume path than the target
		want       codes.Code
		wantUsage  []csi.VolumeUsage_Unit
	}{
		{name: "block: the device's size", cap: blockCap(rwo), want: codes.OK, wantUsage: []csi.VolumeUsage_Unit{csi.VolumeUsage_BYTES}},
		{name: "block whose device is not active", cap: blockCap(rwo), deactivate: true, want: codes.NotFound},
		{
			name: "mount: the filesystem's bytes and inodes", cap: mountCap(rwo, "ext4"),
			want: codes.OK, wantUsage: []csi.VolumeUsage_Unit{csi.VolumeUsage_BYTES, csi.VolumeUsage_INODES},
		},
		{name: "unknown volume", cap: mountCap(rwo, "ext4"), id: "vol-missing", want: codes.NotFound},
		{name: "volume path missing", cap: mountCap(rwo, "ext4"), path: "missing", want: codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newNodeFixture(t)
			id := f.volume("pv-1")
			f.staged(id, tt.cap)
			target := f.targetPath("a")
			if err := f.publish(id, target, tt.cap, false); err != nil {
				t.Fatal(err)
			}
			if tt.deactivate {
				if err := f.pool.Deactivate(context.Background(), id); err != nil {
					t.Fatal(err)
				}
			}
			req := &csi.NodeGetVolumeStatsRequest{VolumeId: id, VolumePath: target}
			if tt.id != "" {
				req.VolumeId = tt.id
			}
			if tt.path != "" {
				req.VolumePath = f.targetPath(tt.path)
			}
			resp, err := f.s.NodeGetVolumeStats(context.Background(), req)
			wantCSI(t, err, tt.want)
			usage := resp.GetUsage()
			if len(usage) != len(tt.wantUsage) {
				t.Fatalf("usage %v, want %v", usage, tt.wantUsage)
			}
			for i, u := range usage {
				if u.GetUnit() != tt.wantUsage[i] || u.GetTotal() <= 0 {
					t.Errorf("usage %v, want %s", u, tt.wantUsage[i])
				}
			}
			if tt.cap.GetBlock() != nil && len(usage) > 0 && usage[0].GetTotal() != gib {
				t.Errorf("block volume of %d bytes, want %d", usage[0].GetTotal(), gib)
			}
		})
	}
}
