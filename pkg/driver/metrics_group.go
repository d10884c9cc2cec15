package driver

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// groupReader is what the group snapshot metrics read of the engine.
type groupReader interface {
	GroupSnapshotStats() thinpool.GroupSnapshotStats
}

// The group snapshots' metrics.
var (
	descGroups = prometheus.NewDesc("csi_thin_group_snapshots_total",
		"Group snapshots since start, by result: created, or aborted (past --group-snapshot-timeout, or failed) once their volumes were frozen.",
		[]string{"result"}, nil)
	descGroupSuspend = prometheus.NewDesc("csi_thin_group_snapshot_suspend_seconds",
		"How long group snapshots kept their volumes' devices suspended, from the first suspend to the last resume.", nil, nil)
	descGroupSuspendMax = prometheus.NewDesc("csi_thin_group_snapshot_suspend_max_seconds",
		"The longest a group snapshot kept its volumes' devices suspended since start.", nil, nil)
)

// groupCollector reports the engine's group snapshot counters.
type groupCollector struct{ pool groupReader }

func (c *groupCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descGroups
	ch <- descGroupSuspend
	ch <- descGroupSuspendMax
}

func (c *groupCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.GroupSnapshotStats()
	ch <- prometheus.MustNewConstMetric(descGroups, prometheus.CounterValue, float64(s.Created), "created")
	ch <- prometheus.MustNewConstMetric(descGroups, prometheus.CounterValue, float64(s.Aborted), "aborted")
	buckets := make(map[float64]uint64, len(s.SuspendBuckets))
	for _, b := range s.SuspendBuckets {
		buckets[b.UpperBound.Seconds()] = b.Count
	}
	ch <- prometheus.MustNewConstHistogram(descGroupSuspend, s.Suspends, s.SuspendSum.Seconds(), buckets)
	ch <- prometheus.MustNewConstMetric(descGroupSuspendMax, prometheus.GaugeValue, s.MaxSuspend.Seconds())
}
