package forward

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// snapshots: node-a has vol-a and its snapshot snap-a1, node-b vol-b,
// node-c nothing.
func snapshots(t *testing.T) *testCluster {
	c := newTestCluster(t)
	c.nodes["node-a"].volume("vol-a")
	c.nodes["node-a"].snapshot("snap-a1", "vol-a")
	c.nodes["node-b"].volume("vol-b")
	return c
}

// has reports whether the node's pool holds id.
func (n *testNode) has(id string) bool {
	_, err := n.pool.Get(id)
	return err == nil
}

// nodeOf is the node a snapshot's accessible_topology names.
func nodeOf(s *csi.Snapshot) string {
	for _, t := range s.GetAccessibleTopology() {
		return t.GetSegments()["topology.csi-thin.io/node"]
	}
	return ""
}

func TestControllerRelays(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		call  func(c *testCluster) (any, error)
		code  codes.Code
		says  string
		check func(t *testing.T, c *testCluster, resp any)
	}{
		{name: "CreateSnapshot on its volume's node", call: func(c *testCluster) (any, error) {
			return c.ctrl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: "vol-b"})
		}, check: func(t *testing.T, c *testCluster, resp any) {
			s := resp.(*csi.CreateSnapshotResponse).GetSnapshot()
			if nodeOf(s) != "node-b" || s.GetSourceVolumeId() != "vol-b" || !c.nodes["node-b"].has(s.GetSnapshotId()) {
				t.Errorf("snapshot %v, want one of vol-b on node-b", s)
			}
		}},
		{name: "CreateSnapshot of a volume on no node", call: func(c *testCluster) (any, error) {
			return c.ctrl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: "vol-x"})
		}, code: codes.NotFound, says: "volume vol-x is on none of the 3 csi-thin nodes"},
		{name: "CreateSnapshot without a source", call: func(c *testCluster) (any, error) {
			return c.ctrl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1"})
		}, code: codes.InvalidArgument, says: "source_volume_id is required"},
		{name: "CreateSnapshot the node refuses", call: func(c *testCluster) (any, error) {
			return c.ctrl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: "vol-a", Parameters: map[string]string{"speed": "fast"}})
		}, code: codes.InvalidArgument, says: "unknown snapshot parameters speed"},
		{name: "CreateSnapshot of a snapshot", call: func(c *testCluster) (any, error) {
			return c.ctrl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: "snap-a1"})
		}, code: codes.NotFound, says: "volume snap-a1 is on none"},
		{name: "GetSnapshot", call: func(c *testCluster) (any, error) {
			return c.ctrl.GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: "snap-a1"})
		}, check: func(t *testing.T, c *testCluster, resp any) {
			if s := resp.(*csi.GetSnapshotResponse).GetSnapshot(); s.GetSnapshotId() != "snap-a1" || nodeOf(s) != "node-a" {
				t.Errorf("snapshot %v, want snap-a1 on node-a", s)
			}
		}},
		{name: "GetSnapshot of a snapshot on no node", call: func(c *testCluster) (any, error) {
			return c.ctrl.GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: "snap-x"})
		}, code: codes.NotFound, says: "snapshot snap-x is on none of the 3 csi-thin nodes"},
		{name: "GetSnapshot of a volume's id", call: func(c *testCluster) (any, error) {
			return c.ctrl.GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: "vol-a"})
		}, code: codes.NotFound},
		{name: "DeleteSnapshot", call: func(c *testCluster) (any, error) {
			return c.ctrl.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: "snap-a1"})
		}, check: func(t *testing.T, c *testCluster, _ any) {
			if c.nodes["node-a"].has("snap-a1") {
				t.Error("snap-a1 is still on node-a")
			}
		}},
		{name: "DeleteSnapshot of a snapshot on no node succeeds", call: func(c *testCluster) (any, error) {
			return c.ctrl.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: "snap-x"})
		}},
		{name: "DeleteSnapshot without an id", call: func(c *testCluster) (any, error) {
			return c.ctrl.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{})
		}, code: codes.InvalidArgument},
		{name: "ListSnapshots by id", call: func(c *testCluster) (any, error) {
			return c.ctrl.ListSnapshots(ctx, &csi.ListSnapshotsRequest{SnapshotId: "snap-a1"})
		}, check: func(t *testing.T, c *testCluster, resp any) {
			if got := ids(resp.(*csi.ListSnapshotsResponse)); !slices.Equal(got, []string{"snap-a1"}) {
				t.Errorf("entries %v, want snap-a1", got)
			}
		}},
		{name: "ListSnapshots by the id of a snapshot on no node", call: func(c *testCluster) (any, error) {
			return c.ctrl.ListSnapshots(ctx, &csi.ListSnapshotsRequest{SnapshotId: "snap-x"})
		}, check: func(t *testing.T, c *testCluster, resp any) {
			if got := ids(resp.(*csi.ListSnapshotsResponse)); len(got) != 0 {
				t.Errorf("entries %v, want none", got)
			}
		}},
		{name: "ListSnapshots by id and another source", call: func(c *testCluster) (any, error) {
			return c.ctrl.ListSnapshots(ctx, &csi.ListSnapshotsRequest{SnapshotId: "snap-a1", SourceVolumeId: "vol-b"})
		}, check: func(t *testing.T, c *testCluster, resp any) {
			if got := ids(resp.(*csi.ListSnapshotsResponse)); len(got) != 0 {
				t.Errorf("entries %v, want none", got)
			}
		}},
		{name: "ListSnapshots with a negative max_entries", call: func(c *testCluster) (any, error) {
			return c.ctrl.ListSnapshots(ctx, &csi.ListSnapshotsRequest{MaxEntries: -1})
		}, code: codes.InvalidArgument, says: "negative"},
		{name: "ControllerGetCapabilities", call: func(c *testCluster) (any, error) {
			return c.ctrl.ControllerGetCapabilities(ctx, &csi.ControllerGetCapabilitiesRequest{})
		}, check: func(t *testing.T, c *testCluster, resp any) {
			var got []csi.ControllerServiceCapability_RPC_Type
			for _, cp := range resp.(*csi.ControllerGetCapabilitiesResponse).GetCapabilities() {
				got = append(got, cp.GetRpc().GetType())
			}
			want := []csi.ControllerServiceCapability_RPC_Type{csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
				csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS, csi.ControllerServiceCapability_RPC_GET_SNAPSHOT}
			if !slices.Equal(got, want) {
				t.Errorf("capabilities %v, want %v", got, want)
			}
		}},
		{name: "CreateVolume is not relayed", call: func(c *testCluster) (any, error) {
			return c.ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc"})
		}, code: codes.Unimplemented},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := snapshots(t)
			resp, err := tc.call(c)
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.says) {
				t.Fatalf("got %v, want %v saying %q", err, tc.code, tc.says)
			}
			if tc.check != nil {
				tc.check(t, c, resp)
			}
		})
	}
}

