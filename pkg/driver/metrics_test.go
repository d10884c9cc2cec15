package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// fakePool is a poolReader without a kernel. It counts its pool status
// reads, as each commits the pool's metadata.
type fakePool struct {
	capacity    thinpool.Capacity
	capacityErr error // the status read fails
	healthErr   error
	countErr    error
	volumes     int
	snapshots   int
	statusReads int
	counts      int
}

func (p *fakePool) Usage() (thinpool.Usage, error) {
	p.statusReads++
	if p.capacityErr != nil {
		return thinpool.Usage{Health: p.healthErr}, p.capacityErr
	}
	return thinpool.Usage{Capacity: p.capacity, Health: p.healthErr}, nil
}

func (p *fakePool) Count(kind thinpool.Kind) (int, error) {
	p.counts++
	if p.countErr != nil {
		return 0, p.countErr
	}
	if kind == thinpool.KindSnapshot {
		return p.snapshots, nil
	}
	return p.volumes, nil
}

// gather collects the registry into name -> value of the unlabelled
// gauges, and the gathering error.
func gather(t *testing.T, g prometheus.Gatherer) (map[string]float64, error) {
	t.Helper()
	mfs, err := g.Gather()
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 0 && m.GetGauge() != nil {
				got[mf.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	return got, err
}

func TestPoolCollector(t *testing.T) {
	space := thinpool.Capacity{
		DataBytes: 1 << 30, DataUsedBytes: 10 << 20, MetadataBytes: 8 << 20, MetadataUsedBytes: 1 << 20,
		BudgetBytes: 10 << 30, PromisedBytes: 768 << 20, AvailableBytes: 10<<30 - 768<<20,
	}
	full := map[string]float64{
		"csi_thin_pool_data_bytes": 1 << 30, "csi_thin_pool_data_used_bytes": 10 << 20,
		"csi_thin_pool_metadata_bytes": 8 << 20, "csi_thin_pool_metadata_used_bytes": 1 << 20,
		"csi_thin_pool_budget_bytes": 10 << 30, "csi_thin_pool_promised_bytes": 768 << 20,
		"csi_thin_pool_available_bytes": 10<<30 - 768<<20,
	}
	with := func(m map[string]float64, kv ...any) map[string]float64 {
		out := map[string]float64{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1].(float64)
		}
		return out
	}
	cases := []struct {
		name    string
		pool    *fakePool
		want    map[string]float64 // every csi_thin_ gauge gathered
		wantErr string             // in the gathering error; empty: none
	}{
		{
			name: "healthy, empty",
			pool: &fakePool{capacity: thinpool.Capacity{DataBytes: 1 << 30, BudgetBytes: 10 << 30, AvailableBytes: 10 << 30}},
			want: map[string]float64{
				"csi_thin_pool_healthy": 1, "csi_thin_volumes": 0, "csi_thin_snapshots": 0,
				"csi_thin_pool_data_bytes": 1 << 30, "csi_thin_pool_data_used_bytes": 0,
				"csi_thin_pool_metadata_bytes": 0, "csi_thin_pool_metadata_used_bytes": 0,
				"csi_thin_pool_budget_bytes": 10 << 30, "csi_thin_pool_promised_bytes": 0,
				"csi_thin_pool_available_bytes": 10 << 30,
			},
		},
		{
			name: "volumes and snapshots",
			pool: &fakePool{capacity: space, volumes: 2, snapshots: 1},
			want: with(full, "csi_thin_pool_healthy", 1.0, "csi_thin_volumes", 2.0, "csi_thin_snapshots", 1.0),
		},
		{
			name: "unhealthy but readable",
			pool: &fakePool{capacity: space, healthErr: thinpool.ErrUnhealthy, volumes: 1},
			want: with(full, "csi_thin_pool_healthy", 0.0, "csi_thin_volumes", 1.0, "csi_thin_snapshots", 0.0),
		},
		{
			name: "pool status unreadable",
			pool: &fakePool{healthErr: thinpool.ErrUnhealthy, capacityErr: errors.New("no such device"), volumes: 3},
			want: map[string]float64{"csi_thin_pool_healthy": 0, "csi_thin_volumes": 3, "csi_thin_snapshots": 0},
			// The capacity gauges are left out and the scrape says why.
			wantErr: "read the pool's capacity: no such device",
		},
		{
			name:    "database unreadable",
			pool:    &fakePool{capacity: space, countErr: errors.New("database closed")},
			want:    with(full, "csi_thin_pool_healthy", 1.0),
			wantErr: "count the volumes: database closed",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(&poolCollector{pool: c.pool})
			got, err := gather(t, reg)
			if c.wantErr == "" && err != nil {
				t.Fatalf("gather: %v", err)
			}
			if c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("gather error %v, want one saying %q", err, c.wantErr)
			}
			for name, v := range c.want {
				if g, ok := got[name]; !ok || g != v {
					t.Errorf("%s = %v (present %v), want %v", name, g, ok, v)
				}
			}
			for name := range got {
				if _, ok := c.want[name]; !ok {
					t.Errorf("%s gathered, not expected", name)
				}
			}
			// One status read for the capacity and the health, and one
			// count of each kind.
			if c.pool.statusReads != 1 || c.pool.counts != 2 {
				t.Errorf("a scrape read the pool status %d times and counted %d times, want 1 and 2", c.pool.statusReads, c.pool.counts)
			}
		})
	}
}

