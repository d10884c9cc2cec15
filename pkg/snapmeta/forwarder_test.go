package snapmeta

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/csi-thin/csi-thin/internal/testcerts"
	"github.com/csi-thin/csi-thin/pkg/forward"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// The names the nodes' and the forwarder's certificates carry.
const (
	nodesName     = "csi-thin-nodes.test"
	forwarderName = "csi-thin-forwarder.test"
)

// A node is one csi-thin's SnapshotMetadata server on loopback TCP with
// mutual TLS.
type node struct {
	name string
	src  *fakeSource
	addr string
	srv  *grpc.Server
}

func startNode(t *testing.T, name string, files forward.TLSFiles, src *fakeSource) *node {
	t.Helper()
	cfg, err := forward.ServerTLS(files, forwarderName)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(src, name, variable)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	csi.RegisterSnapshotMetadataServer(g, s)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return &node{name: name, src: src, addr: lis.Addr().String(), srv: g}
}

// cluster: node-a with two snapshots of vol-a, node-b with one of vol-b,
// and a forwarder in front of both, on a unix socket.
type cluster struct {
	a, b   *node
	client csi.SnapshotMetadataClient
	files  map[string]forward.TLSFiles
	ca     *testcerts.CA
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "csi-thin snapshot metadata CA")
	files := map[string]forward.TLSFiles{
		"node":      forward.TLSFiles(ca.Issue(t, dir, nodesName, x509.ExtKeyUsageServerAuth)),
		"forwarder": forward.TLSFiles(ca.Issue(t, dir, forwarderName, x509.ExtKeyUsageClientAuth)),
	}
	srcA := &fakeSource{
		maps: map[string]thinpool.BlockMap{
			"snap-a1": {VolumeID: "vol-a", CreatedAt: t0, VolumeBytes: 40 * kib, BlockBytes: 4 * kib},
			"snap-a2": {VolumeID: "vol-a", CreatedAt: t0.Add(time.Minute), VolumeBytes: 40 * kib, BlockBytes: 4 * kib},
		},
		runs:   map[string][]thinpool.Extent{"snap-a1": {x(0, 1)}, "snap-a2": {x(0, 2)}},
		deltas: map[[2]string][]thinpool.Extent{{"snap-a1", "snap-a2"}: {x(1, 1)}},
	}
	srcB := &fakeSource{
		maps: map[string]thinpool.BlockMap{"snap-b1": {VolumeID: "vol-b", CreatedAt: t0, VolumeBytes: 80 * kib, BlockBytes: 8 * kib}},
		runs: map[string][]thinpool.Extent{"snap-b1": {x(3, 1)}},
	}
	c := &cluster{a: startNode(t, "node-a", files["node"], srcA), b: startNode(t, "node-b", files["node"], srcB), files: files, ca: ca}

	c.client = serve(t, NewForwarder(newNodes(t, files["forwarder"], c.a.addr+","+c.b.addr)))
	return c
}

// newNodes are the nodes at addrs as a forwarder with the client
// certificate files reaches them.
func newNodes(t *testing.T, files forward.TLSFiles, addrs string) *forward.Nodes {
	t.Helper()
	peers, err := forward.ResolvePeers(addrs)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := forward.ClientTLS(files, nodesName)
	if err != nil {
		t.Fatal(err)
	}
	nodes := forward.NewNodes(peers, credentials.NewTLS(cfg))
	t.Cleanup(nodes.Close)
	return nodes
}

func (c *cluster) allocated(t *testing.T, id string) ([]msg, error) {
	t.Helper()
	msgs, _, err := drain(c.client.GetMetadataAllocated(context.Background(), &csi.GetMetadataAllocatedRequest{SnapshotId: id}))
	return msgs, err
}

