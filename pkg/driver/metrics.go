package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// MetricsPath is where the metrics server answers.
const MetricsPath = "/metrics"

// poolReader is what the metrics read of the engine at each scrape: one
// pool status read (each commits the pool's metadata) and counts of the
// records that decode none.
type poolReader interface {
	Usage() (thinpool.Usage, error)
	Count(kind thinpool.Kind) (int, error)
}

// metrics is csi-thin's Prometheus registry: the pool's gauges, read from
// the engine when scraped, a count and a latency histogram of CSI calls by
// method and gRPC code, and the Go runtime's and process's own metrics.
type metrics struct {
	registry *prometheus.Registry
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(pool poolReader) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "csi_thin_calls_total",
			Help: "CSI calls served, by method and gRPC code.",
		}, []string{"method", "grpc_code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "csi_thin_call_duration_seconds",
			Help: "Time taken to serve CSI calls, by method and gRPC code.",
			// From a probe (well under a millisecond) to a stage that
			// formats a large filesystem (tens of seconds).
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"method", "grpc_code"}),
	}
	m.registry.MustRegister(
		m.calls, m.duration,
		&poolCollector{pool: pool},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "csi_thin_build_info",
			Help:        "Always 1; the version label is csi-thin's version.",
			ConstLabels: prometheus.Labels{"version": Version},
		}, func() float64 { return 1 }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if g, ok := pool.(growReader); ok {
		m.registry.MustRegister(&growCollector{pool: g})
	}
	if g, ok := pool.(groupReader); ok {
		m.registry.MustRegister(&groupCollector{pool: g})
	}
	return m
}

// interceptor counts and times each call under its final gRPC code: it
// sits outside the error mapping in the chain.
func (m *metrics) interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := methodName(info.FullMethod)
	start := time.Now()
	resp, err := handler(ctx, req)
	code := status.Code(err).String()
	m.calls.WithLabelValues(method, code).Inc()
	m.duration.WithLabelValues(method, code).Observe(time.Since(start).Seconds())
	return resp, err
}

// handler serves the registry in Prometheus's text format. A scrape that
// cannot read some metric still returns the others, and logs why.
func (m *metrics) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(MetricsPath, promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog:      promLogger{},
		ErrorHandling: promhttp.ContinueOnError,
	}))
	return mux
}

// serve answers scrapes on lis until ctx is done. It returns the server's
// error, nil once stopped.
func (m *metrics) serve(ctx context.Context, lis net.Listener) error {
	srv := &http.Server{Handler: m.handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics server on %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics server on %s: %w", lis.Addr(), err)
	}
	return nil
}

// promLogger sends promhttp's errors to klog.
type promLogger struct{}

func (promLogger) Println(v ...any) {
	klog.ErrorS(nil, "Metrics scrape", "error", fmt.Sprint(v...))
}

// The pool's metrics.
var (
	descDataBytes = prometheus.NewDesc("csi_thin_pool_data_bytes",
		"Size of the thin pool's data space.", nil, nil)
	descDataUsedBytes = prometheus.NewDesc("csi_thin_pool_data_used_bytes",
		"Bytes of the thin pool's data space that are written.", nil, nil)
	descMetadataBytes = prometheus.NewDesc("csi_thin_pool_metadata_bytes",
		"Size of the thin pool's metadata space.", nil, nil)
	descMetadataUsedBytes = prometheus.NewDesc("csi_thin_pool_metadata_used_bytes",
		"Bytes of the thin pool's metadata space in use.", nil, nil)
	descPromisedBytes = prometheus.NewDesc("csi_thin_pool_promised_bytes",
		"Sum of the sizes of every volume and snapshot in the pool.", nil, nil)
	descBudgetBytes = prometheus.NewDesc("csi_thin_pool_budget_bytes",
		"What the sizes of volumes and snapshots may add up to: overprovision ratio times data space.", nil, nil)
	descAvailableBytes = prometheus.NewDesc("csi_thin_pool_available_bytes",
		"Largest volume that may be created now: what the budget has left, or 0 while free space is below a reserve.", nil, nil)
	descHealthy = prometheus.NewDesc("csi_thin_pool_healthy",
		"1 while the thin pool is healthy, 0 while it is full, read-only, needs_check, failed or cannot be read: csi_thin_pool_mode says which.", nil, nil)
	descMode = prometheus.NewDesc("csi_thin_pool_mode",
		"1 for the state the thin pool is in, 0 for the others: rw (healthy); out_of_data_space (full: deletes work, creates are refused); "+
			"read_only, needs_check, fail or error (no change is taken; see the driver's log for what to run); unreadable.", []string{"mode"}, nil)
	descVolumes = prometheus.NewDesc("csi_thin_volumes",
		"Volumes in the pool, restores and clones included.", nil, nil)
	descSnapshots = prometheus.NewDesc("csi_thin_snapshots",
		"Snapshots in the pool.", nil, nil)
)

// poolCollector reads the pool's gauges from the engine at each scrape:
// one pool status, for the capacity and the health, and the counts of the
// database's records.
type poolCollector struct{ pool poolReader }

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descDataBytes, descDataUsedBytes, descMetadataBytes, descMetadataUsedBytes,
		descPromisedBytes, descBudgetBytes, descAvailableBytes, descHealthy, descMode, descVolumes, descSnapshots,
	} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	usage, err := c.pool.Usage()
	healthy := 1.0
	if usage.Health != nil {
		klog.V(2).InfoS("Metrics: the pool is unhealthy", "err", usage.Health)
		healthy = 0
	}
	ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, healthy)
	mode := thinpool.PoolState(usage.Health)
	for _, m := range thinpool.PoolStates {
		v := 0.0
		if m == mode {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descMode, prometheus.GaugeValue, v, m)
	}

	if err != nil {
		ch <- prometheus.NewInvalidMetric(descDataBytes, fmt.Errorf("read the pool's capacity: %w", err))
	} else {
		for _, g := range []struct {
			desc *prometheus.Desc
			v    uint64
		}{
			{descDataBytes, usage.DataBytes}, {descDataUsedBytes, usage.DataUsedBytes},
			{descMetadataBytes, usage.MetadataBytes}, {descMetadataUsedBytes, usage.MetadataUsedBytes},
			{descPromisedBytes, usage.PromisedBytes}, {descBudgetBytes, usage.BudgetBytes},
			{descAvailableBytes, usage.AvailableBytes},
		} {
			ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(g.v))
		}
	}

	for _, k := range []struct {
		desc *prometheus.Desc
		kind thinpool.Kind
	}{{descVolumes, thinpool.KindVolume}, {descSnapshots, thinpool.KindSnapshot}} {
		n, err := c.pool.Count(k.kind)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(k.desc, fmt.Errorf("count the %ss: %w", k.kind, err))
			continue
		}
		ch <- prometheus.MustNewConstMetric(k.desc, prometheus.GaugeValue, float64(n))
	}
}