// ids are the snapshot ids of a list, in its order.
func ids(resp *csi.ListSnapshotsResponse) []string {
	var out []string
	for _, e := range resp.GetEntries() {
		out = append(out, e.GetSnapshot().GetSnapshotId())
	}
	return out
}

// The owner found once is remembered: later calls on the snapshot ask
// its node only, and a snapshot just taken is known without a lookup.
func TestControllerRemembers(t *testing.T) {
	c := snapshots(t)
	ctx := context.Background()
	for range 3 {
		if _, err := c.ctrl.GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: "snap-a1"}); err != nil {
			t.Fatal(err)
		}
	}
	const get = "/csi.v1.Controller/GetSnapshot"
	if a, b := c.nodes["node-a"].count(get), c.nodes["node-b"].count(get); a != 4 || b != 1 {
		t.Errorf("GetSnapshot calls: node-a %d, node-b %d; want 4 (a probe and three calls) and 1 (the probe)", a, b)
	}
	resp, err := c.ctrl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: "vol-b"})
	if err != nil {
		t.Fatal(err)
	}
	before := c.nodes["node-a"].count(get)
	if _, err := c.ctrl.GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: resp.GetSnapshot().GetSnapshotId()}); err != nil {
		t.Fatal(err)
	}
	if n := c.nodes["node-a"].count(get); n != before {
		t.Errorf("node-a was asked for the snapshot node-b just took")
	}
}

