package flows

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// metricsAddress is where TestMetrics's driver serves metrics: a fixed
// port on the loopback interface of the kernel harness's guest.
const metricsAddress = "127.0.0.1:19809"

// scrape returns the driver's metrics: the value of each sample, by its
// line's name and labels as the text format writes them, as in
// csi_thin_calls_total{grpc_code="OK",method="CreateVolume"}.
func scrape(t *testing.T) map[string]float64 {
	t.Helper()
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + metricsAddress + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %s\n%s", resp.Status, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("scrape: bad line %q", line)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return out
}

// gauge is one sample of a scrape, failing the test when it is missing.
func gauge(t *testing.T, m map[string]float64, name string) float64 {
	t.Helper()
	v, ok := m[name]
	if !ok {
		t.Fatalf("the scrape has no %s", name)
	}
	return v
}

// TestMetrics scrapes a running driver's /metrics and checks the pool's
// gauges against what the flow did to the pool, and the call counts
// against the calls made.
func TestMetrics(t *testing.T) {
	d := startDriver(t, "csi-thin-flow-metrics", "--metrics-address", metricsAddress)
	c := mountCap("ext4")
	const poolBytes = 3 << 30 // startDriver's --pool-size

	start := scrape(t)
	for _, g := range []struct {
		name string
		want float64
	}{
		{"csi_thin_pool_healthy", 1},
		{"csi_thin_volumes", 0},
		{"csi_thin_snapshots", 0},
		{"csi_thin_pool_data_bytes", poolBytes},
		{"csi_thin_pool_budget_bytes", 10 * poolBytes}, // the default overprovision ratio
		{"csi_thin_pool_promised_bytes", 0},
		{"csi_thin_pool_available_bytes", 10 * poolBytes},
	} {
		if got := gauge(t, start, g.name); got != g.want {
			t.Errorf("on a fresh pool, %s = %v, want %v", g.name, got, g.want)
		}
	}
	if md := gauge(t, start, "csi_thin_pool_metadata_bytes"); md <= 0 || gauge(t, start, "csi_thin_pool_metadata_used_bytes") > md {
		t.Errorf("metadata: %v of %v bytes used", gauge(t, start, "csi_thin_pool_metadata_used_bytes"), md)
	}

	// Each step changes the gauges by what it promises or writes.
	v := d.create("m", 256*mib, c, nil)
	afterCreate := scrape(t)
	s := d.snapshot("ms", v.VolumeId)
	afterSnapshot := scrape(t)
	steps := []struct {
		name           string
		before, after  map[string]float64
		promised       float64 // growth of csi_thin_pool_promised_bytes
		volumes, snaps float64
	}{
		{"create a volume", start, afterCreate, float64(v.CapacityBytes), 1, 0},
		{"snapshot it", afterCreate, afterSnapshot, float64(s.SizeBytes), 1, 1},
	}
	for _, st := range steps {
		grew := gauge(t, st.after, "csi_thin_pool_promised_bytes") - gauge(t, st.before, "csi_thin_pool_promised_bytes")
		if grew != st.promised {
			t.Errorf("%s: promised bytes grew by %v, want %v", st.name, grew, st.promised)
		}
		shrank := gauge(t, st.before, "csi_thin_pool_available_bytes") - gauge(t, st.after, "csi_thin_pool_available_bytes")
		if shrank != st.promised {
			t.Errorf("%s: available bytes shrank by %v, want %v", st.name, shrank, st.promised)
		}
		if got := gauge(t, st.after, "csi_thin_volumes"); got != st.volumes {
			t.Errorf("%s: %v volumes, want %v", st.name, got, st.volumes)
		}
		if got := gauge(t, st.after, "csi_thin_snapshots"); got != st.snaps {
			t.Errorf("%s: %v snapshots, want %v", st.name, got, st.snaps)
		}
	}
	if v.CapacityBytes != 256*mib || s.SizeBytes != v.CapacityBytes {
		t.Errorf("volume %d bytes, snapshot %d bytes: want 256 MiB each", v.CapacityBytes, s.SizeBytes)
	}

	// GetCapacity and the gauge agree.
	capResp, err := d.ctrl.GetCapacity(ctx(t), &csi.GetCapacityRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := gauge(t, scrape(t), "csi_thin_pool_available_bytes"); float64(capResp.AvailableCapacity) != got {
		t.Errorf("GetCapacity says %d bytes available, the gauge %v", capResp.AvailableCapacity, got)
	}

	// Writes show in the data used; a snapshot alone wrote nothing.
	vt := d.use(v, c)
	writeFiles(t, vt, 0, 20)
	afterWrite := scrape(t)
	if used, was := gauge(t, afterWrite, "csi_thin_pool_data_used_bytes"), gauge(t, afterSnapshot, "csi_thin_pool_data_used_bytes"); used <= was {
		t.Errorf("data used %v after writing, %v before", used, was)
	}

	// A create that conflicts is counted under its code.
	_, err = d.ctrl.CreateVolume(ctx(t), &csi.CreateVolumeRequest{
		Name: "m", CapacityRange: &csi.CapacityRange{RequiredBytes: 512 * mib}, VolumeCapabilities: []*csi.VolumeCapability{c},
	})
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("create m again, larger: %v, want AlreadyExists", err)
	}

	d.release(v)
	if _, err := d.ctrl.DeleteSnapshot(ctx(t), &csi.DeleteSnapshotRequest{SnapshotId: s.SnapshotId}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ctrl.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: v.VolumeId}); err != nil {
		t.Fatal(err)
	}
	end := scrape(t)
	for _, g := range []struct {
		name string
		want float64
	}{
		{"csi_thin_pool_promised_bytes", 0},
		{"csi_thin_pool_available_bytes", 10 * poolBytes},
		{"csi_thin_volumes", 0},
		{"csi_thin_snapshots", 0},
		{"csi_thin_pool_healthy", 1},
		{`csi_thin_calls_total{grpc_code="OK",method="CreateVolume"}`, 1},
		{`csi_thin_calls_total{grpc_code="AlreadyExists",method="CreateVolume"}`, 1},
		{`csi_thin_calls_total{grpc_code="OK",method="CreateSnapshot"}`, 1},
		{`csi_thin_calls_total{grpc_code="OK",method="NodeStageVolume"}`, 1},
		{`csi_thin_calls_total{grpc_code="OK",method="NodePublishVolume"}`, 1},
		{`csi_thin_calls_total{grpc_code="OK",method="GetCapacity"}`, 1},
		{`csi_thin_calls_total{grpc_code="OK",method="DeleteVolume"}`, 1},
		{`csi_thin_call_duration_seconds_count{grpc_code="OK",method="NodeStageVolume"}`, 1},
		{`csi_thin_call_duration_seconds_bucket{grpc_code="OK",method="NodeStageVolume",le="+Inf"}`, 1},
	} {
		if got := gauge(t, end, g.name); got != g.want {
			t.Errorf("at the end, %s = %v, want %v", g.name, got, g.want)
		}
	}
	// startDriver waits for a Probe that succeeds: at least one.
	if got := gauge(t, end, `csi_thin_calls_total{grpc_code="OK",method="Probe"}`); got < 1 {
		t.Errorf("%v probes counted", got)
	}
	if got := gauge(t, end, `csi_thin_call_duration_seconds_sum{grpc_code="OK",method="NodeStageVolume"}`); got <= 0 {
		t.Errorf("NodeStageVolume took %v s", got)
	}

	// The metrics stop with the driver.
	d.stop(syscall.SIGTERM)
	if _, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + metricsAddress + "/metrics"); err == nil {
		t.Error("metrics still served after the driver stopped")
	}
}
