package controller

import (
	"slices"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// TestCreateSnapshot takes snapshots in a pool that holds a 1 GiB volume
// vol and a 2 GiB volume other: the response (usable from this node only,
// its accessible_topology), the accessibility requirements the spec lets
// it meet and the codes of those it cannot, the spec's idempotency
// (the same name of the same volume is the same snapshot, even once the
// volume is deleted; of another volume ALREADY_EXISTS) and the codes
// csi-thin gives. Requests refused before the engine is asked are in
// TestCheckCreateSnapshot and TestRequestValidation.
func TestCreateSnapshot(t *testing.T) {
	snapshotOf := func(source string) func(*fixture) *csi.CreateSnapshotRequest {
		return func(f *fixture) *csi.CreateSnapshotRequest {
			return &csi.CreateSnapshotRequest{Name: "snap-1", SourceVolumeId: f.id(source)}
		}
	}
	withTopology := func(req *csi.TopologyRequirement) func(*fixture) *csi.CreateSnapshotRequest {
		return func(f *fixture) *csi.CreateSnapshotRequest {
			r := snapshotOf("vol")(f)
			r.AccessibilityRequirements = req
			return r
		}
	}
	first := func(f *fixture) {
		if _, err := f.s.CreateSnapshot(f.t.Context(), snapshotOf("vol")(f)); err != nil {
			f.t.Fatalf("first snapshot: %v", err)
		}
	}
	tests := []struct {
		name  string
		setup func(*fixture)
		req   func(*fixture) *csi.CreateSnapshotRequest
		code  codes.Code
		says  []string
		// the snapshot answered
		source string // its volume, by the test's name
		bytes  int64
		again  bool // the one the first request made
	}{
		{name: "a snapshot of a volume: its size, ready at once", req: snapshotOf("vol"), source: "vol", bytes: gib},
		{name: "a snapshot of a grown volume: the volume's size now", setup: func(f *fixture) {
			if _, err := f.pool.Expand(f.t.Context(), f.id("other"), 3*gib); err != nil {
				f.t.Fatal(err)
			}
		}, req: snapshotOf("other"), source: "other", bytes: 3 * gib},
		{name: "the sidecar's parameters: accepted, not kept", req: func(f *fixture) *csi.CreateSnapshotRequest {
			r := snapshotOf("vol")(f)
			r.Parameters = map[string]string{"csi.storage.k8s.io/volumesnapshot/name": "s", "csi.storage.k8s.io/volumesnapshot/namespace": "ns"}
			return r
		}, source: "vol", bytes: gib},
		// The snapshot is usable from this node, and its
		// accessible_topology says so whatever the request asked.
		{name: "on this node's topology", req: withTopology(onThisNode()), source: "vol", bytes: gib},
		{name: "requisite nodes among them this one", req: withTopology(&csi.TopologyRequirement{
			Requisite: []*csi.Topology{volcap.Topology("n2"), volcap.Topology(thisNode)}}), source: "vol", bytes: gib},
		{name: "preferred this node alone", req: withTopology(&csi.TopologyRequirement{
			Preferred: []*csi.Topology{volcap.Topology(thisNode)}}), source: "vol", bytes: gib},
		{name: "preferred another node, requisite this one too", req: withTopology(&csi.TopologyRequirement{
			Requisite: []*csi.Topology{volcap.Topology("n2"), volcap.Topology(thisNode)}, Preferred: []*csi.Topology{volcap.Topology("n2")}}),
			source: "vol", bytes: gib},
		{name: "empty requirements", req: withTopology(&csi.TopologyRequirement{}), source: "vol", bytes: gib},
		// The spec's RESOURCE_EXHAUSTED: valid requirements this node's
		// snapshot cannot be usable from.
		{name: "requisite another node", req: withTopology(&csi.TopologyRequirement{Requisite: []*csi.Topology{volcap.Topology("n2")}}),
			code: codes.ResourceExhausted, says: []string{`on node "n1" only`, `node "n2"`}},
		{name: "preferred another node alone", req: withTopology(&csi.TopologyRequirement{Preferred: []*csi.Topology{volcap.Topology("n2")}}),
			code: codes.ResourceExhausted, says: []string{`node "n2"`}},
		{name: "the same name again on another node's topology", setup: first,
			req:  withTopology(&csi.TopologyRequirement{Requisite: []*csi.Topology{volcap.Topology("n2")}}),
			code: codes.ResourceExhausted},
		// Every preferred topology must be requisite too.
		{name: "preferred this node, not requisite", req: withTopology(&csi.TopologyRequirement{
			Requisite: []*csi.Topology{volcap.Topology("n2")}, Preferred: []*csi.Topology{volcap.Topology(thisNode)}}),
			code: codes.InvalidArgument, says: []string{"is not among the requisite ones"}},
		{name: "the same again on this node's topology", setup: first, req: withTopology(onThisNode()), source: "vol", bytes: gib, again: true},

		{name: "the same name of the same volume again", setup: first, req: snapshotOf("vol"), source: "vol", bytes: gib, again: true},
		{name: "the same again, the volume deleted since", setup: func(f *fixture) { first(f); f.remove("vol") },
			req: snapshotOf("vol"), source: "vol", bytes: gib, again: true},
		{name: "the same again while the pool is full", setup: func(f *fixture) { first(f); f.pool.SetHealth(errPoolFull) },
			req: snapshotOf("vol"), source: "vol", bytes: gib, again: true},
		{name: "the same name of another volume", setup: first, req: snapshotOf("other"),
			code: codes.AlreadyExists, says: []string{`snapshot "snap-1" is of vol-`, "use another name"}},

		{name: "a volume not here", req: snapshotOf("gone"), code: codes.NotFound, says: []string{`"vol-unknown-gone"`}},
		{name: "a deleted volume", setup: func(f *fixture) { f.remove("vol") }, req: snapshotOf("vol"), code: codes.NotFound},
		// csi-thin takes snapshots of volumes only: an unsupported
		// field value.
		{name: "a snapshot of a snapshot", setup: func(f *fixture) { f.snapshot("older", "vol") }, req: snapshotOf("older"),
			code: codes.InvalidArgument, says: []string{"snapshots are taken of volumes"}},
		{name: "more than the budget has left", setup: func(f *fixture) {
			if _, err := f.pool.Expand(f.t.Context(), f.id("other"), budget-2*gib); err != nil {
				f.t.Fatal(err)
			}
		}, req: snapshotOf("other"), code: codes.ResourceExhausted, says: []string{"budget"}},
		{name: "pool full", setup: func(f *fixture) { f.pool.SetHealth(errPoolFull) }, req: snapshotOf("vol"),
			code: codes.ResourceExhausted, says: []string{"delete volumes or grow the pool"}},
		{name: "pool unhealthy", setup: func(f *fixture) { f.pool.SetHealth(errPoolUnhealthy) }, req: snapshotOf("vol"),
			code: codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.volume("vol", gib)
			f.volume("other", 2*gib)
			if tt.setup != nil {
				tt.setup(f)
			}
			before := f.records(thinpool.KindSnapshot)
			resp, err := f.s.CreateSnapshot(t.Context(), tt.req(f))
			wantCode(t, err, tt.code, tt.says...)
			after := f.records(thinpool.KindSnapshot)
			if err != nil {
				if !slices.Equal(after, before) {
					t.Errorf("the failed snapshot left snapshots %v, had %v", after, before)
				}
				return
			}
			s := resp.GetSnapshot()
			rec := f.get(s.GetSnapshotId())
			if rec == nil || rec.Kind != thinpool.KindSnapshot || rec.Name != "snap-1" {
				t.Fatalf("snapshot %s is not the pool's snapshot snap-1: %+v", s.GetSnapshotId(), rec)
			}
			if got := slices.Contains(before, s.GetSnapshotId()); got != tt.again {
				t.Errorf("answered with a snapshot made before: %t, want %t", got, tt.again)
			}
			made := len(after) - len(before)
			if (tt.again && made != 0) || (!tt.again && made != 1) {
				t.Errorf("snapshots %v after, %v before", after, before)
			}
			want := &csi.Snapshot{SizeBytes: tt.bytes, SnapshotId: rec.ID, SourceVolumeId: f.id(tt.source), ReadyToUse: true,
				AccessibleTopology: []*csi.Topology{volcap.Topology(thisNode)}}
			if s.GetCreationTime() == nil || !s.GetCreationTime().AsTime().Equal(rec.CreatedAt) {
				t.Errorf("creation time %v, the pool's %v", s.GetCreationTime(), rec.CreatedAt)
			}
			s = proto.Clone(s).(*csi.Snapshot)
			s.CreationTime = nil
			if !proto.Equal(s, want) {
				t.Errorf("snapshot %v, want %v", s, want)
			}
			if len(rec.Parameters) != 0 {
				t.Errorf("the pool keeps parameters %v, want none", rec.Parameters)
			}
		})
	}
}

// A snapshot answered again is the one made: the same creation time,
// size and source, so the csi-snapshotter sees one snapshot.
func TestCreateSnapshotAgainSame(t *testing.T) {
	f := newFixture(t)
	f.volume("vol", gib)
	req := &csi.CreateSnapshotRequest{Name: "snap-1", SourceVolumeId: f.id("vol"), AccessibilityRequirements: &csi.TopologyRequirement{
		Requisite: []*csi.Topology{volcap.Topology("n2"), volcap.Topology(thisNode)}}}
	first, err := f.s.CreateSnapshot(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.s.CreateSnapshot(t.Context(), req)
	if err != nil || !proto.Equal(again.GetSnapshot(), first.GetSnapshot()) {
		t.Fatalf("again: %v, %v; first %v", again, err, first)
	}
}
