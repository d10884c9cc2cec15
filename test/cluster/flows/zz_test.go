package flows

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// thinIDs lists the thin devices in node i's pool, from a snapshot of the
// pool's metadata (thin_ls), as the kernel has them: not what csi-thin's
// database says.
func thinIDs(t *testing.T, i int) []string {
	t.Helper()
	out, err := nodeExec(t, i, `set -e
pool=$(dmsetup ls --target thin-pool | awk '{print $1}')
[ -n "$pool" ] || { echo "no thin pool" >&2; exit 1; }
meta=$(dmsetup table "$pool" | awk '{print $4}')
mknod /run/thin-meta-$$ b ${meta%%:*} ${meta##*:}
dmsetup message "$pool" 0 reserve_metadata_snap
trap 'dmsetup message "$pool" 0 release_metadata_snap; rm -f /run/thin-meta-$$' EXIT
thin_ls --metadata-snap --no-headers -o DEV /run/thin-meta-$$`)
	if err != nil {
		t.Fatalf("the thin devices of %s's pool: %v", c.nodes[i], err)
	}
	return strings.Fields(out)
}

// TestZZNoThinDeviceLeft runs last: every test deleted what it made, so no
// PV or VolumeSnapshotContent of csi-thin is left, and no pool has a thin
// device: nothing leaked on any node.
func TestZZNoThinDeviceLeft(t *testing.T) {
	needCluster(t)
	ctx := context.Background()
	pvs, err := c.kube.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	contents, err := c.snap.SnapshotV1().VolumeSnapshotContents().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pvs.Items) != 0 || len(contents.Items) != 0 {
		t.Fatalf("%d PVs and %d VolumeSnapshotContents are left after every test deleted its namespace", len(pvs.Items), len(contents.Items))
	}
	for i, n := range c.nodes {
		if ids := thinIDs(t, i); len(ids) != 0 {
			t.Errorf("node %s's pool has thin devices %v that no PV or VolumeSnapshotContent references", n, ids)
		} else {
			t.Logf("node %s's pool: no thin device", n)
		}
	}
}
