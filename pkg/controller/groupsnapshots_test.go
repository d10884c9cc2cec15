package controller

import (
	"slices"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/csi-thin/csi-thin/pkg/csierr"
)

// groupFixture is a fixture with volumes a (1 GiB) and b (2 GiB) and its
// group controller.
func groupFixture(t *testing.T) (*fixture, *GroupServer) {
	f := newFixture(t)
	f.volume("a", gib)
	f.volume("b", 2*gib)
	return f, &GroupServer{s: f.s}
}

func TestGroupControllerGetCapabilities(t *testing.T) {
	_, g := groupFixture(t)
	resp, err := g.GroupControllerGetCapabilities(t.Context(), &csi.GroupControllerGetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	caps := resp.GetCapabilities()
	if len(caps) != 1 || caps[0].GetRpc().GetType() != csi.GroupControllerServiceCapability_RPC_CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT {
		t.Errorf("capabilities %v, want CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT alone", caps)
	}
}

// TestCreateVolumeGroupSnapshot: the response (every snapshot ready, of
// its volume, naming the group), the spec's idempotency and the codes of
// what csi-thin refuses.
func TestCreateVolumeGroupSnapshot(t *testing.T) {
	req := func(name string, sources ...string) func(*fixture) *csi.CreateVolumeGroupSnapshotRequest {
		return func(f *fixture) *csi.CreateVolumeGroupSnapshotRequest {
			r := &csi.CreateVolumeGroupSnapshotRequest{Name: name}
			for _, s := range sources {
				r.SourceVolumeIds = append(r.SourceVolumeIds, f.id(s))
			}
			return r
		}
	}
	tests := []struct {
		name   string
		first  bool // a group "g" of a and b exists before
		req    func(*fixture) *csi.CreateVolumeGroupSnapshotRequest
		code   codes.Code
		says   []string
		again  bool // the answer is the first group
		volume []string
	}{
		{name: "a group of two volumes", req: req("g", "a", "b"), volume: []string{"a", "b"}},
		{name: "the same request again", first: true, req: req("g", "a", "b"), again: true, volume: []string{"a", "b"}},
		{name: "the same volumes in another order", first: true, req: req("g", "b", "a"), again: true, volume: []string{"a", "b"}},
		{name: "the name with other volumes", first: true, req: req("g", "a"), code: codes.AlreadyExists, says: []string{"another name"}},
		{name: "the sidecar's parameters: accepted", req: func(f *fixture) *csi.CreateVolumeGroupSnapshotRequest {
			r := req("g", "a", "b")(f)
			r.Parameters = map[string]string{"csi.storage.k8s.io/volumegroupsnapshot/name": "g"}
			return r
		}, volume: []string{"a", "b"}},
		{name: "an unknown parameter", req: func(f *fixture) *csi.CreateVolumeGroupSnapshotRequest {
			r := req("g", "a", "b")(f)
			r.Parameters = map[string]string{"fsfreeze": "no"}
			return r
		}, code: codes.InvalidArgument, says: []string{"fsfreeze"}},
		{name: "no name", req: req("", "a"), code: codes.InvalidArgument, says: []string{"name"}},
		{name: "a control character in the name", req: req("g\x01", "a"), code: codes.InvalidArgument, says: []string{"control character"}},
		{name: "no volume", req: req("g"), code: codes.InvalidArgument, says: []string{"source_volume_ids"}},
		{name: "a volume twice", req: req("g", "a", "a"), code: codes.InvalidArgument, says: []string{"twice"}},
		{name: "a volume of another node", req: req("g", "a", "elsewhere"), code: codes.NotFound, says: []string{"one node"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, g := groupFixture(t)
			var first *csi.VolumeGroupSnapshot
			if tt.first {
				resp, err := g.CreateVolumeGroupSnapshot(t.Context(), req("g", "a", "b")(f))
				if err != nil {
					t.Fatal(err)
				}
				first = resp.GetGroupSnapshot()
			}
			resp, err := g.CreateVolumeGroupSnapshot(t.Context(), tt.req(f))
			wantCode(t, err, tt.code, tt.says...)
			if err != nil {
				return
			}
			gs := resp.GetGroupSnapshot()
			if gs.GetGroupSnapshotId() == "" || !gs.GetReadyToUse() || gs.GetCreationTime() == nil {
				t.Errorf("group %v: want an id, ready, a creation time", gs)
			}
			var sources []string
			for _, s := range gs.GetSnapshots() {
				sources = append(sources, s.GetSourceVolumeId())
				if s.GetGroupSnapshotId() != gs.GetGroupSnapshotId() || !s.GetReadyToUse() || s.GetSnapshotId() == "" {
					t.Errorf("member %v: want ready, of group %s", s, gs.GetGroupSnapshotId())
				}
				if want := f.get(s.GetSourceVolumeId()).SizeBytes; s.GetSizeBytes() != int64(want) {
					t.Errorf("member of %s: %d bytes, want its volume's %d", s.GetSourceVolumeId(), s.GetSizeBytes(), want)
				}
			}
			var want []string
			for _, v := range tt.volume {
				want = append(want, f.id(v))
			}
			if !slices.Equal(slices.Sorted(slices.Values(sources)), slices.Sorted(slices.Values(want))) {
				t.Errorf("members of %v, want of %v", sources, want)
			}
			if tt.again && gs.GetGroupSnapshotId() != first.GetGroupSnapshotId() {
				t.Errorf("answered %s, want the first group %s", gs.GetGroupSnapshotId(), first.GetGroupSnapshotId())
			}
		})
	}
}

// TestGroupSnapshotMembers: a member is listed and got like any snapshot,
// names its group, and is refused a delete of its own with the spec's
// INVALID_ARGUMENT.
func TestGroupSnapshotMembers(t *testing.T) {
	f, g := groupFixture(t)
	resp, err := g.CreateVolumeGroupSnapshot(t.Context(), &csi.CreateVolumeGroupSnapshotRequest{Name: "g", SourceVolumeIds: []string{f.id("a"), f.id("b")}})
	if err != nil {
		t.Fatal(err)
	}
	gs := resp.GetGroupSnapshot()
	m := gs.GetSnapshots()[0].GetSnapshotId()
	got, err := f.s.GetSnapshot(t.Context(), &csi.GetSnapshotRequest{SnapshotId: m})
	if err != nil || got.GetSnapshot().GetGroupSnapshotId() != gs.GetGroupSnapshotId() {
		t.Errorf("GetSnapshot of a member: %v, %v; want it in group %s", got, err, gs.GetGroupSnapshotId())
	}
	_, err = f.s.DeleteSnapshot(t.Context(), &csi.DeleteSnapshotRequest{SnapshotId: m})
	wantCode(t, err, codes.InvalidArgument, "group")
	if _, err := f.pool.Get(m); err != nil {
		t.Errorf("the member is gone after a refused delete: %v", err)
	}
}

// TestDeleteAndGetVolumeGroupSnapshot: the codes the spec names for the
// two calls on a group's id and its snapshot ids.
func TestDeleteAndGetVolumeGroupSnapshot(t *testing.T) {
	tests := []struct {
		name    string
		id      func(group string) string
		members func(ids []string) []string
		hold    bool // a member is held open
		del     codes.Code
		get     codes.Code
		says    string
	}{
		{name: "the group and its snapshots", id: same, members: slices.Clone[[]string]},
		{name: "its snapshots in another order", id: same, members: func(ids []string) []string { return []string{ids[1], ids[0]} }},
		{name: "an unknown group", id: func(string) string { return "grp-unknown" }, members: slices.Clone[[]string], get: codes.NotFound},
		{name: "no group id", id: func(string) string { return "" }, members: slices.Clone[[]string], del: codes.InvalidArgument, get: codes.InvalidArgument, says: "group_snapshot_id"},
		{name: "no snapshot ids: the group id names it", id: same, members: func([]string) []string { return nil }},
		{name: "an unknown group, no snapshot ids (csi-sanity)", id: func(string) string { return "grp-unknown" }, members: func([]string) []string { return nil }, get: codes.NotFound},
		{name: "a snapshot missing", id: same, members: func(ids []string) []string { return ids[:1] }, del: codes.InvalidArgument, get: codes.InvalidArgument, says: "not the snapshots"},
		{name: "a snapshot of another group", id: same, members: func(ids []string) []string { return []string{ids[0], "snap-other"} }, del: codes.InvalidArgument, get: codes.InvalidArgument, says: "not the snapshots"},
		{name: "a member in use", id: same, members: slices.Clone[[]string], hold: true, del: codes.FailedPrecondition, says: "in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, g := groupFixture(t)
			resp, err := g.CreateVolumeGroupSnapshot(t.Context(), &csi.CreateVolumeGroupSnapshotRequest{Name: "g", SourceVolumeIds: []string{f.id("a"), f.id("b")}})
			if err != nil {
				t.Fatal(err)
			}
			gs := resp.GetGroupSnapshot()
			var ids []string
			for _, s := range gs.GetSnapshots() {
				ids = append(ids, s.GetSnapshotId())
			}
			if tt.hold {
				f.ids["m"] = ids[0]
				f.hold("m", true)
			}
			id, members := tt.id(gs.GetGroupSnapshotId()), tt.members(ids)
			got, err := g.GetVolumeGroupSnapshot(t.Context(), &csi.GetVolumeGroupSnapshotRequest{GroupSnapshotId: id, SnapshotIds: members})
			wantCode(t, err, tt.get, saysIf(tt.get, tt.says)...)
			if err == nil && got.GetGroupSnapshot().GetGroupSnapshotId() != gs.GetGroupSnapshotId() {
				t.Errorf("GetVolumeGroupSnapshot answered %v", got)
			}
			_, err = g.DeleteVolumeGroupSnapshot(t.Context(), &csi.DeleteVolumeGroupSnapshotRequest{GroupSnapshotId: id, SnapshotIds: members})
			wantCode(t, err, tt.del, saysIf(tt.del, tt.says)...)
			_, getErr := f.pool.GetGroupSnapshot(gs.GetGroupSnapshotId())
			if deleted := getErr != nil; deleted != (err == nil && id == gs.GetGroupSnapshotId()) {
				t.Errorf("after the delete (%v), the group is deleted=%v (%v)", err, deleted, getErr)
			}
			if err == nil && id == gs.GetGroupSnapshotId() {
				for _, m := range ids {
					if _, err := f.pool.Get(m); csierr.Code(err) != codes.NotFound {
						t.Errorf("member %s after its group's delete: %v", m, err)
					}
				}
				// Deleting again succeeds: the group is gone.
				_, err := g.DeleteVolumeGroupSnapshot(t.Context(), &csi.DeleteVolumeGroupSnapshotRequest{GroupSnapshotId: id, SnapshotIds: members})
				wantCode(t, err, codes.OK)
			}
		})
	}
}

func same(id string) string { return id }

// saysIf is what a failure with code must say: nothing for OK.
func saysIf(code codes.Code, says string) []string {
	if code == codes.OK || says == "" {
		return nil
	}
	return []string{says}
}
