package node

import (
	"testing"

	"google.golang.org/grpc/codes"
)

// TestNodeUnstageVolume: an unstage unmounts and removes the staging path
// and deactivates the device, and asked again finds nothing to do. The
// requests it refuses for a missing field are in TestRequestValidation.
func TestNodeUnstageVolume(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *nodeFixture, id string)
		id    string // another id than the volume's
	}{
		{"mount volume", func(f *nodeFixture, id string) { f.staged(id, mountCap(rwo, "ext4")) }, ""},
		{"block volume", func(f *nodeFixture, id string) { f.staged(id, blockCap(rwo)) }, ""},
		{"reader-only block volume", func(f *nodeFixture, id string) { f.staged(id, blockCap(rox)) }, ""},
		{"a staging path with nothing mounted, the device active", func(f *nodeFixture, id string) {
			activate(f, id, false)
			mkdirAll(f.t, f.stagingPath(id))
		}, ""},
		{"never staged", nil, ""},
		// Not NOT_FOUND: the volume is not staged, which is OK, and
		// kubelet would retry an unstage that fails forever.
		{"unknown volume", nil, "vol-missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newNodeFixture(t)
			id := f.volume("pv-1")
			if tt.setup != nil {
				tt.setup(f, id)
			}
			if tt.id != "" {
				id = tt.id
			}
			for i := range 2 {
				if err := f.unstage(id); err != nil {
					t.Fatalf("unstage %d: %v", i, err)
				}
				f.wantActive(id, false, false)
				f.wantPath(f.stagingPath(id), false)
				if mp := f.mountAt(f.stagingPath(id)); mp != nil {
					t.Fatalf("unstage %d left %+v mounted", i, *mp)
				}
			}
		})
	}
}

// TestNodeUnstageHeldDevice: while something keeps the device open (a
// publication left mounted, a process) the unstage unmounts the staging
// path and then answers FAILED_PRECONDITION, saying what to close; once
// it is closed the unstage asked again deactivates the device.
func TestNodeUnstageHeldDevice(t *testing.T) {
	f := newNodeFixture(t)
	id := f.volume("pv-1")
	f.staged(id, mountCap(rwo, "ext4"))
	hold(f, id)
	for i := range 2 {
		err := f.unstage(id)
		wantCSI(t, err, codes.FailedPrecondition)
		wantMessage(t, err, "unmount or close it first")
		f.wantActive(id, true, false)
		f.wantPath(f.stagingPath(id), false)
		if mp := f.mountAt(f.stagingPath(id)); mp != nil {
			t.Fatalf("unstage %d left %+v mounted", i, *mp)
		}
	}
	if err := f.pool.Release(id); err != nil {
		t.Fatal(err)
	}
	if err := f.unstage(id); err != nil {
		t.Fatalf("unstage once the device is closed: %v", err)
	}
	f.wantActive(id, false, false)
}
