package forward

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// Bounds of the lookups: how many ids of each kind the forwarder
// remembers the node of, and how long it waits for a node to say whether
// it has one.
const (
	ownersCached = 4096
	probeTimeout = 10 * time.Second
)

// Nodes are the csi-thin nodes as the forwarder sees them: where they
// are, one connection to each, and which of them holds each id it has
// looked up. Its methods are safe for concurrent use.
type Nodes struct {
	peers  Peers
	creds  credentials.TransportCredentials
	owners map[Kind]*owners

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn // by node address
	names map[string]string           // node address -> the node it last named, for messages
}

// NewNodes reaches the nodes peers lists, over creds (ClientTLS).
func NewNodes(peers Peers, creds credentials.TransportCredentials) *Nodes {
	n := &Nodes{peers: peers, creds: creds, owners: map[Kind]*owners{},
		conns: map[string]*grpc.ClientConn{}, names: map[string]string{}}
	for _, k := range kinds {
		n.owners[k] = newOwners(ownersCached)
	}
	return n
}

// Close closes the connections to the nodes.
func (n *Nodes) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for addr, c := range n.conns {
		c.Close()
		delete(n.conns, addr)
	}
}

// Conn is the connection to the node at addr, opened on first use.
func (n *Nodes) Conn(addr string) (*grpc.ClientConn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c, ok := n.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(n.creds))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "connect to %s: %v", addr, err)
	}
	n.conns[addr] = c
	return c, nil
}

// addrs resolves the nodes' addresses, and forgets what it knew of
// addresses that no node has any more.
func (n *Nodes) addrs(ctx context.Context) ([]string, error) {
	addrs, err := n.peers(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "find the csi-thin nodes: %v", err)
	}
	if len(addrs) == 0 {
		return nil, status.Error(codes.Unavailable, "no csi-thin node has an address: check the node DaemonSet's pods and its headless Service")
	}
	n.dropGone(addrs)
	return addrs, nil
}

// dropGone closes the connections to addresses no node has any more, and
// forgets the ids found there.
func (n *Nodes) dropGone(addrs []string) {
	keep := map[string]bool{}
	for _, a := range addrs {
		keep[a] = true
	}
	n.mu.Lock()
	for addr, c := range n.conns {
		if !keep[addr] {
			c.Close()
			delete(n.conns, addr)
		}
	}
	for addr := range n.names {
		if !keep[addr] {
			delete(n.names, addr)
		}
	}
	n.mu.Unlock()
	for _, o := range n.owners {
		o.forgetAddrs(keep)
	}
}

// saw notes that the node at addr answered as node.
func (n *Nodes) saw(addr, node string) {
	n.mu.Lock()
	n.names[addr] = node
	n.mu.Unlock()
}

// describe names the node at addr for a message: its address, and the
// node it last answered as.
func (n *Nodes) describe(addr string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if node, ok := n.names[addr]; ok {
		return fmt.Sprintf("node %s at %s", node, addr)
	}
	return addr
}
