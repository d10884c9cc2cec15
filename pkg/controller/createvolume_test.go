package controller

import (
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// createRequest is a CreateVolume of a blank ext4 volume named pvc-new,
// edited by edit.
func createRequest(f *fixture, edit func(*fixture, *csi.CreateVolumeRequest)) *csi.CreateVolumeRequest {
	r := &csi.CreateVolumeRequest{Name: "pvc-new", VolumeCapabilities: capsOf("")}
	if edit != nil {
		edit(f, r)
	}
	return r
}

// wantVolume fails the test unless resp is the CSI volume of the pool's
// volume named name, of size bytes, made for req: its content source
// echoed, the parameters the node needs as its context, and this node
// as its topology.
func wantVolume(t *testing.T, f *fixture, req *csi.CreateVolumeRequest, resp *csi.CreateVolumeResponse, bytes int64, volumeContext map[string]string) {
	t.Helper()
	v := resp.GetVolume()
	rec := f.get(v.GetVolumeId())
	switch {
	case rec == nil || rec.Kind != thinpool.KindVolume || rec.Name != req.GetName():
		t.Fatalf("volume %s is not the pool's volume %q: %+v", v.GetVolumeId(), req.GetName(), rec)
	case v.GetCapacityBytes() != bytes || rec.SizeBytes != uint64(bytes):
		t.Errorf("capacity %d bytes, the pool's volume %d, want %d", v.GetCapacityBytes(), rec.SizeBytes, bytes)
	}
	if !proto.Equal(v.GetContentSource(), req.GetVolumeContentSource()) {
		t.Errorf("content source %v, want the request's %v", v.GetContentSource(), req.GetVolumeContentSource())
	}
	if volumeContext == nil {
		volumeContext = map[string]string{}
	}
	if !maps.Equal(v.GetVolumeContext(), volumeContext) {
		t.Errorf("volume context %v, want %v", v.GetVolumeContext(), volumeContext)
	}
	if len(v.GetAccessibleTopology()) != 1 || !proto.Equal(v.GetAccessibleTopology()[0], volcap.Topology(thisNode)) {
		t.Errorf("accessible topology %v, want this node's only", v.GetAccessibleTopology())
	}
}

// TestCreateVolume creates a volume by a name not taken, in a pool that
// holds a 2 GiB volume src and its snapshot snap: the size the engine
// picks, the response, and every code the spec names that csi-thin
// gives; a create that fails makes nothing. Requests refused before the
// engine is asked are in TestParseCreateVolume and TestRequestValidation.
func TestCreateVolume(t *testing.T) {
	const block = 64 * kib
	tests := []struct {
		name  string
		setup func(*fixture)
		edit  func(*fixture, *csi.CreateVolumeRequest)
		code  codes.Code
		says  []string
		// the volume made
		bytes int64
		ctx   map[string]string
	}{
		{name: "blank, no size asked: 1 GiB", bytes: gib},
		{name: "blank: the required size in whole blocks", edit: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: gib + 1}
		}, bytes: gib + block},
		{name: "blank: a limit alone under 1 GiB: the most whole blocks under it", edit: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.CapacityRange = &csi.CapacityRange{LimitBytes: 100*mib + 1}
		}, bytes: 100 * mib},
		{name: "the parameters the node needs are the volume context", edit: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.Parameters = map[string]string{volcap.ParamFsType: "xfs", volcap.ParamBlockSize: "4096", "csi.storage.k8s.io/pvc/name": "data"}
		}, bytes: gib, ctx: map[string]string{volcap.ParamFsType: "xfs", volcap.ParamBlockSize: "4096"}},
		{name: "xfs: a smaller request is raised to mkfs.xfs's minimum", edit: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = capsOf("xfs")
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: mib}
		}, bytes: 300 * mib},
		{name: "block: no filesystem's minimum", edit: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = []*csi.VolumeCapability{blockCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)}
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: mib}
		}, bytes: mib},
		{name: "on this node's topology", edit: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.AccessibilityRequirements = onThisNode()
		}, bytes: gib},
		{name: "restore: the snapshot's size", edit: func(f *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = snapshotSource(f.id("snap"))
		}, bytes: 2 * gib},
		{name: "restore: larger than the snapshot", edit: func(f *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = snapshotSource(f.id("snap"))
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: 3 * gib}
		}, bytes: 3 * gib},
		{name: "restore: a smaller required size is raised to the snapshot's", edit: func(f *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = snapshotSource(f.id("snap"))
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: gib}
		}, bytes: 2 * gib},
		{name: "clone: the volume's size", edit: func(f *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = volumeSource(f.id("src"))
			r.AccessibilityRequirements = onThisNode()
		}, bytes: 2 * gib},
		{name: "restore of a snapshot whose volume is deleted since", setup: func(f *fixture) { f.remove("src") },
			edit: func(f *fixture, r *csi.CreateVolumeRequest) { r.VolumeContentSource = snapshotSource(f.id("snap")) }, bytes: 2 * gib},

		// Source does not exist: NOT_FOUND, or, for a caller that asked
		// for this node, RESOURCE_EXHAUSTED so that it reschedules.
		{name: "restore of a snapshot not on this node", edit: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = snapshotSource("snap-elsewhere")
		}, code: codes.NotFound, says: []string{`"snap-elsewhere"`, "or check the source exists", "VolumeSnapshotContent"}},
		{name: "restore of a snapshot not on this node, asked of this node's topology", edit: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = snapshotSource("snap-elsewhere")
			r.AccessibilityRequirements = onThisNode()
		}, code: codes.ResourceExhausted, says: []string{"nodeSelector topology.csi-thin.io/node: <the source's node>", "managed-by"}},
		{name: "clone of a volume not on this node", edit: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = volumeSource("vol-elsewhere")
		}, code: codes.NotFound, says: []string{`"vol-elsewhere"`, "PersistentVolume's node affinity"}},
		{name: "clone of a volume not on this node, asked of this node's topology", edit: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = volumeSource("vol-elsewhere")
			r.AccessibilityRequirements = onThisNode()
		}, code: codes.ResourceExhausted, says: []string{`node "n1" has none`, "PersistentVolume's node affinity"}},
		{name: "restore of a deleted snapshot", setup: func(f *fixture) { f.remove("snap") }, edit: func(f *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = snapshotSource(f.id("snap"))
		}, code: codes.NotFound},
		// An id of the other kind is here: not found, whatever the
		// topology, with what to pass instead.
		{name: "restore of a volume's id", edit: func(f *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = snapshotSource(f.id("src"))
			r.AccessibilityRequirements = onThisNode()
		}, code: codes.NotFound, says: []string{"it is a volume's id; pass a snapshot id"}},
		{name: "clone of a snapshot's id", edit: func(f *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = volumeSource(f.id("snap"))
		}, code: codes.NotFound, says: []string{"it is a snapshot's id; pass a volume id"}},

		// Unsupported capacity_range: OUT_OF_RANGE, saying which limit
		// to raise.
		{name: "limit below the required size", edit: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: 2 * gib, LimitBytes: gib}
		}, code: codes.OutOfRange, says: []string{"raise the limit or lower the request"}},
		{name: "limit below the snapshot's size", edit: func(f *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = snapshotSource(f.id("snap"))
			r.CapacityRange = &csi.CapacityRange{LimitBytes: gib}
		}, code: codes.OutOfRange, says: []string{"the source is 2147483648 bytes", "raise the limit to at least 2147483648"}},
		{name: "limit below the source volume's size", edit: func(f *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = volumeSource(f.id("src"))
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: gib, LimitBytes: gib}
		}, code: codes.OutOfRange, says: []string{"a copy cannot be smaller"}},
		{name: "limit below mkfs.xfs's minimum", edit: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.Parameters = map[string]string{volcap.ParamFsType: "xfs"}
			r.CapacityRange = &csi.CapacityRange{LimitBytes: 100 * mib}
		}, code: codes.OutOfRange, says: []string{"mkfs.xfs makes no filesystem under 314572800 bytes", "or use another filesystem"}},
		{name: "limit below a block", edit: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = []*csi.VolumeCapability{blockCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)}
			r.CapacityRange = &csi.CapacityRange{LimitBytes: 1000}
		}, code: codes.OutOfRange, says: []string{"below the pool's block size"}},
		{name: "a range between two whole blocks", edit: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: gib + 1, LimitBytes: gib + 100}
		}, code: codes.OutOfRange, says: []string{"holds no whole number of the pool's 65536-byte blocks"}},
		{name: "larger than any volume", edit: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: math.MaxInt64}
		}, code: codes.OutOfRange, says: []string{"too large"}},

		// No room: RESOURCE_EXHAUSTED; a pool that takes no change:
		// UNAVAILABLE.
		{name: "more than the budget has left", edit: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: budget}
		}, code: codes.ResourceExhausted, says: []string{"budget"}},
		{name: "pool full", setup: func(f *fixture) { f.pool.SetHealth(errPoolFull) },
			code: codes.ResourceExhausted, says: []string{"delete volumes or grow the pool"}},
		{name: "pool full: a restore too", setup: func(f *fixture) { f.pool.SetHealth(errPoolFull) }, edit: func(f *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = snapshotSource(f.id("snap"))
		}, code: codes.ResourceExhausted},
		{name: "pool unhealthy", setup: func(f *fixture) { f.pool.SetHealth(errPoolUnhealthy) },
			code: codes.Unavailable, says: []string{"repair it"}},

		{name: "a name longer than the engine takes", edit: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.Name = strings.Repeat("n", 1025)
		}, code: codes.InvalidArgument, says: []string{"must be 1 to 1024 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.volume("src", 2*gib)
			f.snapshot("snap", "src")
			if tt.setup != nil {
				tt.setup(f)
			}
			before := f.records(thinpool.KindVolume)
			req := createRequest(f, tt.edit)
			resp, err := f.s.CreateVolume(t.Context(), req)
			wantCode(t, err, tt.code, tt.says...)
			if err != nil {
				if after := f.records(thinpool.KindVolume); !slices.Equal(after, before) {
					t.Errorf("the failed create left volumes %v, had %v", after, before)
				}
				return
			}
			if slices.Contains(before, resp.GetVolume().GetVolumeId()) {
				t.Fatalf("answered with %s, which was there before", resp.GetVolume().GetVolumeId())
			}
			wantVolume(t, f, req, resp, tt.bytes, tt.ctx)
		})
	}
}

