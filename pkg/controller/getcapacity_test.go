package controller

import (
	"errors"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// TestGetCapacity reports what the fake pool's budget has left, with a
// 1 GiB volume and its snapshot promised: nothing for another node's
// topology (the engine is not asked) or while the pool takes no new
// volume. Unsupported capabilities and parameters are in
// TestRequestValidation; the rounding to whole blocks in TestCapacity.
func TestGetCapacity(t *testing.T) {
	const left = budget - 2*gib
	tests := []struct {
		name      string
		setup     func(*fixture)
		req       *csi.GetCapacityRequest
		code      codes.Code
		available int64
		asked     bool // the engine's Capacity
	}{
		{name: "no constraints", req: &csi.GetCapacityRequest{}, available: left, asked: true},
		{name: "this node's topology", req: &csi.GetCapacityRequest{AccessibleTopology: volcap.Topology(thisNode)}, available: left, asked: true},
		{name: "supported capabilities and parameters", req: &csi.GetCapacityRequest{
			VolumeCapabilities: []*csi.VolumeCapability{rwo, blockCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER)},
			Parameters:         map[string]string{volcap.ParamFsType: "xfs", "csi.storage.k8s.io/pvc/name": "data"},
		}, available: left, asked: true},
		{name: "the budget all promised", setup: func(f *fixture) { f.volume("rest", left) }, req: &csi.GetCapacityRequest{}, asked: true},
		{name: "another node's topology", req: &csi.GetCapacityRequest{AccessibleTopology: volcap.Topology("n2")}},
		{name: "a topology without csi-thin's segment", req: &csi.GetCapacityRequest{
			AccessibleTopology: &csi.Topology{Segments: map[string]string{"topology.kubernetes.io/zone": "a"}}}},
		{name: "pool full", setup: func(f *fixture) { f.pool.SetHealth(errPoolFull) }, req: &csi.GetCapacityRequest{}},
		{name: "pool unhealthy", setup: func(f *fixture) { f.pool.SetHealth(errPoolUnhealthy) }, req: &csi.GetCapacityRequest{}},
		{name: "the engine's capacity fails", setup: func(f *fixture) { f.pool.FailNext("Capacity", errors.New("pool status: input/output error")) },
			req: &csi.GetCapacityRequest{}, code: codes.Internal, asked: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.volume("vol", gib)
			f.snapshot("snap", "vol")
			if tt.setup != nil {
				tt.setup(f)
			}
			resp, err := f.s.GetCapacity(t.Context(), tt.req)
			wantCode(t, err, tt.code)
			if asked := f.pool.Calls("Capacity") > 0; asked != tt.asked {
				t.Errorf("the engine's capacity asked: %t, want %t", asked, tt.asked)
			}
			if err != nil {
				return
			}
			if resp.GetAvailableCapacity() != tt.available || resp.GetMaximumVolumeSize().GetValue() != tt.available ||
				resp.GetMaximumVolumeSize() == nil || resp.GetMinimumVolumeSize().GetValue() != int64(f.pool.BlockSizeBytes()) {
				t.Errorf("capacity %v, want %d bytes available and the largest volume, a block the smallest", resp, tt.available)
			}
		})
	}
}
