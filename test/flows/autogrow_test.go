package flows

import (
	"bytes"
	"os"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

// TestAutoGrowFlow: the binary started with --pool-max-size grows its
// 128 MiB pool while a pod's block volume is written past the low water
// mark, says so in its metrics, and stops cleanly (SIGTERM) with the
// pool's event waiter running. The writer syncs every syncEvery bytes, so
// that what it has in flight stays below the pool's lead over it (half
// the pool here): a write-back burst larger than the free space at a
// grow fills the pool under the reload, which then waits for the
// kernel's no_space_timeout and the writes fail, as the README says.
func TestAutoGrowFlow(t *testing.T) {
	d := startDriver(t, "csi-thin-flow-autogrow", "--pool-size", "128Mi", "--pool-max-size", "512Mi", "--metrics-address", metricsAddress)
	c := blockCap()
	v := d.create("g", 256*mib, c, nil)
	dev := d.use(v, c)
	data := bytes.Repeat([]byte("auto-grown block data;"), 192*mib/22)
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	const syncEvery = 8 * mib
	for off := 0; off < len(data); off += syncEvery {
		if _, err := f.Write(data[off:min(off+syncEvery, len(data))]); err != nil {
			t.Fatalf("write 192 MiB into a volume on a 128 MiB pool that may grow, at MiB %d: %v", off/mib, err)
		}
		if err := f.Sync(); err != nil {
			t.Fatalf("sync at MiB %d: %v", off/mib, err)
		}
	}
	f.Close()
	m := scrape(t)
	grown := gauge(t, m, "csi_thin_pool_data_bytes")
	if grown <= 128*mib || grown > 512*mib {
		t.Errorf("the pool has %v data bytes after 192 MiB were written: want more than 128 MiB, at most 512 MiB", grown)
	}
	if n := gauge(t, m, `csi_thin_pool_grows_total{reason="auto"}`); n < 1 {
		t.Errorf("csi_thin_pool_grows_total{reason=\"auto\"} = %v", n)
	}
	t.Logf("pool grew to %v MiB in %v auto-grows; event to grown pool %v s at most", grown/mib,
		gauge(t, m, `csi_thin_pool_grows_total{reason="auto"}`), gauge(t, m, `csi_thin_pool_grow_latency_seconds{which="max"}`))

	d.release(v)
	d.restart()
	got := make([]byte, len(data))
	dev = d.use(v, c)
	f, err = os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.ReadAt(got, 0)
	f.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the volume does not read back after the restart (%v)", err)
	}
	d.release(v)
	if _, err := d.ctrl.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: v.VolumeId}); err != nil {
		t.Fatal(err)
	}
}
