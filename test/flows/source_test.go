package flows

import (
	"context"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

// TestSourceOnAnotherNode: a restore or a clone whose source this node does
// not have is ResourceExhausted when the request asks for this node's
// topology, as the external-provisioner does, which then gives the claim
// back to the scheduler; without topology it is NotFound. Either way the
// message says to put the claim's first pod on the source's node.
func TestSourceOnAnotherNode(t *testing.T) {
	d := startDriver(t, "csi-thin-flow-elsewhere")
	here := &csi.TopologyRequirement{
		Requisite: []*csi.Topology{{Segments: map[string]string{"topology.csi-thin.io/node": "flow-node"}}},
		Preferred: []*csi.Topology{{Segments: map[string]string{"topology.csi-thin.io/node": "flow-node"}}},
	}
	tests := []struct {
		name string
		src  *csi.VolumeContentSource
		topo *csi.TopologyRequirement
		want codes.Code
	}{
		{"restore, topology", fromSnapshot("snap-0123456789abcdef01234567"), here, codes.ResourceExhausted},
		{"clone, topology", fromVolume("vol-0123456789abcdef01234567"), here, codes.ResourceExhausted},
		{"restore, no topology", fromSnapshot("snap-0123456789abcdef01234567"), nil, codes.NotFound},
		{"clone, no topology", fromVolume("vol-0123456789abcdef01234567"), nil, codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.ctrl.CreateVolume(context.Background(), &csi.CreateVolumeRequest{
				Name: "elsewhere", CapacityRange: &csi.CapacityRange{RequiredBytes: 64 * mib},
				VolumeCapabilities: []*csi.VolumeCapability{mountCap("ext4")}, VolumeContentSource: tt.src,
				AccessibilityRequirements: tt.topo,
			})
			wantStatus(t, "create from a source the node does not have", err, tt.want)
			if !strings.Contains(err.Error(), "give the claim's first pod the nodeSelector topology.csi-thin.io/node") {
				t.Errorf("the error does not say where the pod must go: %v", err)
			}
		})
	}
}
