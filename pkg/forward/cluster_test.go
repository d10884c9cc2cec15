package forward

import (
	"context"
	"crypto/x509"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/csi-thin/csi-thin/internal/fakepool"
	"github.com/csi-thin/csi-thin/internal/testcerts"
	"github.com/csi-thin/csi-thin/pkg/controller"
	"github.com/csi-thin/csi-thin/pkg/csierr"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// The names the nodes' and the forwarder's certificates carry.
const (
	nodesName     = "csi-thin-nodes.test"
	forwarderName = "csi-thin-forwarder.test"
)

// A testNode is one node's csi-thin as its listener serves the
// forwarder: the node's real controller and group controller services
// over a fake pool, behind the listener's guard and node header and the
// driver's error mapping, on loopback TCP with mutual TLS.
type testNode struct {
	name string
	pool *fakepool.Pool
	addr string
	srv  *grpc.Server

	mu    sync.Mutex
	calls map[string]int // by method
}

// start serves the node at addr ("127.0.0.1:0": a free port).
func (n *testNode) start(t *testing.T, files TLSFiles, addr string) {
	t.Helper()
	cfg, err := ServerTLS(files, forwarderName)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	count := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		n.mu.Lock()
		n.calls[info.FullMethod]++
		n.mu.Unlock()
		return handler(ctx, req)
	}
	mapErrors := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		return resp, csierr.Status(err)
	}
	n.srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)),
		grpc.ChainUnaryInterceptor(NameNode(n.name), Guard, count, mapErrors),
		grpc.StreamInterceptor(GuardStream), grpc.UnknownServiceHandler(RefuseUnknown))
	csi.RegisterControllerServer(n.srv, controller.New(n.pool, n.name))
	csi.RegisterGroupControllerServer(n.srv, controller.NewGroup(n.pool, n.name))
	n.addr = lis.Addr().String()
	go n.srv.Serve(lis)
	t.Cleanup(n.srv.Stop)
}

// count is how many calls of method the node served.
func (n *testNode) count(method string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[method]
}

// volume puts a volume with id into the node's pool.
func (n *testNode) volume(id string) {
	n.pool.Put(&thinpool.Volume{ID: id, Kind: thinpool.KindVolume, Name: "pvc-" + id, SizeBytes: 1 << 30})
}

// snapshot puts a snapshot of source with id into the node's pool.
func (n *testNode) snapshot(id, source string) {
	n.pool.Put(&thinpool.Volume{ID: id, Kind: thinpool.KindSnapshot, Name: "snapshot-" + id, SourceID: source, SizeBytes: 1 << 30})
}

// A testCluster is three nodes and a forwarder in front of them, its
// controller and group controller relays on a unix socket.
type testCluster struct {
	nodes map[string]*testNode // node-a, node-b, node-c
	files map[string]TLSFiles

	mu    sync.Mutex
	addrs []string // what the forwarder resolves the nodes to

	fwd   *Nodes
	ctrl  csi.ControllerClient
	group csi.GroupControllerClient
}

func newTestCluster(t *testing.T) *testCluster {
	t.Helper()
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "csi-thin CA")
	c := &testCluster{nodes: map[string]*testNode{}, files: map[string]TLSFiles{
		"node":      TLSFiles(ca.Issue(t, dir, nodesName, x509.ExtKeyUsageServerAuth)),
		"forwarder": TLSFiles(ca.Issue(t, dir, forwarderName, x509.ExtKeyUsageClientAuth)),
	}}
	for i, name := range []string{"node-a", "node-b", "node-c"} {
		n := &testNode{name: name, pool: fakepool.NewT(t, fakepool.Options{IDOffset: 1000 * (i + 1)}), calls: map[string]int{}}
		n.start(t, c.files["node"], "127.0.0.1:0")
		c.nodes[name] = n
		c.addrs = append(c.addrs, n.addr)
	}
	cfg, err := ClientTLS(c.files["forwarder"], nodesName)
	if err != nil {
		t.Fatal(err)
	}
	c.fwd = NewNodes(func(context.Context) ([]string, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return append([]string(nil), c.addrs...), nil
	}, credentials.NewTLS(cfg))
	t.Cleanup(c.fwd.Close)

	sock := filepath.Join(t.TempDir(), "csi.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	csi.RegisterControllerServer(s, NewController(c.fwd))
	csi.RegisterGroupControllerServer(s, NewGroupController(c.fwd))
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c.ctrl, c.group = csi.NewControllerClient(conn), csi.NewGroupControllerClient(conn)
	return c
}

// setAddrs is what the forwarder resolves the nodes to from now on.
func (c *testCluster) setAddrs(addrs ...string) {
	c.mu.Lock()
	c.addrs = addrs
	c.mu.Unlock()
}