// csi_thin_pool_mode is 1 for the pool's state alone: a full pool is told
// from a failed one.
func TestPoolModeGauge(t *testing.T) {
	cases := []struct {
		health error
		want   string
	}{
		{nil, thinpool.StateReadWrite},
		{fmt.Errorf("create: %w", thinpool.ErrNoSpace), thinpool.StateOutOfDataSpace},
		{thinpool.ErrUnhealthy, thinpool.StateUnreadable},
	}
	for _, c := range cases {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(&poolCollector{pool: &fakePool{healthErr: c.health}})
		mfs, _ := reg.Gather()
		got := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != "csi_thin_pool_mode" {
				continue
			}
			for _, m := range mf.GetMetric() {
				got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
			}
		}
		if len(got) != len(thinpool.PoolStates) {
			t.Errorf("health %v: modes %v, want one for each of %v", c.health, got, thinpool.PoolStates)
		}
		for mode, v := range got {
			if want := mode == c.want; (v == 1) != want || (v != 0 && v != 1) {
				t.Errorf("health %v: csi_thin_pool_mode{mode=%q} = %v, want 1 for %s alone", c.health, mode, v, c.want)
			}
		}
	}
}

// fakeServices answer with the error each test case sets, and
// NodeStageVolume blocks until released, to have a call in flight.
type fakeServices struct {
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer
	err     error
	entered chan struct{}
	release chan struct{}
}

func (f *fakeServices) CreateVolume(context.Context, *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{VolumeId: "vol-1"}}, nil
}

func (f *fakeServices) DeleteVolume(context.Context, *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	return &csi.DeleteVolumeResponse{}, f.err
}

func (f *fakeServices) NodeStageVolume(context.Context, *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	close(f.entered)
	<-f.release
	return &csi.NodeStageVolumeResponse{}, nil
}

// serveChain serves the fake services through the driver's interceptor
// chain, with metrics, over an in-memory connection.
func serveChain(t *testing.T, f *fakeServices) (*Driver, *grpc.ClientConn) {
	t.Helper()
	d := &Driver{metrics: newMetrics(&fakePool{})}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(d.interceptors()...))
	csi.RegisterIdentityServer(srv, &identity{})
	csi.RegisterControllerServer(srv, f)
	csi.RegisterNodeServer(srv, f)
	lis := bufconn.Listen(1 << 20)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return d, conn
}

func TestMetricsInterceptorCountsFinalCodes(t *testing.T) {
	f := &fakeServices{entered: make(chan struct{}), release: make(chan struct{})}
	d, conn := serveChain(t, f)
	ctrl, node, ident := csi.NewControllerClient(conn), csi.NewNodeClient(conn), csi.NewIdentityClient(conn)
	ctx := context.Background()

	cases := []struct {
		name string
		err  error // what the service returns
		call func() error
		want codes.Code
	}{
		{"a success", nil, func() error {
			_, err := ident.GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
			return err
		}, codes.OK},
		{"a create", nil, func() error {
			_, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "a"})
			return err
		}, codes.OK},
		{"an engine error, mapped", fmt.Errorf("create: %w", thinpool.ErrOverBudget), func() error {
			_, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "b"})
			return err
		}, codes.ResourceExhausted},
		{"another engine error", fmt.Errorf("delete: %w", thinpool.ErrInUse), func() error {
			_, err := ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "vol-1"})
			return err
		}, codes.FailedPrecondition},
		{"a service's own status", status.Error(codes.InvalidArgument, "volume_id is missing"), func() error {
			_, err := ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{})
			return err
		}, codes.InvalidArgument},
		{"an unimplemented method", nil, func() error {
			_, err := ctrl.ListSnapshots(ctx, &csi.ListSnapshotsRequest{})
			return err
		}, codes.Unimplemented},
	}
	for _, c := range cases {
		f.err = c.err
		if err := c.call(); status.Code(err) != c.want {
			t.Fatalf("%s: %v, want %v", c.name, err, c.want)
		}
	}

	// A call refused because another is in flight on its volume counts
	// as Aborted: the metrics sit outside the in-flight check.
	staged := make(chan error, 1)
	go func() {
		_, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "vol-1"})
		staged <- err
	}()
	<-f.entered
	if _, err := node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "vol-1"}); status.Code(err) != codes.Aborted {
		t.Fatalf("second stage: %v, want Aborted", err)
	}
	close(f.release)
	if err := <-staged; err != nil {
		t.Fatalf("first stage: %v", err)
	}

	want := []struct {
		method, code string
		n            float64
	}{
		{"GetPluginInfo", "OK", 1},
		{"CreateVolume", "OK", 1},
		{"CreateVolume", "ResourceExhausted", 1},
		{"DeleteVolume", "FailedPrecondition", 1},
		{"DeleteVolume", "InvalidArgument", 1},
		{"ListSnapshots", "Unimplemented", 1},
		{"NodeStageVolume", "OK", 1},
		{"NodeStageVolume", "Aborted", 1},
	}
	if n := testutil.CollectAndCount(d.metrics.calls); n != len(want) {
		t.Errorf("%d call series, want %d", n, len(want))
	}
	for _, w := range want {
		if got := testutil.ToFloat64(d.metrics.calls.WithLabelValues(w.method, w.code)); got != w.n {
			t.Errorf("csi_thin_calls_total{method=%q,grpc_code=%q} = %v, want %v", w.method, w.code, got, w.n)
		}
	}
	// Each call is timed too, under the same labels.
	mfs, err := d.metrics.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(mfs, func(mf *dto.MetricFamily) bool { return mf.GetName() == "csi_thin_call_duration_seconds" })
	if i < 0 {
		t.Fatal("no csi_thin_call_duration_seconds")
	}
	var observed uint64
	for _, m := range mfs[i].GetMetric() {
		observed += m.GetHistogram().GetSampleCount()
	}
	if len(mfs[i].GetMetric()) != len(want) || observed != uint64(len(want)) {
		t.Errorf("histogram has %d series and %d observations, want %d of each", len(mfs[i].GetMetric()), observed, len(want))
	}
}

