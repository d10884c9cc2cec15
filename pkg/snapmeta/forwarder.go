package snapmeta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// Bounds of the forwarder's lookups: how many snapshots' nodes it
// remembers, and how long it waits for a node to say whether it has one.
const (
	ownersCached = 4096
	probeTimeout = 10 * time.Second
)

// Forwarder is the SnapshotMetadata service of the whole cluster: it
// relays each call to the node that holds its snapshot (see the package
// doc).
type Forwarder struct {
	csi.UnimplementedSnapshotMetadataServer
	peers  Peers
	creds  credentials.TransportCredentials
	owners *owners

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn // by node address
}

// NewForwarder relays to the nodes peers lists, over creds (ClientTLS).
func NewForwarder(peers Peers, creds credentials.TransportCredentials) *Forwarder {
	return &Forwarder{peers: peers, creds: creds, owners: newOwners(ownersCached), conns: map[string]*grpc.ClientConn{}}
}

// Close closes the connections to the nodes.
func (f *Forwarder) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for addr, c := range f.conns {
		c.Close()
		delete(f.conns, addr)
	}
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
		conn, err := f.conn(w.addr)
		if err != nil {
			return err
		}
		klog.V(4).InfoS("Forwarding", "snapshot", id, "base", base, "node", w.node, "address", w.addr)
		relayed, err := call(ctx, csi.NewSnapshotMetadataClient(conn))
		if err == nil {
			return nil
		}
		code := status.Code(err)
		if relayed || attempt == 2 || (code != codes.NotFound && code != codes.Unavailable) {
			return err
		}
		klog.V(2).InfoS("Node failed before the first reply; looking for the snapshot again", "snapshot", id, "node", w.node, "address", w.addr, "err", err)
		f.owners.forget(id, base)
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
func (f *Forwarder) ownerOf(ctx context.Context, id, base string) (owner, error) {
	if base == "" {
		return f.locate(ctx, id)
	}
	var wb owner
	var errb error
	done := make(chan struct{})
	go func() { defer close(done); wb, errb = f.locate(ctx, base) }()
	w, err := f.locate(ctx, id)
	<-done
	if err != nil {
		return w, err
	}
	if errb != nil {
		return wb, errb
	}
	if wb.node != w.node {
		return w, status.Errorf(codes.InvalidArgument, "base snapshot %s is on node %s and target snapshot %s on node %s: a delta is between two snapshots of the same volume", base, wb.node, id, w.node)
	}
	return w, nil
}

// locate finds the node of snapshot id: from the cache, or by asking every
// node at once.
func (f *Forwarder) locate(ctx context.Context, id string) (owner, error) {
	if w, ok := f.owners.get(id); ok {
		return w, nil
	}
	addrs, err := f.peers(ctx)
	if err != nil {
		return owner{}, status.Errorf(codes.Unavailable, "find the csi-thin nodes: %v", err)
	}
	if len(addrs) == 0 {
		return owner{}, status.Error(codes.Unavailable, "no csi-thin node serves snapshot metadata: check the node DaemonSet's pods and its headless Service")
	}
	f.dropGone(addrs)

	type answer struct {
		addr, node string
		err        error
	}
	answers := make(chan answer, len(addrs))
	for _, addr := range addrs {
		go func() {
			node, err := f.probe(ctx, addr, id)
			answers <- answer{addr, node, err}
		}()
	}
	var found []owner
	var failed []string
	for range addrs {
		a := <-answers
		switch {
		case a.err == nil:
			found = append(found, owner{a.addr, a.node})
		case status.Code(a.err) != codes.NotFound:
			failed = append(failed, fmt.Sprintf("%s: %v", a.addr, status.Convert(a.err).Message()))
		}
	}
	if err := ctx.Err(); err != nil {
		return owner{}, status.FromContextError(err).Err()
	}
	switch {
	case len(found) == 1:
	case len(found) > 1:
		for _, w := range found[1:] {
			if w.node != found[0].node {
				return owner{}, status.Errorf(codes.Internal, "snapshot %s is on two nodes, %s (%s) and %s (%s): snapshot ids are unique, so one of these pools was copied from the other; remove the copy", id, found[0].node, found[0].addr, w.node, w.addr)
			}
		}
		// The same node at two addresses: its old pod and its new one,
		// during a rolling update. Either answers.
	case len(failed) > 0:
		return owner{}, status.Errorf(codes.Unavailable, "snapshot %s is on none of the %d csi-thin nodes that answered, and %d did not, so it may be on one of those: %s", id, len(addrs)-len(failed), len(failed), strings.Join(failed, "; "))
	default:
		return owner{}, status.Errorf(codes.NotFound, "snapshot %s is on none of the %d csi-thin nodes", id, len(addrs))
	}
	klog.V(4).InfoS("Found snapshot", "snapshot", id, "node", found[0].node, "address", found[0].addr)
	f.owners.put(id, found[0])
	return found[0], nil
}

// probe asks the node at addr whether it has snapshot id: its server
// names its node in the response header once it has found the snapshot,
// before reading blocks, and the call is cancelled there. A NotFound
// error says the node does not have it; any other, that it could not say.
func (f *Forwarder) probe(ctx context.Context, addr, id string) (string, error) {
	conn, err := f.conn(addr)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	stream, err := csi.NewSnapshotMetadataClient(conn).GetMetadataAllocated(ctx, &csi.GetMetadataAllocatedRequest{SnapshotId: id, MaxResults: 1})
	if err != nil {
		return "", err
	}
	md, err := stream.Header()
	if err == nil {
		if node := md.Get(NodeHeader); len(node) > 0 {
			return node[0], nil
		}
	}
	// No header: the call ended at once; its status says why.
	if _, err := stream.Recv(); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return "", status.Errorf(codes.Unknown, "the server at %s is not a csi-thin node: it did not name its node", addr)
}

// conn is the connection to the node at addr, opened on first use.
func (f *Forwarder) conn(addr string) (*grpc.ClientConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(f.creds))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "connect to %s: %v", addr, err)
	}
	f.conns[addr] = c
	return c, nil
}

// dropGone closes the connections to addresses no node has any more, and
// forgets the snapshots found there.
func (f *Forwarder) dropGone(addrs []string) {
	keep := map[string]bool{}
	for _, a := range addrs {
		keep[a] = true
	}
	f.mu.Lock()
	for addr, c := range f.conns {
		if !keep[addr] {
			c.Close()
			delete(f.conns, addr)
		}
	}
	f.mu.Unlock()
	f.owners.forgetAddrs(keep)
}
