package flows

import (
	"errors"
	"os"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// writeDirect writes n MiB of pattern seed to a block device with O_DIRECT
// and O_DSYNC, each on the device when its write returns, and says how
// many MiB were written before the first error.
func writeDirect(t *testing.T, path string, n int, seed byte) (int, error) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT|unix.O_DSYNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, mib, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE) // aligned
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	for i := range n {
		for j := range buf {
			buf[j] = seed + byte(i) + byte(j>>12)
		}
		if _, err := f.Write(buf); err != nil {
			return i, err
		}
	}
	return n, nil
}

// On a 64 MiB pool filled through a block volume, the real binary stays
// live (Probe OK, also after a restart on the full pool), reports the pool
// full (storage and volume health, metrics), refuses creates with ResourceExhausted
// and takes the deletes of a snapshot and a volume, after which the pool
// is healthy and creates work again.
func TestFullPoolFlow(t *testing.T) {
	d := startDriver(t, "csi-thin-flow-full", "--pool-size", "64Mi", "--metrics-address", metricsAddress)
	c := blockCap()
	freeable := d.create("freeable", 32*mib, c, nil)
	if n, err := writeDirect(t, d.use(freeable, c), 24, 1); err != nil {
		t.Fatalf("write 24 MiB to a volume of an empty pool: %d MiB, %v", n, err)
	}
	d.release(freeable)
	snap := d.snapshot("freeable-snap", freeable.VolumeId)

	filler := d.create("filler", 128*mib, c, nil)
	ft := d.use(filler, c)
	n, err := writeDirect(t, ft, 100, 7)
	if err == nil {
		t.Fatalf("100 MiB written to a 64 MiB pool")
	}
	if !errors.Is(err, unix.ENOSPC) && !errors.Is(err, unix.EIO) {
		t.Fatalf("a write past the end of the pool failed with %v, want ENOSPC or EIO", err)
	}
	t.Logf("the pool filled after %d MiB: %v", n, err)

	checkFull := func() {
		t.Helper()
		resp, err := d.ident.Probe(ctx(t), &csi.ProbeRequest{})
		if err != nil || !resp.GetReady().GetValue() {
			t.Fatalf("Probe on a full pool: %v, %v; want ready", resp, err)
		}
		h, err := d.node.NodeGetStorageHealth(ctx(t), &csi.NodeGetStorageHealthRequest{})
		if err != nil || len(h.GetBackendHealth()) != 1 || h.GetBackendHealth()[0].GetReason() != "PoolFull" {
			t.Fatalf("storage health of a full pool: %v, %v; want one PoolFull entry", h, err)
		}
		vh, err := d.ctrl.ControllerGetVolumeHealth(ctx(t), &csi.ControllerGetVolumeHealthRequest{VolumeId: filler.VolumeId})
		if e := vh.GetVolumeHealth().GetHealthStatuses(); err != nil || len(e) != 1 ||
			e[0].GetStatus() != csi.VolumeHealthErrorType_DEGRADED || e[0].GetReason() != "PoolFull" {
			t.Fatalf("controller health of a volume on a full pool: %v, %v; want one DEGRADED PoolFull entry", vh, err)
		}
		nh, err := d.node.NodeGetVolumeHealth(ctx(t), &csi.NodeGetVolumeHealthRequest{VolumeId: filler.VolumeId})
		if e := nh.GetVolumeHealth().GetHealthStatuses(); err != nil || len(e) != 1 ||
			e[0].GetStatus() != csi.VolumeHealthErrorType_DEGRADED || e[0].GetReason() != "PoolFull" {
			t.Fatalf("node health of a volume on a full pool: %v, %v; want one DEGRADED PoolFull entry", nh, err)
		}
		m := scrape(t)
		if gauge(t, m, "csi_thin_pool_healthy") != 0 || gauge(t, m, `csi_thin_pool_mode{mode="out_of_data_space"}`) != 1 ||
			gauge(t, m, `csi_thin_pool_mode{mode="rw"}`) != 0 || gauge(t, m, `csi_thin_pool_mode{mode="fail"}`) != 0 {
			t.Fatalf("metrics of a full pool: healthy %v, mode out_of_data_space %v, rw %v, fail %v; want 0, 1, 0, 0",
				m["csi_thin_pool_healthy"], m[`csi_thin_pool_mode{mode="out_of_data_space"}`], m[`csi_thin_pool_mode{mode="rw"}`], m[`csi_thin_pool_mode{mode="fail"}`])
		}
		_, err = d.ctrl.CreateVolume(ctx(t), &csi.CreateVolumeRequest{
			Name: "refused", CapacityRange: &csi.CapacityRange{RequiredBytes: mib}, VolumeCapabilities: []*csi.VolumeCapability{c},
		})
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("CreateVolume on a full pool: %v, want ResourceExhausted", err)
		}
		_, err = d.ctrl.CreateSnapshot(ctx(t), &csi.CreateSnapshotRequest{Name: "refused", SourceVolumeId: filler.VolumeId})
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("CreateSnapshot on a full pool: %v, want ResourceExhausted", err)
		}
	}
	checkFull()
	d.restart() // waits for a ready Probe
	checkFull()

	if _, err := d.ctrl.DeleteSnapshot(ctx(t), &csi.DeleteSnapshotRequest{SnapshotId: snap.SnapshotId}); err != nil {
		t.Fatalf("DeleteSnapshot on a full pool: %v", err)
	}
	if _, err := d.ctrl.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: freeable.VolumeId}); err != nil {
		t.Fatalf("DeleteVolume on a full pool: %v", err)
	}
	h, err := d.node.NodeGetStorageHealth(ctx(t), &csi.NodeGetStorageHealthRequest{})
	if err != nil || len(h.GetBackendHealth()) != 0 {
		t.Fatalf("storage health after the deletes: %v, %v; want healthy", h, err)
	}
	if nh, err := d.node.NodeGetVolumeHealth(ctx(t), &csi.NodeGetVolumeHealthRequest{VolumeId: filler.VolumeId}); err != nil ||
		len(nh.GetVolumeHealth().GetHealthStatuses()) != 0 {
		t.Fatalf("node health of the volume after the deletes: %v, %v; want healthy", nh, err)
	}
	if m := scrape(t); gauge(t, m, `csi_thin_pool_mode{mode="rw"}`) != 1 || gauge(t, m, "csi_thin_pool_healthy") != 1 {
		t.Fatalf("metrics after the deletes: mode rw %v, healthy %v; want 1, 1", m[`csi_thin_pool_mode{mode="rw"}`], m["csi_thin_pool_healthy"])
	}
	after := d.create("after", 4*mib, c, nil)

	// What the filler wrote before the pool filled reads back.
	got := make([]byte, mib)
	f, err := os.Open(ft)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := f.ReadAt(got, int64(i)*mib); err != nil {
			t.Fatal(err)
		}
		for j := range got {
			if got[j] != 7+byte(i)+byte(j>>12) {
				t.Fatalf("MiB %d of the filler, written before the pool filled, does not read back", i)
			}
		}
	}
	f.Close()
	d.release(filler)
	for _, v := range []*csi.Volume{filler, after} {
		if _, err := d.ctrl.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: v.VolumeId}); err != nil {
			t.Fatalf("delete %s: %v", v.VolumeId, err)
		}
	}
}
