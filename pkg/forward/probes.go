package forward

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// The probes of the relays: the cheapest call a node answers for each
// kind, from its database, NotFound when it does not have the id. The
// node names itself in the reply's header (NameNode).

func volumeProbe(ctx context.Context, conn *grpc.ClientConn, id string) (string, error) {
	var md metadata.MD
	_, err := csi.NewControllerClient(conn).ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: id}, grpc.Header(&md))
	return nodeIn(md), err
}

func snapshotProbe(ctx context.Context, conn *grpc.ClientConn, id string) (string, error) {
	var md metadata.MD
	_, err := csi.NewControllerClient(conn).GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: id}, grpc.Header(&md))
	return nodeIn(md), err
}

// groupProbe leaves out the group's snapshot ids: the group's id alone
// names it.
func groupProbe(ctx context.Context, conn *grpc.ClientConn, id string) (string, error) {
	var md metadata.MD
	_, err := csi.NewGroupControllerClient(conn).GetVolumeGroupSnapshot(ctx, &csi.GetVolumeGroupSnapshotRequest{GroupSnapshotId: id}, grpc.Header(&md))
	return nodeIn(md), err
}

// nameProbe asks a node only its name, with the call that reads nothing.
func nameProbe(ctx context.Context, conn *grpc.ClientConn, _ string) (string, error) {
	var md metadata.MD
	_, err := csi.NewControllerClient(conn).ControllerGetCapabilities(ctx, &csi.ControllerGetCapabilitiesRequest{}, grpc.Header(&md))
	return nodeIn(md), err
}
