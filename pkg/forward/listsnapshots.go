package forward

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"k8s.io/klog/v2"
)

// ListSnapshots lists snapshots: one by id from its node, those of a
// source volume from the volume's node, or every snapshot of every node,
// a page at a time. A filter that matches nothing, a snapshot on no node
// included, gives an empty list, as the spec has it.
func (c *Controller) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	if req.GetMaxEntries() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "max_entries %d is negative: give 0 for every entry, or a positive page size", req.GetMaxEntries())
	}
	if id := req.GetSnapshotId(); id != "" {
		return c.listOne(ctx, req, id)
	}
	nodes, err := c.listNodes(ctx, req.GetSourceVolumeId())
	if err != nil {
		return nil, err
	}
	return c.listAcross(ctx, req, nodes)
}

// listOne relays a list of one snapshot to its node.
func (c *Controller) listOne(ctx context.Context, req *csi.ListSnapshotsRequest, id string) (*csi.ListSnapshotsResponse, error) {
	var resp *csi.ListSnapshotsResponse
	locate, forget := c.locator(Snapshot, id, snapshotProbe)
	gone := false
	_, err := c.nodes.relay(ctx, "ListSnapshots", func(ctx context.Context) (Owner, error) {
		w, err := locate(ctx)
		gone = status.Code(err) == codes.NotFound
		return w, err
	}, forget, func(ctx context.Context, conn *grpc.ClientConn, o ...grpc.CallOption) (err error) {
		resp, err = csi.NewControllerClient(conn).ListSnapshots(ctx, req, o...)
		return err
	})
	if gone {
		return &csi.ListSnapshotsResponse{}, nil
	}
	return resp, err
}

// listNodes are the nodes a list goes through: the node of source when it
// has one, since a volume's snapshots are on its node, else every node,
// which is also where the snapshots of a volume deleted since are.
func (c *Controller) listNodes(ctx context.Context, source string) ([]Owner, error) {
	if source != "" {
		w, err := c.nodes.Locate(ctx, Volume, source, volumeProbe)
		if err == nil {
			return []Owner{w}, nil
		}
		if status.Code(err) != codes.NotFound {
			return nil, err
		}
	}
	return c.nodes.every(ctx)
}

// A list's starting_token, across nodes, is the node to go on with and
// that node's own token: "node/token"; "node/" starts at the node's
// first snapshot. Node names hold no "/".
func listToken(node, token string) string { return node + "/" + token }

// parseListToken splits a starting_token; the empty token starts at the
// first node.
func parseListToken(token string) (node, nodeToken string, err error) {
	if token == "" {
		return "", "", nil
	}
	node, nodeToken, ok := strings.Cut(token, "/")
	if !ok || node == "" {
		return "", "", status.Errorf(codes.Aborted, "starting_token %q is not one this forwarder gave: list again from the start, without a starting_token", token)
	}
	return node, nodeToken, nil
}

// listAcross lists the snapshots of nodes in their order, from the node
// and the node's token that starting_token names, up to max_entries (0:
// all), each node asked for what the page still holds.
func (c *Controller) listAcross(ctx context.Context, req *csi.ListSnapshotsRequest, nodes []Owner) (*csi.ListSnapshotsResponse, error) {
	start, token, err := parseListToken(req.GetStartingToken())
	if err != nil {
		return nil, err
	}
	i := 0
	if start != "" {
		var found bool
		i, found = slices.BinarySearchFunc(nodes, start, func(w Owner, node string) int { return cmp.Compare(w.Node, node) })
		if !found {
			return nil, status.Errorf(codes.Aborted, "starting_token %q names node %s, which is not among the csi-thin nodes the list goes through now: list again from the start, without a starting_token", req.GetStartingToken(), start)
		}
	}
	max := int(req.GetMaxEntries())
	out := &csi.ListSnapshotsResponse{}
	for ; i < len(nodes); i++ {
		w := nodes[i]
		r := proto.CloneOf(req)
		r.StartingToken = token
		if max > 0 {
			r.MaxEntries = int32(max - len(out.Entries))
		}
		var resp *csi.ListSnapshotsResponse
		err := c.nodes.callNode(ctx, w, func(ctx context.Context, conn *grpc.ClientConn, o ...grpc.CallOption) (err error) {
			resp, err = csi.NewControllerClient(conn).ListSnapshots(ctx, r, o...)
			return err
		})
		if err != nil {
			return nil, status.Errorf(status.Code(err), "list the snapshots of node %s: %s", w.Node, status.Convert(err).Message())
		}
		out.Entries = append(out.Entries, resp.GetEntries()...)
		token = ""
		if next := resp.GetNextToken(); next != "" {
			out.NextToken = listToken(w.Node, next)
			break
		}
		if max > 0 && len(out.Entries) >= max {
			if i+1 < len(nodes) {
				out.NextToken = listToken(nodes[i+1].Node, "")
			}
			break
		}
	}
	klog.V(4).InfoS("ListSnapshots", "source", req.GetSourceVolumeId(), "token", req.GetStartingToken(), "max", max, "nodes", len(nodes), "entries", len(out.Entries), "next", out.NextToken)
	return out, nil
}
