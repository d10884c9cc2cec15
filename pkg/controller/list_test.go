package controller

import (
	"slices"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// listCase pages through a list from a starting token, with a filter.
type listCase struct {
	name  string
	max   int32
	token func(*fixture) string // the first page's starting token
	// ListSnapshots' filters, by the test's names
	snapshot, source string
	code             codes.Code
	says             []string
	want             []string // every entry, by the test's names, in order
}

// walkList lists page after page from the case's token, until a page has no
// next token, and returns the entries' ids: each page holds at most max,
// and every page but the last holds max.
func walkList(t *testing.T, max int32, token string, list func(token string) ([]string, string, error)) ([]string, error) {
	t.Helper()
	var all []string
	var sizes []int
	for range 100 {
		ids, next, err := list(token)
		if err != nil {
			return nil, err
		}
		all = append(all, ids...)
		sizes = append(sizes, len(ids))
		if next == "" {
			for i, n := range sizes {
				if max > 0 && (n > int(max) || (i < len(sizes)-1 && n != int(max))) {
					t.Errorf("pages of %v entries, max_entries %d", sizes, max)
				}
			}
			return all, nil
		}
		token = next
	}
	t.Fatal("the list does not end")
	return nil, nil
}

func runList(t *testing.T, tests []listCase, seed func(*fixture), list func(f *fixture, tt listCase, token string) ([]string, string, error)) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			seed(f)
			token := ""
			if tt.token != nil {
				token = tt.token(f)
			}
			got, err := walkList(t, tt.max, token, func(token string) ([]string, string, error) { return list(f, tt, token) })
			wantCode(t, err, tt.code, tt.says...)
			if err != nil {
				return
			}
			var want []string
			for _, name := range tt.want {
				want = append(want, f.id(name))
			}
			if !slices.Equal(got, want) {
				t.Fatalf("listed %v, want %v (%v)", got, want, tt.want)
			}
		})
	}
}

// TestListVolumes pages through five volumes v1 to v5, among two
// snapshots that it does not list; a token it did not give is the spec's
// ABORTED.
func TestListVolumes(t *testing.T) {
	seed := func(f *fixture) {
		for i, name := range []string{"v1", "v2", "v3", "v4", "v5"} {
			f.volume(name, uint64(i+1)*gib)
		}
		f.snapshot("s1", "v1")
		f.snapshot("s2", "v2")
	}
	all := []string{"v1", "v2", "v3", "v4", "v5"}
	tests := []listCase{
		{name: "all at once", want: all},
		{name: "pages of 1", max: 1, want: all},
		{name: "pages of 2", max: 2, want: all},
		{name: "one full page", max: 5, want: all},
		{name: "a page larger than the list", max: 10, want: all},
		{name: "from the token of a volume deleted since", max: 2, token: func(f *fixture) string {
			resp, err := f.s.ListVolumes(f.t.Context(), &csi.ListVolumesRequest{MaxEntries: 2})
			if err != nil || resp.GetNextToken() == "" {
				f.t.Fatalf("first page: %v, %v", resp, err)
			}
			f.remove("v3")
			return resp.GetNextToken()
		}, want: []string{"v4", "v5"}},
		{name: "a token it did not give", token: func(*fixture) string { return "page-2" },
			code: codes.Aborted, says: []string{`"page-2"`, "list again from the start, without a starting_token"}},
		{name: "a snapshot list's token", max: 1, token: func(f *fixture) string { return f.id("s1") }, code: codes.Aborted},
	}
	runList(t, tests, seed, func(f *fixture, tt listCase, token string) ([]string, string, error) {
		resp, err := f.s.ListVolumes(f.t.Context(), &csi.ListVolumesRequest{MaxEntries: tt.max, StartingToken: token})
		if err != nil {
			return nil, "", err
		}
		var ids []string
		for _, e := range resp.GetEntries() {
			ids = append(ids, e.GetVolume().GetVolumeId())
			rec := f.get(e.GetVolume().GetVolumeId())
			want := &csi.Volume{VolumeId: rec.ID, CapacityBytes: int64(rec.SizeBytes), VolumeContext: rec.Parameters,
				AccessibleTopology: []*csi.Topology{volcap.Topology(thisNode)}}
			if !proto.Equal(e.GetVolume(), want) || e.GetStatus() == nil {
				t.Errorf("entry %v, want volume %v and a status", e, want)
			}
		}
		return ids, resp.GetNextToken(), nil
	})
}