func TestForwarder(t *testing.T) {
	c := newCluster(t)
	cases := []struct {
		name string
		call func() ([]msg, error)
		want []msg
		code codes.Code
		says string
	}{
		{name: "a snapshot of node-a", call: func() ([]msg, error) { return c.allocated(t, "snap-a1") },
			want: []msg{{variable, 40 * kib, [][2]int64{e(0, 4)}}}},
		{name: "a snapshot of node-b", call: func() ([]msg, error) { return c.allocated(t, "snap-b1") },
			want: []msg{{variable, 80 * kib, [][2]int64{e(24, 8)}}}},
		{name: "again, from the cache", call: func() ([]msg, error) { return c.allocated(t, "snap-b1") },
			want: []msg{{variable, 80 * kib, [][2]int64{e(24, 8)}}}},
		{name: "a delta on node-a", call: func() ([]msg, error) {
			m, _, err := drain(c.client.GetMetadataDelta(context.Background(), &csi.GetMetadataDeltaRequest{BaseSnapshotId: "snap-a1", TargetSnapshotId: "snap-a2"}))
			return m, err
		}, want: []msg{{variable, 40 * kib, [][2]int64{e(4, 4)}}}},
		{name: "a delta across nodes", call: func() ([]msg, error) {
			m, _, err := drain(c.client.GetMetadataDelta(context.Background(), &csi.GetMetadataDeltaRequest{BaseSnapshotId: "snap-a1", TargetSnapshotId: "snap-b1"}))
			return m, err
		}, code: codes.InvalidArgument, says: "on node node-a and target snapshot snap-b1 on node node-b"},
		{name: "a delta with an unknown base", call: func() ([]msg, error) {
			m, _, err := drain(c.client.GetMetadataDelta(context.Background(), &csi.GetMetadataDeltaRequest{BaseSnapshotId: "snap-x", TargetSnapshotId: "snap-a2"}))
			return m, err
		}, code: codes.NotFound, says: "snap-x"},
		{name: "an unknown snapshot", call: func() ([]msg, error) { return c.allocated(t, "snap-x") },
			code: codes.NotFound, says: "on none of the 2 csi-thin nodes"},
		{name: "no snapshot id", call: func() ([]msg, error) { return c.allocated(t, "") },
			code: codes.InvalidArgument},
		{name: "a node's own error", call: func() ([]msg, error) {
			m, _, err := drain(c.client.GetMetadataAllocated(context.Background(), &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-a1", StartingOffset: 1 << 40}))
			return m, err
		}, code: codes.OutOfRange, says: "beyond"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.call()
			if tc.code != codes.OK {
				if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.says) {
					t.Fatalf("got %v, want %v saying %q", err, tc.code, tc.says)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equalMsgs(got, tc.want) {
				t.Fatalf("messages %v, want %v", got, tc.want)
			}
		})
	}
}

func equalMsgs(a, b []msg) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].style != b[i].style || a[i].capacity != b[i].capacity || len(a[i].entries) != len(b[i].entries) {
			return false
		}
		for j := range a[i].entries {
			if a[i].entries[j] != b[i].entries[j] {
				return false
			}
		}
	}
	return true
}

// A snapshot the forwarder remembers on one node, found on the other
// (its pool now served there): the NotFound drops the cached node and the
// call finds the snapshot again.
func TestForwarderLooksAgainOnNotFound(t *testing.T) {
	c := newCluster(t)
	if _, err := c.allocated(t, "snap-a1"); err != nil {
		t.Fatal(err)
	}
	c.a.src.move("snap-a1", c.b.src)
	got, err := c.allocated(t, "snap-a1")
	if err != nil {
		t.Fatalf("after the move: %v", err)
	}
	if want := []msg{{variable, 40 * kib, [][2]int64{e(0, 4)}}}; !equalMsgs(got, want) {
		t.Fatalf("messages %v, want %v", got, want)
	}
}

func TestForwarderNodeDown(t *testing.T) {
	c := newCluster(t)
	if _, err := c.allocated(t, "snap-b1"); err != nil { // node-b is remembered
		t.Fatal(err)
	}
	c.b.srv.Stop()
	_, err := c.allocated(t, "snap-b1")
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "1 did not") {
		t.Fatalf("with its node down: %v, want Unavailable saying a node did not answer", err)
	}
	// node-a still serves its own.
	if _, err := c.allocated(t, "snap-a1"); err != nil {
		t.Fatalf("node-a's snapshot with node-b down: %v", err)
	}
}

func TestForwarderTwoNodesAnswer(t *testing.T) {
	c := newCluster(t)
	c.b.src.mu.Lock()
	c.b.src.maps["snap-a1"] = c.b.src.maps["snap-b1"]
	c.b.src.mu.Unlock()
	_, err := c.allocated(t, "snap-a1")
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "on two nodes") {
		t.Fatalf("got %v, want Internal naming both nodes", err)
	}
}

// A node takes only the forwarder's certificate: not none, not one of
// another CA, not its own kind (a node's, of the same CA).
func TestNodeRefusesClients(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	other := forward.TLSFiles(testcerts.NewCA(t, "another CA").Issue(t, dir, forwarderName, x509.ExtKeyUsageClientAuth))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(c.ca.PEM)
	load := func(f forward.TLSFiles) []tls.Certificate {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{cert}
	}
	nodeCert := forward.TLSFiles(c.ca.Issue(t, dir, "node-as-client", x509.ExtKeyUsageClientAuth))
	cases := []struct {
		name  string
		certs []tls.Certificate
		ok    bool
	}{
		{"the forwarder's certificate", load(c.files["forwarder"]), true},
		{"no certificate", nil, false},
		{"a certificate of another CA", load(other), false},
		{"a certificate of the CA for another name", load(nodeCert), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &tls.Config{RootCAs: roots, ServerName: nodesName, Certificates: tc.certs, MinVersion: tls.VersionTLS13}
			conn, err := grpc.NewClient("passthrough:///"+c.a.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_, _, err = drain(csi.NewSnapshotMetadataClient(conn).GetMetadataAllocated(context.Background(), &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-a1"}))
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && status.Code(err) != codes.Unavailable {
				t.Fatalf("got %v, want the connection refused (Unavailable)", err)
			}
		})
	}
}

// A forwarder that does not trust the nodes' CA refuses to talk to them.
func TestForwarderRefusesUnknownNodes(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	f := forward.TLSFiles(testcerts.NewCA(t, "another CA").Issue(t, dir, forwarderName, x509.ExtKeyUsageClientAuth))
	fwd := NewForwarder(newNodes(t, f, c.a.addr))
	_, _, err := drain(serve(t, fwd).GetMetadataAllocated(context.Background(), &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-a1"}))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("got %v, want Unavailable", err)
	}
}