// TestCreateVolumeAgain sends a CreateVolume for a name that a first one
// took: the spec's idempotency. The volume of that name answers when it
// has the request's source and parameters and a size in its range (the
// engine's rule, which the fake shares), grown since or its source gone;
// otherwise ALREADY_EXISTS says what differs and what to do.
func TestCreateVolumeAgain(t *testing.T) {
	blank := func(_ *fixture, r *csi.CreateVolumeRequest) { r.CapacityRange = &csi.CapacityRange{RequiredBytes: gib} }
	restore := func(f *fixture, r *csi.CreateVolumeRequest) { r.VolumeContentSource = snapshotSource(f.id("snap")) }
	grow := func(f *fixture, id string) {
		if _, err := f.pool.Expand(f.t.Context(), id, 3*gib); err != nil {
			f.t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		first   func(*fixture, *csi.CreateVolumeRequest) // the first request, from createRequest's
		between func(f *fixture, id string)              // id: the volume the first made
		second  func(*fixture, *csi.CreateVolumeRequest) // edits the first request; nil sends it again
		code    codes.Code
		says    []string
		bytes   int64 // the volume's, when the same answers
	}{
		{name: "the same request", first: blank, bytes: gib},
		{name: "a range that holds its size", first: blank, second: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: 512 * mib, LimitBytes: 2 * gib}
		}, bytes: gib},
		{name: "other capabilities: formatted on staging, so the same volume", first: blank, second: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = []*csi.VolumeCapability{blockCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER)}
		}, bytes: gib},
		{name: "on this node's topology", first: blank, second: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.AccessibilityRequirements = onThisNode()
		}, bytes: gib},
		{name: "a larger required size", first: blank, second: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: 2 * gib}
		}, code: codes.AlreadyExists, says: []string{"its 1073741824 bytes are outside the size of at least 2147483648 bytes", "use another name"}},
		{name: "a limit below its size", first: blank, second: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.CapacityRange = &csi.CapacityRange{LimitBytes: 512 * mib}
		}, code: codes.AlreadyExists, says: []string{"a size range that holds its 1073741824 bytes"}},
		{name: "other parameters", first: blank, second: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.Parameters = map[string]string{volcap.ParamFsType: "xfs"}
		}, code: codes.AlreadyExists, says: []string{"the StorageClass it was created with"}},
		{name: "a source where it had none", first: blank, second: restore,
			code: codes.AlreadyExists, says: []string{"it is a blank volume, not a copy of snap-", "the source it was created from"}},
		{name: "no source where it had one", first: restore, second: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = nil
		}, code: codes.AlreadyExists, says: []string{"not a blank volume"}},
		{name: "another snapshot", first: restore, second: func(f *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = snapshotSource(f.id("snap2"))
		}, code: codes.AlreadyExists},
		{name: "a clone where it was a restore", first: restore, second: func(f *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = volumeSource(f.id("src"))
		}, code: codes.AlreadyExists},
		{name: "a limit below the required size", first: blank, second: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: 2 * gib, LimitBytes: gib}
		}, code: codes.OutOfRange, says: []string{"raise the limit or lower the request"}},

		{name: "grown since", first: blank, between: grow, bytes: 3 * gib},
		{name: "grown since, within the limit", first: blank, between: grow, second: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: gib, LimitBytes: 4 * gib}
		}, bytes: 3 * gib},
		{name: "grown since past the limit", first: func(_ *fixture, r *csi.CreateVolumeRequest) {
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: gib, LimitBytes: 2 * gib}
		}, between: grow, code: codes.AlreadyExists, says: []string{"its 3221225472 bytes are outside the size range [1073741824, 2147483648] bytes"}},
		{name: "its snapshot deleted since", first: restore, between: func(f *fixture, _ string) { f.remove("snap") }, bytes: 2 * gib},
		{name: "its snapshot deleted since, on this node's topology", first: restore, between: func(f *fixture, _ string) { f.remove("snap") },
			second: func(_ *fixture, r *csi.CreateVolumeRequest) { r.AccessibilityRequirements = onThisNode() }, bytes: 2 * gib},
		{name: "its source volume deleted since", first: func(f *fixture, r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = volumeSource(f.id("src"))
		}, between: func(f *fixture, _ string) { f.remove("src") }, bytes: 2 * gib},
		{name: "the pool full since: the volume is there", first: blank, between: func(f *fixture, _ string) { f.pool.SetHealth(errPoolFull) }, bytes: gib},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.volume("src", 2*gib)
			f.snapshot("snap", "src")
			f.snapshot("snap2", "src")
			calls := f.pool.Calls("CreateVolume")
			first := createRequest(f, tt.first)
			made, err := f.s.CreateVolume(t.Context(), first)
			if err != nil {
				t.Fatalf("first create: %v", err)
			}
			id := made.GetVolume().GetVolumeId()
			if tt.between != nil {
				tt.between(f, id)
			}
			second := proto.Clone(first).(*csi.CreateVolumeRequest)
			if tt.second != nil {
				tt.second(f, second)
			}
			resp, err := f.s.CreateVolume(t.Context(), second)
			wantCode(t, err, tt.code, tt.says...)
			if got := f.pool.Calls("CreateVolume") - calls; got != 2 {
				t.Errorf("the engine was asked %d times, want once a request", got)
			}
			var named []string
			for _, vid := range f.records(thinpool.KindVolume) {
				if f.get(vid).Name == first.GetName() {
					named = append(named, vid)
				}
			}
			if !slices.Equal(named, []string{id}) {
				t.Fatalf("volumes named %q: %v, want the first's %s alone", first.GetName(), named, id)
			}
			if err != nil {
				return
			}
			if got := resp.GetVolume().GetVolumeId(); got != id {
				t.Fatalf("answered with %s, want the first's %s", got, id)
			}
			wantVolume(t, f, second, resp, tt.bytes, nil)
		})
	}
}

// Creates of one name at once make one volume, which answers them all.
func TestCreateVolumeConcurrent(t *testing.T) {
	f := newFixture(t)
	req := createRequest(f, nil)
	const n = 8
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := f.s.CreateVolume(t.Context(), proto.Clone(req).(*csi.CreateVolumeRequest))
			ids[i], errs[i] = resp.GetVolume().GetVolumeId(), err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("create %d: %q, %v; the first made %q", i, ids[i], errs[i], ids[0])
		}
	}
	if got := f.records(thinpool.KindVolume); !slices.Equal(got, []string{ids[0]}) {
		t.Fatalf("the pool holds volumes %v, want %s alone", got, ids[0])
	}
}
