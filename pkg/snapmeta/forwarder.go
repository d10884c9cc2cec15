package snapmeta

import (
	"context"
	"errors"
	"io"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/pkg/forward"
)

// Forwarder is the SnapshotMetadata service of the whole cluster: it
// relays each call to the node that holds its snapshot (see the package
// doc), found and reached through the forwarder's nodes.
type Forwarder struct {
	csi.UnimplementedSnapshotMetadataServer
	nodes *forward.Nodes
}

// NewForwarder relays to nodes.
func NewForwarder(nodes *forward.Nodes) *Forwarder {
	return &Forwarder{nodes: nodes}
}

// GetMetadataAllocated relays the call to the snapshot's node.
func (f *Forwarder) GetMetadataAllocated(req *csi.GetMetadataAllocatedRequest, stream csi.SnapshotMetadata_GetMetadataAllocatedServer) error {
	if req.GetSnapshotId() == "" {
		return status.Error(codes.InvalidArgument, "snapshot_id is required")
	}
	return f.forward(stream.Context(), req.GetSnapshotId(), "", func(ctx context.Context, c csi.SnapshotMetadataClient) (bool, error) {
		up, err := c.GetMetadataAllocated(ctx, req)
		if err != nil {
			return false, err
		}
		return relay(up, stream.Send)
	})
}

// GetMetadataDelta relays the call to the node of both snapshots.
func (f *Forwarder) GetMetadataDelta(req *csi.GetMetadataDeltaRequest, stream csi.SnapshotMetadata_GetMetadataDeltaServer) error {
	if req.GetBaseSnapshotId() == "" || req.GetTargetSnapshotId() == "" {
		return status.Error(codes.InvalidArgument, "base_snapshot_id and target_snapshot_id are both required")
	}
	return f.forward(stream.Context(), req.GetTargetSnapshotId(), req.GetBaseSnapshotId(), func(ctx context.Context, c csi.SnapshotMetadataClient) (bool, error) {
		up, err := c.GetMetadataDelta(ctx, req)
		if err != nil {
			return false, err
		}
		return relay(up, stream.Send)
	})
}

// forward runs call against the node of snapshot id (and of base, for a
// delta). A node that no longer answers, or no longer has the snapshot,
// before anything was relayed, makes forward look again, once: the node's
// pod may have moved to another address.
func (f *Forwarder) forward(ctx context.Context, id, base string, call func(context.Context, csi.SnapshotMetadataClient) (bool, error)) error {
	for attempt := 1; ; attempt++ {
		w, err := f.ownerOf(ctx, id, base)
		if err != nil {
			return err
		}
		conn, err := f.nodes.Conn(w.Addr)
		if err != nil {
			return err
		}
		klog.V(4).InfoS("Forwarding", "snapshot", id, "base", base, "node", w.Node, "address", w.Addr)
		relayed, err := call(ctx, csi.NewSnapshotMetadataClient(conn))
		if err == nil {
			return nil
		}
		code := status.Code(err)
		if relayed || attempt == 2 || (code != codes.NotFound && code != codes.Unavailable) {
			return err
		}
		klog.V(2).InfoS("Node failed before the first reply; looking for the snapshot again", "snapshot", id, "node", w.Node, "address", w.Addr, "err", err)
		f.nodes.Forget(forward.Snapshot, id, base)
	}
}

// relay sends every message of up on, and says whether one went.
func relay[T any](up interface{ Recv() (*T, error) }, send func(*T) error) (bool, error) {
	relayed := false
	for {
		m, err := up.Recv()
		if err == io.EOF {
			return relayed, nil
		}
		if err != nil {
			return relayed, err
		}
		if err := send(m); err != nil {
			return true, err
		}
		relayed = true
	}
}

// ownerOf is the node of snapshot id and, when base is set, of base too:
// two snapshots on two nodes are of two volumes.
func (f *Forwarder) ownerOf(ctx context.Context, id, base string) (forward.Owner, error) {
	if base == "" {
		return f.nodes.Locate(ctx, forward.Snapshot, id, probe)
	}
	var wb forward.Owner
	var errb error
	done := make(chan struct{})
	go func() { defer close(done); wb, errb = f.nodes.Locate(ctx, forward.Snapshot, base, probe) }()
	w, err := f.nodes.Locate(ctx, forward.Snapshot, id, probe)
	<-done
	if err != nil {
		return w, err
	}
	if errb != nil {
		return wb, errb
	}
	if wb.Node != w.Node {
		return w, status.Errorf(codes.InvalidArgument, "base snapshot %s is on node %s and target snapshot %s on node %s: a delta is between two snapshots of the same volume", base, wb.Node, id, w.Node)
	}
	return w, nil
}

// probe asks the node on conn whether it has snapshot id: its server
// names its node in the response header once it has found the snapshot,
// before reading blocks, and the call is cancelled there. A NotFound
// error says the node does not have it; any other, that it could not say.
func probe(ctx context.Context, conn *grpc.ClientConn, id string) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := csi.NewSnapshotMetadataClient(conn).GetMetadataAllocated(ctx, &csi.GetMetadataAllocatedRequest{SnapshotId: id, MaxResults: 1})
	if err != nil {
		return "", err
	}
	md, err := stream.Header()
	if err == nil {
		if node := md.Get(forward.NodeHeader); len(node) > 0 {
			return node[0], nil
		}
	}
	// No header: the call ended at once; its status says why.
	if _, err := stream.Recv(); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return "", nil // Locate says the server did not name its node
}