// TestListSnapshots pages through the snapshots a1 and a2 of volume a, b1
// of volume b, and c1 of volume c, deleted since, all of them or by their
// filters; a filter that matches nothing is an empty list. Every entry,
// by id, by source or a page of all, is usable from this node alone.
func TestListSnapshots(t *testing.T) {
	seed := func(f *fixture) {
		f.volume("a", gib)
		f.volume("b", 2*gib)
		f.volume("c", 3*gib)
		f.snapshot("a1", "a")
		f.snapshot("b1", "b")
		f.snapshot("a2", "a")
		f.snapshot("c1", "c")
		f.remove("c")
	}
	all := []string{"a1", "b1", "a2", "c1"}
	tests := []listCase{
		{name: "all at once", want: all},
		{name: "pages of 1", max: 1, want: all},
		{name: "pages of 3", max: 3, want: all},
		{name: "of a volume", source: "a", want: []string{"a1", "a2"}},
		{name: "of a volume, pages of 1", max: 1, source: "a", want: []string{"a1", "a2"}},
		{name: "of a volume with one, pages of 1", max: 1, source: "b", want: []string{"b1"}},
		{name: "of a volume deleted since", source: "c", want: []string{"c1"}},
		{name: "of a volume not here", source: "x"},
		{name: "of a snapshot's id", source: "a1"},
		{name: "by id", snapshot: "b1", want: []string{"b1"}},
		{name: "by id, its volume deleted since", snapshot: "c1", want: []string{"c1"}},
		{name: "by id and its volume", snapshot: "a2", source: "a", want: []string{"a2"}},
		{name: "by id and another volume", snapshot: "a2", source: "b"},
		{name: "by an id not here", snapshot: "x"},
		{name: "by a volume's id", snapshot: "a"},
		{name: "a token it did not give", max: 1, token: func(*fixture) string { return "x" },
			code: codes.Aborted, says: []string{"without a starting_token"}},
		{name: "a volume list's token, with a filter", source: "a", token: func(f *fixture) string { return f.id("a") },
			code: codes.Aborted},
	}
	runList(t, tests, seed, func(f *fixture, tt listCase, token string) ([]string, string, error) {
		req := &csi.ListSnapshotsRequest{MaxEntries: tt.max, StartingToken: token}
		if tt.snapshot != "" {
			req.SnapshotId = f.id(tt.snapshot)
		}
		if tt.source != "" {
			req.SourceVolumeId = f.id(tt.source)
		}
		resp, err := f.s.ListSnapshots(f.t.Context(), req)
		if err != nil {
			return nil, "", err
		}
		var ids []string
		for _, e := range resp.GetEntries() {
			s := e.GetSnapshot()
			ids = append(ids, s.GetSnapshotId())
			rec := f.get(s.GetSnapshotId())
			if s.GetSourceVolumeId() != rec.SourceID || s.GetSizeBytes() != int64(rec.SizeBytes) || !s.GetReadyToUse() ||
				!s.GetCreationTime().AsTime().Equal(rec.CreatedAt) {
				t.Errorf("entry %v, want the pool's %+v", s, rec)
			}
			if !onlyThisNode(s.GetAccessibleTopology()) {
				t.Errorf("entry %s usable from %v, want this node's topology alone", s.GetSnapshotId(), s.GetAccessibleTopology())
			}
		}
		return ids, resp.GetNextToken(), nil
	})
}

// onlyThisNode reports whether a snapshot's accessible_topology is this
// node's alone.
func onlyThisNode(ts []*csi.Topology) bool {
	return len(ts) == 1 && proto.Equal(ts[0], volcap.Topology(thisNode))
}
