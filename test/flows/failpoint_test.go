package flows

import (
	"fmt"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/csi-thin/csi-thin/internal/failpoint"
)

// TestReleasedBinaryIgnoresFailpoints runs the csi-thin binary as it is
// released, with the crash tests' variable naming the first failpoint of a
// create, snapshot and delete: each succeeds and the driver lives on, as
// failpoints are compiled out of it.
func TestReleasedBinaryIgnoresFailpoints(t *testing.T) {
	for i, point := range []string{"create.after-intent", "snapshot.after-intent", "delete.after-intent"} {
		t.Run(point, func(t *testing.T) {
			t.Setenv(failpoint.EnvVar, point)
			d := startDriver(t, fmt.Sprintf("csi-thin-flow-failpoint-%d", i))
			v := d.create("fp", 64*mib, mountCap("ext4"), nil)
			s := d.snapshot("fp-snap", v.VolumeId)
			if _, err := d.ctrl.DeleteSnapshot(ctx(t), &csi.DeleteSnapshotRequest{SnapshotId: s.SnapshotId}); err != nil {
				t.Fatalf("delete snapshot: %v", err)
			}
			if _, err := d.ctrl.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: v.VolumeId}); err != nil {
				t.Fatalf("delete volume: %v", err)
			}
			if _, err := d.ident.Probe(ctx(t), &csi.ProbeRequest{}); err != nil {
				t.Fatalf("the driver does not answer after passing %s: %v", point, err)
			}
		})
	}
}
