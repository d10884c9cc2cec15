package forward

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// A Kind is what an id names. Each kind has its own cache of owners.
type Kind string

// The kinds of ids the forwarder looks up.
const (
	Volume        Kind = "volume"
	Snapshot      Kind = "snapshot"
	GroupSnapshot Kind = "group snapshot"
)

var kinds = []Kind{Volume, Snapshot, GroupSnapshot}

// A Probe asks the node on conn whether it has id, and returns the name
// the node gave (NodeHeader), with or without an error. A NotFound error
// says the node does not have it; any other, that it could not say.
type Probe func(ctx context.Context, conn *grpc.ClientConn, id string) (node string, err error)

// Locate finds the node that holds id: from the cache of its kind, or by
// asking every node at once with probe, each for at most probeTimeout.
// Its errors are status errors: NotFound when every node answered and
// none has id, Unavailable when none that answered has it and some did
// not answer, so that it may be on one of those, and Internal when two
// nodes have it.
func (n *Nodes) Locate(ctx context.Context, kind Kind, id string, probe Probe) (Owner, error) {
	if w, ok := n.owners[kind].get(id); ok {
		return w, nil
	}
	addrs, err := n.addrs(ctx)
	if err != nil {
		return Owner{}, err
	}
	found, failed := n.ask(ctx, addrs, id, probe)
	if err := ctx.Err(); err != nil {
		return Owner{}, status.FromContextError(err).Err()
	}
	switch {
	case len(found) == 1:
	case len(found) > 1:
		for _, w := range found[1:] {
			if w.Node != found[0].Node {
				return Owner{}, status.Errorf(codes.Internal, "%s %s is on two nodes, %s (%s) and %s (%s): ids are unique, so one of these pools was copied from the other; remove the copy",
					kind, id, found[0].Node, found[0].Addr, w.Node, w.Addr)
			}
		}
		// The same node at two addresses: its old pod and its new one,
		// during a rolling update. Either answers.
	case len(failed) > 0:
		return Owner{}, status.Errorf(codes.Unavailable, "%s %s is on none of the %d csi-thin nodes that answered, and %d did not, so it may be on one of those: %s",
			kind, id, len(addrs)-len(failed), len(failed), strings.Join(failed, "; "))
	default:
		return Owner{}, status.Errorf(codes.NotFound, "%s %s is on none of the %d csi-thin nodes", kind, id, len(addrs))
	}
	klog.V(4).InfoS("Found", "kind", kind, "id", id, "node", found[0].Node, "address", found[0].Addr)
	n.owners[kind].put(id, found[0])
	return found[0], nil
}

// probe runs probe against the node at addr, within probeTimeout.
func (n *Nodes) probe(ctx context.Context, addr, id string, probe Probe) (string, error) {
	conn, err := n.Conn(addr)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	node, err := probe(ctx, conn, id)
	if node != "" {
		n.saw(addr, node)
	}
	if err != nil {
		return "", err
	}
	if node == "" {
		return "", status.Errorf(codes.Unknown, "the server at %s is not a csi-thin node: it did not name its node", addr)
	}
	return node, nil
}

// Remember records that the node w holds id, as a call's answer said:
// the id of a snapshot just taken, say.
func (n *Nodes) Remember(kind Kind, id string, w Owner) {
	if id != "" {
		n.owners[kind].put(id, w)
	}
}

// Forget drops what the cache of kind knows of ids, so that the next
// call looks them up again.
func (n *Nodes) Forget(kind Kind, ids ...string) {
	n.owners[kind].forget(ids...)
}

// ask runs probe for id against every address at once: the nodes that
// have it, by name and address, and the answers of those that could not
// say, sorted. A node that answers NotFound is in neither.
func (n *Nodes) ask(ctx context.Context, addrs []string, id string, probe Probe) (found []Owner, failed []string) {
	type answer struct {
		addr, node string
		err        error
	}
	answers := make(chan answer, len(addrs))
	for _, addr := range addrs {
		go func() {
			node, err := n.probe(ctx, addr, id, probe)
			answers <- answer{addr, node, err}
		}()
	}
	for range addrs {
		a := <-answers
		switch {
		case a.err == nil:
			found = append(found, Owner{a.addr, a.node})
		case status.Code(a.err) != codes.NotFound:
			failed = append(failed, fmt.Sprintf("%s: %v", n.describe(a.addr), status.Convert(a.err).Message()))
		}
	}
	slices.Sort(failed)
	slices.SortFunc(found, func(a, b Owner) int { return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Addr, b.Addr)) })
	return found, failed
}

// every is every node, by name and then address, one address for each
// name: it asks each node's name (nameProbe). A node that does not answer
// fails the call with Unavailable, naming it, since the caller wants
// every node.
func (n *Nodes) every(ctx context.Context) ([]Owner, error) {
	addrs, err := n.addrs(ctx)
	if err != nil {
		return nil, err
	}
	all, failed := n.ask(ctx, addrs, "", nameProbe)
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	if len(failed) > 0 {
		return nil, status.Errorf(codes.Unavailable, "%d of the %d csi-thin nodes did not answer: %s", len(failed), len(addrs), strings.Join(failed, "; "))
	}
	return slices.CompactFunc(all, func(a, b Owner) bool { return a.Node == b.Node }), nil
}