func TestInterceptorChain(t *testing.T) {
	cases := []struct {
		name    string
		metrics bool
		want    int
	}{
		{"without metrics", false, 3},
		{"with metrics", true, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := &Driver{}
			if c.metrics {
				d.metrics = newMetrics(&fakePool{})
			}
			if got := len(d.interceptors()); got != c.want {
				t.Errorf("%d interceptors, want %d", got, c.want)
			}
		})
	}
}

// TestMetricsServer scrapes the metrics server over HTTP, and stops it.
func TestMetricsServer(t *testing.T) {
	pool := &fakePool{capacity: thinpool.Capacity{DataBytes: 1 << 30, PromisedBytes: 64 << 20}, volumes: 1}
	m := newMetrics(pool)
	m.calls.WithLabelValues("CreateVolume", "OK").Inc()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.serve(ctx, lis) }()

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + lis.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get(MetricsPath)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", MetricsPath, code, body)
	}
	for _, line := range []string{
		"csi_thin_pool_data_bytes 1.073741824e+09",
		"csi_thin_pool_promised_bytes 6.7108864e+07",
		"csi_thin_pool_healthy 1",
		"csi_thin_volumes 1",
		"csi_thin_snapshots 0",
		`csi_thin_calls_total{grpc_code="OK",method="CreateVolume"} 1`,
		`csi_thin_build_info{version="` + Version + `"} 1`,
		"# TYPE go_goroutines gauge",
		"# TYPE process_start_time_seconds gauge",
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("the scrape has no line %q", line)
		}
	}
	// A pool that cannot be read still gets a scrape, which says so.
	pool.healthErr, pool.capacityErr = thinpool.ErrUnhealthy, errors.New("gone")
	if code, body = get(MetricsPath); code != http.StatusOK || !strings.Contains(body, "csi_thin_pool_healthy 0\n") ||
		strings.Contains(body, "csi_thin_pool_data_bytes") {
		t.Errorf("scrape of an unreadable pool: %d\n%s", code, body)
	}
	if code, _ := get("/"); code != http.StatusNotFound {
		t.Errorf("GET /: %d, want 404", code)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the metrics server did not stop")
	}
	if _, err := http.Get("http://" + lis.Addr().String() + MetricsPath); err == nil {
		t.Error("the metrics server still answers after it stopped")
	}
}

// TestMetricNames lints every csi-thin metric name, help and type.
func TestMetricNames(t *testing.T) {
	m := newMetrics(&fakePool{volumes: 1})
	m.calls.WithLabelValues("CreateVolume", "OK").Inc()
	m.duration.WithLabelValues("CreateVolume", "OK").Observe(0.1)
	problems, err := testutil.GatherAndLint(m.registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "csi_thin_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
	mfs, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var ours []string
	for _, mf := range mfs {
		if name := mf.GetName(); strings.HasPrefix(name, "csi_thin_") {
			ours = append(ours, name)
		} else if !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("metric %s is not prefixed csi_thin_", name)
		}
	}
	want := []string{
		"csi_thin_build_info", "csi_thin_call_duration_seconds", "csi_thin_calls_total",
		"csi_thin_pool_available_bytes", "csi_thin_pool_budget_bytes", "csi_thin_pool_data_bytes",
		"csi_thin_pool_data_used_bytes", "csi_thin_pool_healthy", "csi_thin_pool_metadata_bytes",
		"csi_thin_pool_metadata_used_bytes", "csi_thin_pool_mode", "csi_thin_pool_promised_bytes", "csi_thin_snapshots", "csi_thin_volumes",
	}
	if !slices.Equal(ours, want) {
		t.Errorf("metrics\n%q\nwant\n%q", ours, want)
	}
}
