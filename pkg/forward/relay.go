package forward

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// A call is one unary call to a node, with the options relay adds (the
// header it reads).
type call func(ctx context.Context, conn *grpc.ClientConn, opts ...grpc.CallOption) error

// relay runs c on the node locate finds. A node that fails with NotFound
// or Unavailable, or that answers as another node than the one expected
// (its address now another node's pod), makes relay forget what locate
// found and look again, once: the id's pod may have a new address after a
// restart, and a cached owner may be stale. Every CSI call is idempotent,
// so the second attempt is safe.
func (n *Nodes) relay(ctx context.Context, method string, locate func(context.Context) (Owner, error), forget func(), c call) (Owner, error) {
	for attempt := 1; ; attempt++ {
		w, err := locate(ctx)
		if err != nil {
			return w, err
		}
		klog.V(4).InfoS("Forwarding", "method", method, "node", w.Node, "address", w.Addr)
		err = n.callNode(ctx, w, c)
		if err == nil {
			return w, nil
		}
		code := status.Code(err)
		if attempt == 2 || (code != codes.NotFound && code != codes.Unavailable) {
			return w, err
		}
		klog.V(2).InfoS("Node failed; looking for its node again", "method", method, "node", w.Node, "address", w.Addr, "err", err)
		forget()
	}
}

// callNode runs c on node w and checks that w answered: a reply that
// names another node is Unavailable, since the call may have reached a
// node that does not have what it was about.
func (n *Nodes) callNode(ctx context.Context, w Owner, c call) error {
	conn, err := n.Conn(w.Addr)
	if err != nil {
		return err
	}
	var md metadata.MD
	if err := c(ctx, conn, grpc.Header(&md)); err != nil {
		return err
	}
	if got := nodeIn(md); got != w.Node {
		return status.Errorf(codes.Unavailable, "the csi-thin at %s answered as node %q, not %s: its pod was replaced; retry", w.Addr, got, w.Node)
	}
	return nil
}
