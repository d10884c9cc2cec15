package node

import (
	"context"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

// TestNodeVolumeLifecycle runs a volume through the node's handlers as
// kubelet does, stage, publish at two targets, unpublish, unstage, and
// checks that nothing is left: no mount, no path, no active device. An
// unstage that comes while a mount volume is still published fails with
// FAILED_PRECONDITION, as its publication keeps the device open, and
// succeeds once the volume is unpublished.
func TestNodeVolumeLifecycle(t *testing.T) {
	for _, c := range []*csi.VolumeCapability{mountCap(rwo, "ext4"), blockCap(rwo), blockCap(rox)} {
		block := c.GetBlock() != nil
		name := map[bool]string{false: "mount", true: "block"}[block]
		if c.GetAccessMode().GetMode() == rox {
			name = "reader-only " + name
		}
		t.Run(name, func(t *testing.T) {
			f := newNodeFixture(t)
			id := f.volume("pv-1")
			if !block {
				f.script.expect(formatRuns(f.device(id), f.stagingPath(id), "ext4")...)
			}
			if err := f.stage(context.Background(), id, c, nil); err != nil {
				t.Fatal(err)
			}
			targets := []string{f.targetPath("a"), f.targetPath("b")}
			for _, target := range targets {
				if err := f.publish(id, target, c, false); err != nil {
					t.Fatal(err)
				}
			}
			if !block {
				wantCSI(t, f.unstage(id), codes.FailedPrecondition)
				f.wantActive(id, true, false)
			}
			for _, target := range targets {
				if err := f.unpublish(id, target); err != nil {
					t.Fatal(err)
				}
				f.wantPath(target, false)
			}
			if err := f.unstage(id); err != nil {
				t.Fatal(err)
			}
			f.wantActive(id, false, false)
			f.wantPath(f.stagingPath(id), false)
			if mps, _ := f.m.List(); len(mps) != 0 {
				t.Errorf("mounts left: %+v", mps)
			}
			if n := f.pool.Calls("ActivateDevice"); n != 1 {
				t.Errorf("%d activations, want 1", n)
			}
		})
	}
}
