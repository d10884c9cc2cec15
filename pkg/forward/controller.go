package forward

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// Controller is the cluster's controller service for snapshots: it
// relays each call to the node of its volume or snapshot. It serves the
// snapshot calls only; the others are Unimplemented, and
// ControllerGetCapabilities does not list them.
type Controller struct {
	csi.UnimplementedControllerServer
	nodes *Nodes
}

// NewController relays to nodes.
func NewController(nodes *Nodes) *Controller {
	return &Controller{nodes: nodes}
}

// controllerCapabilities are what the relays serve: every call the
// csi-snapshotter makes. Snapshots' accessible_topology, which the nodes
// set, passes through; it is a plugin capability (the identity's).
var controllerCapabilities = []csi.ControllerServiceCapability_RPC_Type{
	csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
	csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
	csi.ControllerServiceCapability_RPC_GET_SNAPSHOT,
}

// ControllerGetCapabilities lists the calls the relays serve.
func (c *Controller) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	resp := &csi.ControllerGetCapabilitiesResponse{}
	for _, t := range controllerCapabilities {
		resp.Capabilities = append(resp.Capabilities, &csi.ControllerServiceCapability{
			Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: t}},
		})
	}
	return resp, nil
}

// locator is the Locate of one id, and its Forget, for relay.
func (c *Controller) locator(kind Kind, id string, probe Probe) (func(context.Context) (Owner, error), func()) {
	return func(ctx context.Context) (Owner, error) { return c.nodes.Locate(ctx, kind, id, probe) },
		func() { c.nodes.Forget(kind, id) }
}

// CreateSnapshot takes the snapshot on the node of its source volume, and
// remembers the snapshot's node.
func (c *Controller) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	src := req.GetSourceVolumeId()
	if src == "" {
		return nil, status.Error(codes.InvalidArgument, "source_volume_id is required")
	}
	var resp *csi.CreateSnapshotResponse
	locate, forget := c.locator(Volume, src, volumeProbe)
	w, err := c.nodes.relay(ctx, "CreateSnapshot", locate, forget, func(ctx context.Context, conn *grpc.ClientConn, o ...grpc.CallOption) (err error) {
		resp, err = csi.NewControllerClient(conn).CreateSnapshot(ctx, req, o...)
		return err
	})
	if err != nil {
		return nil, err
	}
	c.nodes.Remember(Snapshot, resp.GetSnapshot().GetSnapshotId(), w)
	return resp, nil
}

// DeleteSnapshot deletes the snapshot on its node. A snapshot on no node,
// when every node answered, is gone: success, as the spec has it.
func (c *Controller) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot_id is required")
	}
	locate, forget := c.locator(Snapshot, id, snapshotProbe)
	gone := false
	_, err := c.nodes.relay(ctx, "DeleteSnapshot", func(ctx context.Context) (Owner, error) {
		w, err := locate(ctx)
		gone = status.Code(err) == codes.NotFound
		return w, err
	}, forget, func(ctx context.Context, conn *grpc.ClientConn, o ...grpc.CallOption) error {
		_, err := csi.NewControllerClient(conn).DeleteSnapshot(ctx, req, o...)
		return err
	})
	if gone {
		klog.V(4).InfoS("Nothing to delete: the snapshot is on no node", "snapshotID", id)
		return &csi.DeleteSnapshotResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	forget()
	return &csi.DeleteSnapshotResponse{}, nil
}

// GetSnapshot returns the snapshot from its node.
func (c *Controller) GetSnapshot(ctx context.Context, req *csi.GetSnapshotRequest) (*csi.GetSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot_id is required")
	}
	var resp *csi.GetSnapshotResponse
	locate, forget := c.locator(Snapshot, id, snapshotProbe)
	_, err := c.nodes.relay(ctx, "GetSnapshot", locate, forget, func(ctx context.Context, conn *grpc.ClientConn, o ...grpc.CallOption) (err error) {
		resp, err = csi.NewControllerClient(conn).GetSnapshot(ctx, req, o...)
		return err
	})
	return resp, err
}
