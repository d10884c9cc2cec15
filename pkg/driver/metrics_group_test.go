package driver

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// groupingPool is a fakePool that has taken group snapshots.
type groupingPool struct {
	fakePool
	stats thinpool.GroupSnapshotStats
}

func (p *groupingPool) GroupSnapshotStats() thinpool.GroupSnapshotStats { return p.stats }

// The suspend windows are served as a histogram, with the results and the
// longest window.
func TestGroupSnapshotMetrics(t *testing.T) {
	pool := &groupingPool{stats: thinpool.GroupSnapshotStats{
		Created: 3, Aborted: 1, Suspends: 3, SuspendSum: 30 * time.Millisecond,
		SuspendBuckets: []thinpool.SuspendBucket{{UpperBound: 5 * time.Millisecond, Count: 1}, {UpperBound: 25 * time.Millisecond, Count: 3}},
		LastSuspend:    20 * time.Millisecond, MaxSuspend: 22 * time.Millisecond,
	}}
	m := newMetrics(pool)
	want := `
# HELP csi_thin_group_snapshots_total Group snapshots since start, by result: created, or aborted (past --group-snapshot-timeout, or failed) once their volumes were frozen.
# TYPE csi_thin_group_snapshots_total counter
csi_thin_group_snapshots_total{result="aborted"} 1
csi_thin_group_snapshots_total{result="created"} 3
# HELP csi_thin_group_snapshot_suspend_seconds How long group snapshots kept their volumes' devices suspended, from the first suspend to the last resume.
# TYPE csi_thin_group_snapshot_suspend_seconds histogram
csi_thin_group_snapshot_suspend_seconds_bucket{le="0.005"} 1
csi_thin_group_snapshot_suspend_seconds_bucket{le="0.025"} 3
csi_thin_group_snapshot_suspend_seconds_bucket{le="+Inf"} 3
csi_thin_group_snapshot_suspend_seconds_sum 0.03
csi_thin_group_snapshot_suspend_seconds_count 3
# HELP csi_thin_group_snapshot_suspend_max_seconds The longest a group snapshot kept its volumes' devices suspended since start.
# TYPE csi_thin_group_snapshot_suspend_max_seconds gauge
csi_thin_group_snapshot_suspend_max_seconds 0.022
`
	if err := testutil.GatherAndCompare(m.registry, strings.NewReader(want),
		"csi_thin_group_snapshots_total", "csi_thin_group_snapshot_suspend_seconds", "csi_thin_group_snapshot_suspend_max_seconds"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(newMetrics(&fakePool{}).registry, "csi_thin_group_snapshots_total"); err != nil || n != 0 {
		t.Fatalf("%d group metrics (%v) from a reader without group snapshots", n, err)
	}
}
