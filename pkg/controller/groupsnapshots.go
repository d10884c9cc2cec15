package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// GroupServer is the group controller service of one node: group
// snapshots of volumes of this node's pool, taken at one consistency
// point.
type GroupServer struct {
	csi.UnimplementedGroupControllerServer
	s *Server
}

// NewGroup returns the group controller service of the node nodeID over
// engine.
func NewGroup(engine thinpool.Pool, nodeID string) *GroupServer {
	return &GroupServer{s: New(engine, nodeID)}
}

// GroupControllerGetCapabilities lists the group controller's RPCs.
func (g *GroupServer) GroupControllerGetCapabilities(context.Context, *csi.GroupControllerGetCapabilitiesRequest) (*csi.GroupControllerGetCapabilitiesResponse, error) {
	return &csi.GroupControllerGetCapabilitiesResponse{Capabilities: []*csi.GroupControllerServiceCapability{{
		Type: &csi.GroupControllerServiceCapability_Rpc{Rpc: &csi.GroupControllerServiceCapability_RPC{
			Type: csi.GroupControllerServiceCapability_RPC_CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT,
		}},
	}}}, nil
}

// CreateVolumeGroupSnapshot snapshots the volumes at one consistency
// point, all or none. Its volumes must all be on this node: one unknown
// here is NotFound, and the message says why.
func (g *GroupServer) CreateVolumeGroupSnapshot(ctx context.Context, req *csi.CreateVolumeGroupSnapshotRequest) (*csi.CreateVolumeGroupSnapshotResponse, error) {
	if err := checkName("name", req.GetName()); err != nil {
		return nil, err
	}
	if len(req.GetSourceVolumeIds()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "source_volume_ids are required: name the volumes to snapshot together")
	}
	if err := checkSnapshotParameters(req.GetParameters()); err != nil {
		return nil, err
	}
	gs, err := g.s.engine.CreateGroupSnapshot(ctx, req.GetName(), req.GetSourceVolumeIds(), nil)
	if err != nil {
		return nil, err
	}
	klog.V(2).InfoS("Group snapshot created", "name", gs.Name, "groupSnapshotID", gs.ID, "sources", gs.SourceIDs, "snapshots", gs.SnapshotIDs)
	return &csi.CreateVolumeGroupSnapshotResponse{GroupSnapshot: g.group(gs)}, nil
}

// group is the CSI form of a group snapshot. Its snapshots are ready at
// once, as every thin snapshot is.
func (g *GroupServer) group(gs *thinpool.GroupSnapshot) *csi.VolumeGroupSnapshot {
	out := &csi.VolumeGroupSnapshot{
		GroupSnapshotId: gs.ID,
		CreationTime:    timestamppb.New(gs.CreatedAt),
		ReadyToUse:      true,
	}
	for _, m := range gs.Members {
		out.Snapshots = append(out.Snapshots, g.s.snapshot(m))
	}
	return out
}

// checkMembers refuses snapshot_ids that are not the group's snapshots,
// in any order: the spec's snapshot list mismatch. The spec requires
// them, and the csi-snapshotter sends them; csi-sanity leaves them out
// for an unknown group and expects NOT_FOUND (Get) or success (Delete),
// and the group id alone names the group, so none is accepted too.
func checkMembers(gs *thinpool.GroupSnapshot, ids []string) error {
	if len(ids) == 0 || slices.Equal(slices.Sorted(slices.Values(gs.SnapshotIDs)), slices.Sorted(slices.Values(ids))) {
		return nil
	}
	return status.Errorf(codes.InvalidArgument, "snapshot_ids %v are not the snapshots of group snapshot %s, which are %v: pass the group's own",
		ids, gs.ID, gs.SnapshotIDs)
}

// DeleteVolumeGroupSnapshot deletes a group snapshot and its snapshots.
// An unknown id succeeds: the group is gone.
func (g *GroupServer) DeleteVolumeGroupSnapshot(ctx context.Context, req *csi.DeleteVolumeGroupSnapshotRequest) (*csi.DeleteVolumeGroupSnapshotResponse, error) {
	id := req.GetGroupSnapshotId()
	if err := required("group_snapshot_id", id); err != nil {
		return nil, err
	}
	gs, err := g.s.engine.GetGroupSnapshot(id)
	switch {
	case errors.Is(err, thinpool.ErrNotFound):
		klog.V(4).InfoS("Nothing to delete", "groupSnapshotID", id)
		return &csi.DeleteVolumeGroupSnapshotResponse{}, nil
	case err != nil:
		return nil, fmt.Errorf("delete group snapshot %s: %w", id, err)
	}
	if err := checkMembers(gs, req.GetSnapshotIds()); err != nil {
		return nil, err
	}
	if err := g.s.engine.DeleteGroupSnapshot(ctx, id); err != nil && !errors.Is(err, thinpool.ErrNotFound) {
		return nil, err
	}
	klog.V(2).InfoS("Group snapshot deleted", "groupSnapshotID", id, "name", gs.Name, "snapshots", gs.SnapshotIDs)
	return &csi.DeleteVolumeGroupSnapshotResponse{}, nil
}

// GetVolumeGroupSnapshot returns a group snapshot.
func (g *GroupServer) GetVolumeGroupSnapshot(ctx context.Context, req *csi.GetVolumeGroupSnapshotRequest) (*csi.GetVolumeGroupSnapshotResponse, error) {
	id := req.GetGroupSnapshotId()
	if err := required("group_snapshot_id", id); err != nil {
		return nil, err
	}
	gs, err := g.s.engine.GetGroupSnapshot(id)
	if err != nil {
		return nil, err
	}
	if err := checkMembers(gs, req.GetSnapshotIds()); err != nil {
		return nil, err
	}
	return &csi.GetVolumeGroupSnapshotResponse{GroupSnapshot: g.group(gs)}, nil
}
