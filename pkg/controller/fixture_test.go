package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/csi-thin/csi-thin/internal/fakepool"
	"github.com/csi-thin/csi-thin/pkg/csierr"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// thisNode is the node the fixture's controller serves.
const thisNode = "n1"

// budget is the fixture pool's: what its volumes and snapshots may add up
// to.
const budget = 20 * gib

// fixture is a controller over a fake pool, and the ids of the records a
// test made in it by name.
type fixture struct {
	t    *testing.T
	pool *fakepool.Pool
	s    *Server
	ids  map[string]string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	p := fakepool.NewT(t, fakepool.Options{BudgetBytes: budget})
	return &fixture{t: t, pool: p, s: New(p, thisNode), ids: map[string]string{}}
}

// id is the id of the record the test named name; an unknown name is an
// id no record has.
func (f *fixture) id(name string) string {
	if id, ok := f.ids[name]; ok {
		return id
	}
	return "vol-unknown-" + name
}

// volume makes a blank volume of size bytes in the pool, as a
// CreateVolume would have.
func (f *fixture) volume(name string, size uint64) string {
	f.t.Helper()
	v, err := f.pool.CreateVolume(f.t.Context(), thinpool.CreateRequest{Name: name, RequiredBytes: size, Parameters: map[string]string{}})
	if err != nil {
		f.t.Fatal(err)
	}
	f.ids[name] = v.ID
	return v.ID
}

// snapshot takes a snapshot of the volume the test named source.
func (f *fixture) snapshot(name, source string) string {
	f.t.Helper()
	v, err := f.pool.CreateSnapshot(f.t.Context(), name, f.id(source), nil)
	if err != nil {
		f.t.Fatal(err)
	}
	f.ids[name] = v.ID
	return v.ID
}

// remove deletes the record the test named name from the pool.
func (f *fixture) remove(name string) {
	f.t.Helper()
	if err := f.pool.Delete(f.t.Context(), f.id(name)); err != nil {
		f.t.Fatal(err)
	}
}

// activate makes the device of the record the test named name active.
func (f *fixture) activate(name string, readOnly bool) {
	f.t.Helper()
	if _, err := f.pool.ActivateDevice(f.t.Context(), f.id(name), readOnly); err != nil {
		f.t.Fatal(err)
	}
}

// hold activates a record's device and keeps it open, as a mount does.
func (f *fixture) hold(name string, readOnly bool) {
	f.t.Helper()
	f.activate(name, readOnly)
	if err := f.pool.Hold(f.id(name)); err != nil {
		f.t.Fatal(err)
	}
}

// failDevice activates a volume's device and makes it report failure.
func (f *fixture) failDevice(name string) {
	f.t.Helper()
	f.activate(name, false)
	if err := f.pool.FailDevice(f.id(name)); err != nil {
		f.t.Fatal(err)
	}
}

// records are the ids of the pool's records of a kind, in id order.
func (f *fixture) records(kind thinpool.Kind) []string {
	f.t.Helper()
	vs, _, err := f.pool.List(kind, "", 0)
	if err != nil {
		f.t.Fatal(err)
	}
	var ids []string
	for _, v := range vs {
		ids = append(ids, v.ID)
	}
	return ids
}

// get is the pool's record of id, or nil.
func (f *fixture) get(id string) *thinpool.Volume {
	v, err := f.pool.Get(id)
	if err != nil {
		return nil
	}
	return v
}

// Pool states a test sets with SetHealth, as the engine reports them.
var (
	errPoolFull      = fmt.Errorf("%w: data space is 100%% used: delete volumes or grow the pool", thinpool.ErrNoSpace)
	errPoolUnhealthy = fmt.Errorf("%w: the pool's metadata is read-only: run thin_check and repair it", thinpool.ErrUnhealthy)
)

// wantCode fails the test unless err has the CSI code want, as a caller
// sees it through the driver, and its message says each of says.
func wantCode(t *testing.T, err error, want codes.Code, says ...string) {
	t.Helper()
	if got := csierr.Code(err); got != want {
		t.Fatalf("got %v (code %s), want code %s", err, got, want)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message %q does not say %q", err, s)
		}
	}
}

// capsOf is a request's capabilities: one mount capability, read-write on
// one node, of the filesystem fs ("" the parameters' or the default).
func capsOf(fs string) []*csi.VolumeCapability {
	return []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, fs)}
}

// onThisNode is the accessibility requirement of a topology-aware caller
// that picked this node.
func onThisNode() *csi.TopologyRequirement {
	return &csi.TopologyRequirement{Requisite: []*csi.Topology{volcap.Topology(thisNode)}, Preferred: []*csi.Topology{volcap.Topology(thisNode)}}
}

// snapshotSource and volumeSource are content sources.
func snapshotSource(id string) *csi.VolumeContentSource {
	return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: id}}}
}

func volumeSource(id string) *csi.VolumeContentSource {
	return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: id}}}
}

// cancelled is a context that has ended.
func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