// A node that does not answer: what is on the other nodes is served; a
// snapshot on none of those that answered is Unavailable, naming the
// node that did not, even for a delete, since it may be there.
func TestControllerNodeDown(t *testing.T) {
	c := snapshots(t)
	ctx := context.Background()
	// node-b answers once, so that the forwarder knows its name.
	if _, err := c.ctrl.GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: "snap-a1"}); err != nil {
		t.Fatal(err)
	}
	c.nodes["node-b"].srv.Stop()
	addr := c.nodes["node-b"].addr
	if _, err := c.ctrl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: "vol-a"}); err != nil {
		t.Errorf("a snapshot of node-a's volume with node-b down: %v", err)
	}
	for name, call := range map[string]func() error{
		"DeleteSnapshot": func() error {
			_, err := c.ctrl.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: "snap-x"})
			return err
		},
		"GetSnapshot": func() error {
			_, err := c.ctrl.GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: "snap-x"})
			return err
		},
		"ListSnapshots by id": func() error {
			_, err := c.ctrl.ListSnapshots(ctx, &csi.ListSnapshotsRequest{SnapshotId: "snap-x"})
			return err
		},
		"ListSnapshots": func() error {
			_, err := c.ctrl.ListSnapshots(ctx, &csi.ListSnapshotsRequest{})
			return err
		},
		"CreateSnapshot of node-b's volume": func() error {
			_, err := c.ctrl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s2", SourceVolumeId: "vol-b"})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "node node-b at "+addr) {
				t.Fatalf("got %v, want Unavailable naming node node-b at %s", err, addr)
			}
		})
	}
}

// A snapshot on two nodes (a pool copied) is refused with Internal,
// naming both.
func TestControllerTwoOwners(t *testing.T) {
	c := snapshots(t)
	c.nodes["node-c"].snapshot("snap-a1", "vol-a")
	_, err := c.ctrl.GetSnapshot(context.Background(), &csi.GetSnapshotRequest{SnapshotId: "snap-a1"})
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "on two nodes, node-a (") || !strings.Contains(err.Error(), "and node-c (") {
		t.Fatalf("got %v, want Internal naming node-a and node-c", err)
	}
}

// A node's pod that comes back at another address, its old address now
// another node's pod: the forwarder's remembered owner answers as the
// wrong node, and the call looks again and reaches the right one. A
// delete, which a node without the snapshot answers with success, too.
func TestControllerOwnerMoved(t *testing.T) {
	c := snapshots(t)
	ctx := context.Background()
	if _, err := c.ctrl.GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: "snap-a1"}); err != nil {
		t.Fatal(err)
	}
	a, b := c.nodes["node-a"], c.nodes["node-b"]
	oldA := a.addr
	a.srv.Stop()
	b.srv.Stop()
	b.start(t, c.files["node"], oldA)
	a.start(t, c.files["node"], "127.0.0.1:0")
	c.setAddrs(a.addr, b.addr, c.nodes["node-c"].addr)
	if _, err := c.ctrl.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: "snap-a1"}); err != nil {
		t.Fatal(err)
	}
	if a.has("snap-a1") {
		t.Fatal("the delete answered by node-b at node-a's old address left snap-a1 on node-a")
	}
}

// A remembered owner that no longer has the volume answers NotFound, and
// the call looks again, once.
func TestControllerLooksAgainOnNotFound(t *testing.T) {
	c := snapshots(t)
	ctx := context.Background()
	if _, err := c.ctrl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: "vol-b"}); err != nil {
		t.Fatal(err)
	}
	v, _ := c.nodes["node-b"].pool.Get("vol-b")
	if err := c.nodes["node-b"].pool.Delete(ctx, "vol-b"); err != nil {
		t.Fatal(err)
	}
	c.nodes["node-c"].pool.Put(v)
	resp, err := c.ctrl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s2", SourceVolumeId: "vol-b"})
	if err != nil {
		t.Fatalf("after vol-b moved to node-c: %v", err)
	}
	if n := nodeOf(resp.GetSnapshot()); n != "node-c" {
		t.Errorf("the snapshot is on %s, want node-c", n)
	}
}
