package controller

import (
	"errors"
	"fmt"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// deleteCase is a delete of the record a test named id, in a pool that
// holds a volume vol, its snapshot snap, and restored, a volume restored
// from snap.
type deleteCase struct {
	name    string
	setup   func(*fixture)
	id      string
	code    codes.Code
	says    []string
	gone    []string // the records deleted, by the test's name
	deletes int      // the engine's Delete calls
}

func seedDelete(t *testing.T) *fixture {
	f := newFixture(t)
	f.volume("vol", gib)
	f.snapshot("snap", "vol")
	v, err := f.pool.CreateVolume(t.Context(), thinpool.CreateRequest{Name: "restored", SourceID: f.id("snap"), SourceKind: thinpool.KindSnapshot})
	if err != nil {
		t.Fatal(err)
	}
	f.ids["restored"] = v.ID
	return f
}

func runDelete(t *testing.T, tests []deleteCase, del func(f *fixture, id string) error) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := seedDelete(t)
			if tt.setup != nil {
				tt.setup(f)
			}
			calls := f.pool.Calls("Delete")
			wantCode(t, del(f, f.id(tt.id)), tt.code, tt.says...)
			if got := f.pool.Calls("Delete") - calls; got != tt.deletes {
				t.Errorf("the engine was asked to delete %d times, want %d", got, tt.deletes)
			}
			for _, name := range []string{"vol", "snap", "restored"} {
				gone := false
				for _, g := range tt.gone {
					gone = gone || g == name
				}
				if exists := f.get(f.id(name)) != nil; exists == gone {
					t.Errorf("%s exists: %t, want %t", name, exists, !gone)
				}
			}
		})
	}
}

// TestDeleteVolume: an id that names no volume here is deleted already,
// and a device still open is the spec's FAILED_PRECONDITION. A volume's
// snapshots and copies live on.
func TestDeleteVolume(t *testing.T) {
	tests := []deleteCase{
		{name: "a volume: its snapshot and the volume restored from it live on", id: "vol", gone: []string{"vol"}, deletes: 1},
		{name: "a restored volume: its snapshot lives on", id: "restored", gone: []string{"restored"}, deletes: 1},
		{name: "active, nothing holds it: deactivated and deleted", setup: func(f *fixture) { f.activate("vol", false) },
			id: "vol", gone: []string{"vol"}, deletes: 1},
		{name: "unknown id: gone already", id: "never-made"},
		{name: "deleted twice", setup: func(f *fixture) {
			if _, err := f.s.DeleteVolume(f.t.Context(), &csi.DeleteVolumeRequest{VolumeId: f.id("vol")}); err != nil {
				f.t.Fatal(err)
			}
		}, id: "vol", gone: []string{"vol"}},
		{name: "a snapshot's id: left alone", id: "snap"},
		{name: "deleted meanwhile, after the look-up", setup: func(f *fixture) {
			f.pool.FailNext("Delete", fmt.Errorf("%w: no volume or snapshot has id %q", thinpool.ErrNotFound, f.id("vol")))
		}, id: "vol", deletes: 1},
		{name: "pool full: deletes free space", setup: func(f *fixture) { f.pool.SetHealth(errPoolFull) },
			id: "vol", gone: []string{"vol"}, deletes: 1},

		{name: "device held open", setup: func(f *fixture) { f.hold("vol", false) },
			id: "vol", code: codes.FailedPrecondition, says: []string{"unmount or close it first"}, deletes: 1},
		{name: "pool unhealthy", setup: func(f *fixture) { f.pool.SetHealth(errPoolUnhealthy) },
			id: "vol", code: codes.Unavailable, says: []string{"repair it"}, deletes: 1},
		{name: "the look-up fails", setup: func(f *fixture) { f.pool.FailNext("Get", errors.New("state database: input/output error")) },
			id: "vol", code: codes.Internal, says: []string{"delete volume vol-", "input/output error"}},
	}
	runDelete(t, tests, func(f *fixture, id string) error {
		_, err := f.s.DeleteVolume(f.t.Context(), &csi.DeleteVolumeRequest{VolumeId: id})
		return err
	})
}

// TestDeleteSnapshot: as TestDeleteVolume, for snapshots; the volumes
// restored from one live on.
func TestDeleteSnapshot(t *testing.T) {
	tests := []deleteCase{
		{name: "a snapshot: its volume and the one restored from it live on", id: "snap", gone: []string{"snap"}, deletes: 1},
		{name: "a snapshot whose volume is deleted", setup: func(f *fixture) { f.remove("vol") },
			id: "snap", gone: []string{"vol", "snap"}, deletes: 1},
		{name: "unknown id: gone already", id: "never-made"},
		{name: "deleted twice", setup: func(f *fixture) {
			if _, err := f.s.DeleteSnapshot(f.t.Context(), &csi.DeleteSnapshotRequest{SnapshotId: f.id("snap")}); err != nil {
				f.t.Fatal(err)
			}
		}, id: "snap", gone: []string{"snap"}},
		{name: "a volume's id: left alone", id: "vol"},

		{name: "device held open read-only", setup: func(f *fixture) { f.hold("snap", true) },
			id: "snap", code: codes.FailedPrecondition, says: []string{"unmount or close it first"}, deletes: 1},
		{name: "pool unhealthy", setup: func(f *fixture) { f.pool.SetHealth(errPoolUnhealthy) },
			id: "snap", code: codes.Unavailable, deletes: 1},
	}
	runDelete(t, tests, func(f *fixture, id string) error {
		_, err := f.s.DeleteSnapshot(f.t.Context(), &csi.DeleteSnapshotRequest{SnapshotId: id})
		return err
	})
}
