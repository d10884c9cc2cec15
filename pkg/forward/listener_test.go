package forward

import (
	"context"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestGuard: exactly the calls the forwarder makes pass; nothing that
// creates, changes or mounts a volume does.
func TestGuard(t *testing.T) {
	cases := []struct {
		method string
		pass   bool
	}{
		{csi.Controller_CreateSnapshot_FullMethodName, true},
		{csi.Controller_DeleteSnapshot_FullMethodName, true},
		{csi.Controller_ListSnapshots_FullMethodName, true},
		{csi.Controller_GetSnapshot_FullMethodName, true},
		{csi.Controller_ControllerGetVolume_FullMethodName, true},
		{csi.Controller_ControllerGetCapabilities_FullMethodName, true},
		{csi.GroupController_CreateVolumeGroupSnapshot_FullMethodName, true},
		{csi.GroupController_DeleteVolumeGroupSnapshot_FullMethodName, true},
		{csi.GroupController_GetVolumeGroupSnapshot_FullMethodName, true},
		{csi.GroupController_GroupControllerGetCapabilities_FullMethodName, true},
		{csi.SnapshotMetadata_GetMetadataAllocated_FullMethodName, true},
		{csi.SnapshotMetadata_GetMetadataDelta_FullMethodName, true},
		{csi.Controller_CreateVolume_FullMethodName, false},
		{csi.Controller_DeleteVolume_FullMethodName, false},
		{csi.Controller_ControllerExpandVolume_FullMethodName, false},
		{csi.Controller_ListVolumes_FullMethodName, false},
		{csi.Controller_GetCapacity_FullMethodName, false},
		{csi.Node_NodeStageVolume_FullMethodName, false},
		{csi.Node_NodePublishVolume_FullMethodName, false},
		{csi.Identity_GetPluginInfo_FullMethodName, false},
		{"/csi.v1.Controller/createsnapshot", false},
		{"", false},
	}
	for _, c := range cases {
		t.Run(c.method, func(t *testing.T) {
			called := false
			_, err := Guard(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: c.method}, func(context.Context, any) (any, error) {
				called = true
				return nil, nil
			})
			if called != c.pass || (err == nil) != c.pass {
				t.Fatalf("handler called %v, error %v; want it to pass: %v", called, err, c.pass)
			}
			if !c.pass && (status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "not served on this listener")) {
				t.Errorf("refused with %v, want PermissionDenied saying it is not served on this listener", err)
			}
			serr := GuardStream(nil, nil, &grpc.StreamServerInfo{FullMethod: c.method}, func(any, grpc.ServerStream) error { return nil })
			if (serr == nil) != c.pass {
				t.Errorf("GuardStream: %v, want it to pass: %v", serr, c.pass)
			}
		})
	}
}
