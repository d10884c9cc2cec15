package forward

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// GroupController is the cluster's group controller service: it relays
// each call to the node of the group's volumes, or of the group.
type GroupController struct {
	csi.UnimplementedGroupControllerServer
	nodes *Nodes
}

// NewGroupController relays to nodes.
func NewGroupController(nodes *Nodes) *GroupController {
	return &GroupController{nodes: nodes}
}

// GroupControllerGetCapabilities lists the group controller's RPCs.
func (g *GroupController) GroupControllerGetCapabilities(context.Context, *csi.GroupControllerGetCapabilitiesRequest) (*csi.GroupControllerGetCapabilitiesResponse, error) {
	return &csi.GroupControllerGetCapabilitiesResponse{Capabilities: []*csi.GroupControllerServiceCapability{{
		Type: &csi.GroupControllerServiceCapability_Rpc{Rpc: &csi.GroupControllerServiceCapability_RPC{
			Type: csi.GroupControllerServiceCapability_RPC_CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT,
		}},
	}}}, nil
}

// oneNode is why a group's volumes must be on one node, as the node's own
// refusal says it of a volume it does not have.
const oneNode = "a group snapshot's volumes must all be on one node, because the group is made consistent by stopping " +
	"every volume's I/O at once in that node's kernel and taking the snapshots in its one pool; group volumes of one node only"

// CreateVolumeGroupSnapshot takes the group on the node of its volumes,
// and remembers the node of the group and of its snapshots. Volumes on
// several nodes are InvalidArgument, naming the nodes; a volume on no
// node is NotFound.
func (g *GroupController) CreateVolumeGroupSnapshot(ctx context.Context, req *csi.CreateVolumeGroupSnapshotRequest) (*csi.CreateVolumeGroupSnapshotResponse, error) {
	ids := req.GetSourceVolumeIds()
	if len(ids) == 0 {
		return nil, status.Error(codes.InvalidArgument, "source_volume_ids are required: name the volumes to snapshot together")
	}
	var resp *csi.CreateVolumeGroupSnapshotResponse
	w, err := g.nodes.relay(ctx, "CreateVolumeGroupSnapshot", func(ctx context.Context) (Owner, error) {
		return g.ownerOfAll(ctx, req.GetName(), ids)
	}, func() { g.nodes.Forget(Volume, ids...) }, func(ctx context.Context, conn *grpc.ClientConn, o ...grpc.CallOption) (err error) {
		resp, err = csi.NewGroupControllerClient(conn).CreateVolumeGroupSnapshot(ctx, req, o...)
		return err
	})
	if err != nil {
		return nil, err
	}
	gs := resp.GetGroupSnapshot()
	g.nodes.Remember(GroupSnapshot, gs.GetGroupSnapshotId(), w)
	for _, s := range gs.GetSnapshots() {
		g.nodes.Remember(Snapshot, s.GetSnapshotId(), w)
	}
	return resp, nil
}

// ownerOfAll is the one node of every volume of group name.
func (g *GroupController) ownerOfAll(ctx context.Context, name string, ids []string) (Owner, error) {
	owners := make([]Owner, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { owners[i], errs[i] = g.nodes.Locate(ctx, Volume, id, volumeProbe) })
	}
	wg.Wait()
	// A volume on no node decides; then any other failure.
	var failed error
	for _, err := range errs {
		switch {
		case status.Code(err) == codes.NotFound:
			return Owner{}, status.Errorf(codes.NotFound, "group snapshot %q: %s", name, status.Convert(err).Message())
		case err != nil && failed == nil:
			failed = err
		}
	}
	if failed != nil {
		return Owner{}, status.Errorf(status.Code(failed), "group snapshot %q: %s", name, status.Convert(failed).Message())
	}
	byNode := map[string][]string{}
	for i, w := range owners {
		byNode[w.Node] = append(byNode[w.Node], ids[i])
	}
	if len(byNode) == 1 {
		return owners[0], nil
	}
	var where []string
	for _, node := range slices.Sorted(maps.Keys(byNode)) {
		where = append(where, fmt.Sprintf("%s on node %s", strings.Join(byNode[node], ", "), node))
	}
	return Owner{}, status.Errorf(codes.InvalidArgument, "group snapshot %q: its volumes are on %d nodes (%s), and %s",
		name, len(byNode), strings.Join(where, "; "), oneNode)
}

// locator is the Locate of group id, and its Forget, for relay.
func (g *GroupController) locator(id string) (func(context.Context) (Owner, error), func()) {
	return func(ctx context.Context) (Owner, error) { return g.nodes.Locate(ctx, GroupSnapshot, id, groupProbe) },
		func() { g.nodes.Forget(GroupSnapshot, id) }
}

// DeleteVolumeGroupSnapshot deletes the group on its node. A group on no
// node, when every node answered, is gone: success, as the spec has it.
func (g *GroupController) DeleteVolumeGroupSnapshot(ctx context.Context, req *csi.DeleteVolumeGroupSnapshotRequest) (*csi.DeleteVolumeGroupSnapshotResponse, error) {
	id := req.GetGroupSnapshotId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "group_snapshot_id is required")
	}
	locate, forget := g.locator(id)
	gone := false
	_, err := g.nodes.relay(ctx, "DeleteVolumeGroupSnapshot", func(ctx context.Context) (Owner, error) {
		w, err := locate(ctx)
		gone = status.Code(err) == codes.NotFound
		return w, err
	}, forget, func(ctx context.Context, conn *grpc.ClientConn, o ...grpc.CallOption) error {
		_, err := csi.NewGroupControllerClient(conn).DeleteVolumeGroupSnapshot(ctx, req, o...)
		return err
	})
	if gone {
		klog.V(4).InfoS("Nothing to delete: the group snapshot is on no node", "groupSnapshotID", id)
		return &csi.DeleteVolumeGroupSnapshotResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	forget()
	g.nodes.Forget(Snapshot, req.GetSnapshotIds()...)
	return &csi.DeleteVolumeGroupSnapshotResponse{}, nil
}

// GetVolumeGroupSnapshot returns the group from its node.
func (g *GroupController) GetVolumeGroupSnapshot(ctx context.Context, req *csi.GetVolumeGroupSnapshotRequest) (*csi.GetVolumeGroupSnapshotResponse, error) {
	id := req.GetGroupSnapshotId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "group_snapshot_id is required")
	}
	var resp *csi.GetVolumeGroupSnapshotResponse
	locate, forget := g.locator(id)
	_, err := g.nodes.relay(ctx, "GetVolumeGroupSnapshot", locate, forget, func(ctx context.Context, conn *grpc.ClientConn, o ...grpc.CallOption) (err error) {
		resp, err = csi.NewGroupControllerClient(conn).GetVolumeGroupSnapshot(ctx, req, o...)
		return err
	})
	return resp, err
}
