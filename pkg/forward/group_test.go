package forward

import (
	"context"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// groups: node-a has vol-a1 and vol-a2, node-b vol-b1.
func groups(t *testing.T) *testCluster {
	c := newTestCluster(t)
	c.nodes["node-a"].volume("vol-a1")
	c.nodes["node-a"].volume("vol-a2")
	c.nodes["node-b"].volume("vol-b1")
	return c
}

func TestGroupRelays(t *testing.T) {
	ctx := context.Background()
	create := func(c *testCluster, ids ...string) (*csi.CreateVolumeGroupSnapshotResponse, error) {
		return c.group.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: "g1", SourceVolumeIds: ids})
	}
	cases := []struct {
		name  string
		call  func(c *testCluster) (any, error)
		code  codes.Code
		says  []string
		check func(t *testing.T, c *testCluster, resp any)
	}{
		{name: "a group of one node's volumes", call: func(c *testCluster) (any, error) { return create(c, "vol-a2", "vol-a1") },
			check: func(t *testing.T, c *testCluster, resp any) {
				g := resp.(*csi.CreateVolumeGroupSnapshotResponse).GetGroupSnapshot()
				if len(g.GetSnapshots()) != 2 || nodeOf(g.GetSnapshots()[0]) != "node-a" || nodeOf(g.GetSnapshots()[1]) != "node-a" {
					t.Errorf("group %v, want two snapshots on node-a", g)
				}
				if _, err := c.nodes["node-a"].pool.GetGroupSnapshot(g.GetGroupSnapshotId()); err != nil {
					t.Errorf("the group is not on node-a: %v", err)
				}
			}},
		{name: "a group of two nodes' volumes", call: func(c *testCluster) (any, error) { return create(c, "vol-b1", "vol-a1", "vol-a2") },
			code: codes.InvalidArgument, says: []string{`group snapshot "g1": its volumes are on 2 nodes (vol-a1, vol-a2 on node node-a; vol-b1 on node node-b)`,
				"must all be on one node"}},
		{name: "a group with a volume on no node", call: func(c *testCluster) (any, error) { return create(c, "vol-a1", "vol-x") },
			code: codes.NotFound, says: []string{`group snapshot "g1": volume vol-x is on none of the 3 csi-thin nodes`}},
		{name: "a group of no volumes", call: func(c *testCluster) (any, error) { return create(c) },
			code: codes.InvalidArgument, says: []string{"source_volume_ids are required"}},
		{name: "a group the node refuses", call: func(c *testCluster) (any, error) {
			return c.group.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: "g1", SourceVolumeIds: []string{"vol-b1"}, Parameters: map[string]string{"x": "y"}})
		}, code: codes.InvalidArgument, says: []string{"unknown snapshot parameters x"}},
		{name: "get a group", call: func(c *testCluster) (any, error) {
			g, err := create(c, "vol-a1")
			if err != nil {
				return nil, err
			}
			c.fwd.Forget(GroupSnapshot, g.GetGroupSnapshot().GetGroupSnapshotId())
			return c.group.GetVolumeGroupSnapshot(ctx, &csi.GetVolumeGroupSnapshotRequest{GroupSnapshotId: g.GetGroupSnapshot().GetGroupSnapshotId()})
		}, check: func(t *testing.T, c *testCluster, resp any) {
			if g := resp.(*csi.GetVolumeGroupSnapshotResponse).GetGroupSnapshot(); len(g.GetSnapshots()) != 1 || nodeOf(g.GetSnapshots()[0]) != "node-a" {
				t.Errorf("group %v, want one snapshot on node-a", g)
			}
		}},
		{name: "get a group on no node", call: func(c *testCluster) (any, error) {
			return c.group.GetVolumeGroupSnapshot(ctx, &csi.GetVolumeGroupSnapshotRequest{GroupSnapshotId: "grp-x"})
		}, code: codes.NotFound, says: []string{"group snapshot grp-x is on none of the 3 csi-thin nodes"}},
		{name: "delete a group", call: func(c *testCluster) (any, error) {
			g, err := create(c, "vol-b1")
			if err != nil {
				return nil, err
			}
			gs := g.GetGroupSnapshot()
			c.fwd.Forget(GroupSnapshot, gs.GetGroupSnapshotId())
			_, err = c.group.DeleteVolumeGroupSnapshot(ctx, &csi.DeleteVolumeGroupSnapshotRequest{GroupSnapshotId: gs.GetGroupSnapshotId(),
				SnapshotIds: []string{gs.GetSnapshots()[0].GetSnapshotId()}})
			return gs, err
		}, check: func(t *testing.T, c *testCluster, resp any) {
			gs := resp.(*csi.VolumeGroupSnapshot)
			if _, err := c.nodes["node-b"].pool.GetGroupSnapshot(gs.GetGroupSnapshotId()); err == nil {
				t.Error("the group is still on node-b")
			}
		}},
		{name: "delete a group on no node", call: func(c *testCluster) (any, error) {
			return c.group.DeleteVolumeGroupSnapshot(ctx, &csi.DeleteVolumeGroupSnapshotRequest{GroupSnapshotId: "grp-x"})
		}},
		{name: "delete without an id", call: func(c *testCluster) (any, error) {
			return c.group.DeleteVolumeGroupSnapshot(ctx, &csi.DeleteVolumeGroupSnapshotRequest{})
		}, code: codes.InvalidArgument},
		{name: "capabilities", call: func(c *testCluster) (any, error) {
			return c.group.GroupControllerGetCapabilities(ctx, &csi.GroupControllerGetCapabilitiesRequest{})
		}, check: func(t *testing.T, c *testCluster, resp any) {
			caps := resp.(*csi.GroupControllerGetCapabilitiesResponse).GetCapabilities()
			if len(caps) != 1 || caps[0].GetRpc().GetType() != csi.GroupControllerServiceCapability_RPC_CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT {
				t.Errorf("capabilities %v", caps)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := groups(t)
			resp, err := tc.call(c)
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want %v", err, tc.code)
			}
			for _, s := range tc.says {
				if !strings.Contains(status.Convert(err).Message(), s) {
					t.Errorf("message %q does not say %q", status.Convert(err).Message(), s)
				}
			}
			if tc.check != nil {
				tc.check(t, c, resp)
			}
		})
	}
}

