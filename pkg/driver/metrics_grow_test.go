package driver

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// growingPool is a fakePool that has grown.
type growingPool struct {
	fakePool
	stats thinpool.GrowStats
}

func (p *growingPool) GrowStats() thinpool.GrowStats { return p.stats }

// The growth counters are served when the engine reports them, by reason,
// with the refusals and the event-to-grown latencies.
func TestGrowMetrics(t *testing.T) {
	pool := &growingPool{stats: thinpool.GrowStats{
		Grows:       map[string]uint64{"auto": 12, "requested": 1},
		Refused:     3,
		LastLatency: 62 * time.Millisecond, MaxLatency: 107 * time.Millisecond,
	}}
	m := newMetrics(pool)
	want := `
# HELP csi_thin_pool_grow_refusals_total Pool events that found the pool short of space and could not grow it: at --pool-max-size, or the file system at its reserve.
# TYPE csi_thin_pool_grow_refusals_total counter
csi_thin_pool_grow_refusals_total 3
# HELP csi_thin_pool_grows_total Times the pool grew, by reason: requested (a larger --pool-size), auto (its low water mark), device (its data device grew).
# TYPE csi_thin_pool_grows_total counter
csi_thin_pool_grows_total{reason="auto"} 12
csi_thin_pool_grows_total{reason="requested"} 1
# HELP csi_thin_pool_grow_latency_seconds Time from the pool's low water event to the grown pool: the last grow's, and the longest since start.
# TYPE csi_thin_pool_grow_latency_seconds gauge
csi_thin_pool_grow_latency_seconds{which="last"} 0.062
csi_thin_pool_grow_latency_seconds{which="max"} 0.107
`
	if err := testutil.GatherAndCompare(m.registry, strings.NewReader(want),
		"csi_thin_pool_grows_total", "csi_thin_pool_grow_refusals_total", "csi_thin_pool_grow_latency_seconds"); err != nil {
		t.Fatal(err)
	}
	// A pool reader without growth has no growth metrics.
	plain := newMetrics(&fakePool{})
	if n, err := testutil.GatherAndCount(plain.registry, "csi_thin_pool_grows_total"); err != nil || n != 0 {
		t.Fatalf("%d growth metrics (%v) from a reader without growth", n, err)
	}
	var _ prometheus.Collector = &growCollector{}
}
