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

// listed: node-a has three snapshots of vol-a, node-b none, node-c two
// of vol-c and one of a volume deleted since; the forwarder resolves the
// nodes in the reverse of their names' order.
func listed(t *testing.T) *testCluster {
	c := newTestCluster(t)
	a, cn := c.nodes["node-a"], c.nodes["node-c"]
	a.volume("vol-a")
	for _, id := range []string{"snap-a1", "snap-a2", "snap-a3"} {
		a.snapshot(id, "vol-a")
	}
	cn.volume("vol-c")
	cn.snapshot("snap-c1", "vol-c")
	cn.snapshot("snap-c2", "vol-c")
	cn.snapshot("snap-c3", "vol-gone")
	c.setAddrs(cn.addr, c.nodes["node-b"].addr, a.addr)
	return c
}

// A page as the tests compare it: its snapshot ids and next token.
type page struct {
	ids  []string
	next string
}

// pages lists with req from its token until the last page.
func pages(t *testing.T, c *testCluster, req *csi.ListSnapshotsRequest) []page {
	t.Helper()
	var out []page
	for range 10 {
		resp, err := c.ctrl.ListSnapshots(context.Background(), req)
		if err != nil {
			t.Fatalf("token %q: %v", req.StartingToken, err)
		}
		out = append(out, page{ids(resp), resp.GetNextToken()})
		if resp.GetNextToken() == "" {
			return out
		}
		req.StartingToken = resp.GetNextToken()
	}
	t.Fatalf("no last page after %v", out)
	return nil
}

func TestListSnapshotsPages(t *testing.T) {
	cases := []struct {
		name string
		req  *csi.ListSnapshotsRequest
		want []page
	}{
		{"all of every node", &csi.ListSnapshotsRequest{},
			[]page{{[]string{"snap-a1", "snap-a2", "snap-a3", "snap-c1", "snap-c2", "snap-c3"}, ""}}},
		{"pages across nodes", &csi.ListSnapshotsRequest{MaxEntries: 2}, []page{
			{[]string{"snap-a1", "snap-a2"}, "node-a/snap-a3"},
			{[]string{"snap-a3", "snap-c1"}, "node-c/snap-c2"},
			{[]string{"snap-c2", "snap-c3"}, ""},
		}},
		{"a page that ends with a node", &csi.ListSnapshotsRequest{MaxEntries: 3}, []page{
			{[]string{"snap-a1", "snap-a2", "snap-a3"}, "node-b/"},
			{[]string{"snap-c1", "snap-c2", "snap-c3"}, ""},
		}},
		{"of a volume, from its node", &csi.ListSnapshotsRequest{SourceVolumeId: "vol-a", MaxEntries: 2}, []page{
			{[]string{"snap-a1", "snap-a2"}, "node-a/snap-a3"},
			{[]string{"snap-a3"}, ""},
		}},
		{"of a volume deleted since, from every node", &csi.ListSnapshotsRequest{SourceVolumeId: "vol-gone", MaxEntries: 1}, []page{
			{[]string{"snap-c3"}, ""}, // node-a and node-b have none, node-c is the last node
		}},
		{"of a volume on no node with no snapshots", &csi.ListSnapshotsRequest{SourceVolumeId: "vol-x"}, []page{{nil, ""}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := pages(t, listed(t), tc.req)
			if !slices.EqualFunc(got, tc.want, func(a, b page) bool { return slices.Equal(a.ids, b.ids) && a.next == b.next }) {
				t.Fatalf("pages %v, want %v", got, tc.want)
			}
		})
	}
}

// A token the forwarder did not give, or that names a node the list no
// longer goes through, is Aborted, as the spec has it for an invalid
// starting_token; so is a node's own token the node refuses.
func TestListSnapshotsBadTokens(t *testing.T) {
	c := listed(t)
	cases := []struct{ token, source, says string }{
		{"garbage", "", "is not one this forwarder gave"},
		{"/snap-a1", "", "is not one this forwarder gave"},
		{"node-x/snap-a1", "", "names node node-x, which is not among"},
		{"node-c/snap-c1", "vol-a", "names node node-c, which is not among"},
		{"node-a/bogus", "", "list the snapshots of node node-a"},
	}
	for _, tc := range cases {
		t.Run(tc.token, func(t *testing.T) {
			_, err := c.ctrl.ListSnapshots(context.Background(), &csi.ListSnapshotsRequest{StartingToken: tc.token, SourceVolumeId: tc.source})
			if status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want Aborted saying %q", err, tc.says)
			}
		})
	}
}