// A group's snapshots are known to be on its node once it is taken: a
// GetSnapshot of one asks no other node.
func TestGroupRemembers(t *testing.T) {
	c := groups(t)
	ctx := context.Background()
	resp, err := c.group.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: "g1", SourceVolumeIds: []string{"vol-a1"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ctrl.GetSnapshot(ctx, &csi.GetSnapshotRequest{SnapshotId: resp.GetGroupSnapshot().GetSnapshots()[0].GetSnapshotId()}); err != nil {
		t.Fatal(err)
	}
	if n := c.nodes["node-b"].count("/csi.v1.Controller/GetSnapshot"); n != 0 {
		t.Errorf("node-b was asked %d times for a snapshot of node-a's group", n)
	}
}

// With a node down, a group whose volume may be there is Unavailable, and
// so is the delete of a group that may be there.
func TestGroupNodeDown(t *testing.T) {
	c := groups(t)
	ctx := context.Background()
	c.nodes["node-b"].srv.Stop()
	_, err := c.group.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: "g1", SourceVolumeIds: []string{"vol-a1", "vol-b1"}})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "volume vol-b1 is on none of the 2 csi-thin nodes that answered") {
		t.Errorf("create: got %v, want Unavailable for vol-b1", err)
	}
	_, err = c.group.DeleteVolumeGroupSnapshot(ctx, &csi.DeleteVolumeGroupSnapshotRequest{GroupSnapshotId: "grp-x"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("delete: got %v, want Unavailable", err)
	}
	if _, err := c.group.CreateVolumeGroupSnapshot(ctx, &csi.CreateVolumeGroupSnapshotRequest{Name: "g2", SourceVolumeIds: []string{"vol-a1", "vol-a2"}}); err != nil {
		t.Errorf("a group of node-a's volumes with node-b down: %v", err)
	}
}
