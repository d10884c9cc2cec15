package driver

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// growReader is what the growth metrics read of the engine.
type growReader interface {
	GrowStats() thinpool.GrowStats
}

// The pool's growth metrics.
var (
	descGrows = prometheus.NewDesc("csi_thin_pool_grows_total",
		"Times the pool grew, by reason: requested (a larger --pool-size), auto (its low water mark), device (its data device grew).",
		[]string{"reason"}, nil)
	descGrowRefusals = prometheus.NewDesc("csi_thin_pool_grow_refusals_total",
		"Pool events that found the pool short of space and could not grow it: at --pool-max-size, or the file system at its reserve.", nil, nil)
	descGrowSeconds = prometheus.NewDesc("csi_thin_pool_grow_latency_seconds",
		"Time from the pool's low water event to the grown pool: the last grow's, and the longest since start.", []string{"which"}, nil)
)

// growCollector reports the engine's growth counters; it reads no pool
// status.
type growCollector struct{ pool growReader }

func (c *growCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descGrows
	ch <- descGrowRefusals
	ch <- descGrowSeconds
}

func (c *growCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.GrowStats()
	reasons := make([]string, 0, len(s.Grows))
	for r := range s.Grows {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		ch <- prometheus.MustNewConstMetric(descGrows, prometheus.CounterValue, float64(s.Grows[r]), r)
	}
	ch <- prometheus.MustNewConstMetric(descGrowRefusals, prometheus.CounterValue, float64(s.Refused))
	ch <- prometheus.MustNewConstMetric(descGrowSeconds, prometheus.GaugeValue, s.LastLatency.Seconds(), "last")
	ch <- prometheus.MustNewConstMetric(descGrowSeconds, prometheus.GaugeValue, s.MaxLatency.Seconds(), "max")
}
