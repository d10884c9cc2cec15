package node

import (
	"os"
	"slices"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

// TestNodePublishVolume runs NodePublishVolume over the fake pool on a
// volume staged, or not: what it binds where, read-only or not, and its
// code. The requests refused before the engine is asked are in
// TestRequestValidation.
func TestNodePublishVolume(t *testing.T) {
	tests := []struct {
		name     string
		cap      *csi.VolumeCapability
		readOnly bool // the request's readonly
		staged   bool
		id       string // another id than the volume's
		want     codes.Code
		// afterwards, for a publication
		roBind, roDevice bool
	}{
		{name: "mount volume: the staging mount bound", cap: mountCap(rwo, "ext4"), staged: true, want: codes.OK},
		{name: "mount volume, readonly: a read-only bind", cap: mountCap(rwo, "ext4"), readOnly: true, staged: true, want: codes.OK, roBind: true},
		{name: "reader-only mount volume: a read-only bind", cap: mountCap(rox, "ext4"), staged: true, want: codes.OK, roBind: true},
		{name: "single writer mount volume", cap: mountCap(rwop, "ext4"), staged: true, want: codes.OK},
		{name: "block volume: the device node bound onto a file", cap: blockCap(rwo), staged: true, want: codes.OK},
		{name: "block volume, readonly: a read-only bind", cap: blockCap(rwo), readOnly: true, staged: true, want: codes.OK, roBind: true},
		{
			name: "reader-only block volume: a read-only bind of a read-only device", cap: blockCap(rox), staged: true,
			want: codes.OK, roBind: true, roDevice: true,
		},
		{name: "unknown volume", cap: mountCap(rwo, "ext4"), id: "vol-missing", want: codes.NotFound},
		{name: "mount volume not staged", cap: mountCap(rwo, "ext4"), want: codes.FailedPrecondition},
		{name: "block volume not staged", cap: blockCap(rwo), want: codes.FailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newNodeFixture(t)
			id := f.volume("pv-1")
			if tt.staged {
				f.staged(id, tt.cap)
			}
			if tt.id != "" {
				id = tt.id
			}
			target := f.targetPath("a")
			wantCSI(t, f.publish(id, target, tt.cap, tt.readOnly), tt.want)
			if tt.want != codes.OK {
				f.wantPath(target, false)
				if f.mounts() != 0 {
					t.Errorf("%d mounts, want none", f.mounts())
				}
				return
			}
			f.wantActive(id, true, tt.roDevice)
			fi, err := os.Stat(target)
			if err != nil {
				t.Fatal(err)
			}
			if block := tt.cap.GetBlock() != nil; fi.IsDir() == block {
				t.Errorf("target is a directory: %t, want %t", fi.IsDir(), !block)
			}
			mp := f.mountAt(target)
			if mp == nil || mp.Device != f.device(id) || !slices.Contains(mp.Opts, "bind") || readOnlyMount(mp) != tt.roBind {
				t.Errorf("target has %+v mounted, want a bind of %s, read-only %t", mp, f.device(id), tt.roBind)
			}
		})
	}
}

// TestNodePublishVolumeAgain publishes a volume, then asks again: at the
// same target with the same request it is OK and binds nothing more;
// with another readonly or capability it is ALREADY_EXISTS, as the spec
// names it. A single writer volume is published at one target at a
// time: FAILED_PRECONDITION for another.
func TestNodePublishVolumeAgain(t *testing.T) {
	type pub struct {
		cap      *csi.VolumeCapability
		readOnly bool
		pod      string // the target's pod
	}
	tests := []struct {
		name        string
		first, then pub
		want        codes.Code
		mounts      int                   // binds made, the first's included
		stagedAs    *csi.VolumeCapability // the first's capability if nil
	}{
		{"mount, the same", pub{mountCap(rwo, "ext4"), false, "a"}, pub{mountCap(rwo, "ext4"), false, "a"}, codes.OK, 1, nil},
		{"mount, read-only after read-write", pub{mountCap(rwo, "ext4"), false, "a"}, pub{mountCap(rwo, "ext4"), true, "a"}, codes.AlreadyExists, 1, nil},
		{"mount, read-write after read-only", pub{mountCap(rwo, "ext4"), true, "a"}, pub{mountCap(rwo, "ext4"), false, "a"}, codes.AlreadyExists, 1, nil},
		{"mount, reader-only after read-write", pub{mountCap(rwo, "ext4"), false, "a"}, pub{mountCap(rox, "ext4"), false, "a"}, codes.AlreadyExists, 1, nil},
		{"block, the same", pub{blockCap(rwo), false, "a"}, pub{blockCap(rwo), false, "a"}, codes.OK, 1, nil},
		{"block, read-only after read-write", pub{blockCap(rwo), false, "a"}, pub{blockCap(rwo), true, "a"}, codes.AlreadyExists, 1, nil},
		{"single writer, another target", pub{mountCap(rwop, "ext4"), false, "a"}, pub{mountCap(rwop, "ext4"), false, "b"}, codes.FailedPrecondition, 1, nil},
		{"single writer block, another target", pub{blockCap(rwop), false, "a"}, pub{blockCap(rwop), false, "b"}, codes.FailedPrecondition, 1, nil},
		{"multi writer, another target", pub{mountCap(snmw, "ext4"), false, "a"}, pub{mountCap(snmw, "ext4"), false, "b"}, codes.OK, 2, nil},
		{"single node writer, another target", pub{mountCap(rwo, "ext4"), false, "a"}, pub{mountCap(rwo, "ext4"), false, "b"}, codes.OK, 2, nil},
		{
			"block at the target of a mount publication", pub{mountCap(rwo, "ext4"), false, "a"}, pub{blockCap(rwo), false, "a"},
			codes.AlreadyExists, 1, nil,
		},
		{
			"mount at the target of a block publication", pub{blockCap(rwo), false, "a"}, pub{mountCap(rwo, "ext4"), false, "a"},
			codes.AlreadyExists, 1, mountCap(rwo, "ext4"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newNodeFixture(t)
			id := f.volume("pv-1")
			stagedAs := tt.first.cap
			if tt.stagedAs != nil {
				stagedAs = tt.stagedAs
			}
			f.staged(id, stagedAs)
			first := f.targetPath(tt.first.pod)
			if err := f.publish(id, first, tt.first.cap, tt.first.readOnly); err != nil {
				t.Fatal(err)
			}
			then := f.targetPath(tt.then.pod)
			wantCSI(t, f.publish(id, then, tt.then.cap, tt.then.readOnly), tt.want)
			if f.mounts() != tt.mounts {
				t.Errorf("%d binds, want %d", f.mounts(), tt.mounts)
			}
			if mp := f.mountAt(first); mp == nil || readOnlyMount(mp) != tt.first.readOnly {
				t.Errorf("the first publication became %+v", mp)
			}
			if then != first {
				f.wantPath(then, tt.want == codes.OK)
			}
		})
	}
}
