package flows

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/csi-thin/csi-thin/internal/faultdev"
)

// TestMetadataDeviceErrors fails the pool's metadata device under a
// running driver: the kernel takes the pool out of write mode, csi-thin
// reports it (storage and volume health, the healthy metric, a log line
// that says what to run), refuses every change and loses no record. After
// the README's repair (driver stopped, pool deactivated, thin_check and
// thin_repair, driver started) it serves again, with the records and the
// pool in agreement and the data synced before the fault intact.
func TestMetadataDeviceErrors(t *testing.T) {
	for _, c := range []struct {
		mode faultdev.Mode
		// rebuild: run thin_repair even where thin_check passes, so that
		// the whole procedure, with a fresh metadata device swapped in,
		// is proved to keep the records and the pool in agreement.
		rebuild bool
	}{
		{faultdev.Failing, true},
		{faultdev.FailingWrites, false},
	} {
		t.Run(c.mode.String(), func(t *testing.T) { testMetadataDeviceErrors(t, c.mode, c.rebuild) })
	}
}

func testMetadataDeviceErrors(t *testing.T, mode faultdev.Mode, rebuild bool) {
	p := startFaultPool(t, "csi-thin-flow-meta-"+mode.String(), 1<<30, 64*mib, "--metrics-address", metricsAddress)
	fs := mountCap("ext4")
	v := p.create("fs", 128*mib, fs, nil)
	dir := p.use(v, fs)
	writeFiles(t, dir, 0, 20)
	b := p.create("block", 16*mib, blockCap(), nil)
	bdev := p.use(b, blockCap())
	raw := bytes.Repeat([]byte("synced before the fault;"), 4*mib/24)
	writeSynced(t, bdev, raw)
	s := p.snapshot("snap", v.VolumeId)
	idle := p.create("idle", 16*mib, fs, nil)
	before := p.records(t)
	if g := gauge(t, scrape(t), "csi_thin_pool_healthy"); g != 1 {
		t.Fatalf("csi_thin_pool_healthy %v before the fault", g)
	}

	p.meta.MustSet(t, mode)
	injected := time.Now()
	// A change makes the pool commit its metadata, which fails.
	_, err := p.ctrl.CreateVolume(ctx(t), &csi.CreateVolumeRequest{
		Name: "during-fault", CapacityRange: &csi.CapacityRange{RequiredBytes: 16 * mib},
		VolumeCapabilities: []*csi.VolumeCapability{fs},
	})
	t.Logf("the create that met the fault: %v", err)
	st := p.waitUnhealthy(t, time.Minute)
	t.Logf("kernel: %s, %v after the metadata device went %s", describeStatus(st), time.Since(injected).Round(time.Millisecond), mode)

	// Reported.
	sh, err := p.node.NodeGetStorageHealth(ctx(t), &csi.NodeGetStorageHealthRequest{})
	if err != nil || len(sh.BackendHealth) != 1 || sh.BackendHealth[0].Status != csi.StorageHealthErrorType_STORAGE_DEGRADED {
		t.Fatalf("NodeGetStorageHealth on the failed pool: %v, %v", sh, err)
	}
	t.Logf("NodeGetStorageHealth: %s", sh.BackendHealth[0].Message)
	ch, err := p.ctrl.ControllerGetVolumeHealth(ctx(t), &csi.ControllerGetVolumeHealthRequest{VolumeId: v.VolumeId})
	if err != nil || len(ch.GetVolumeHealth().GetHealthStatuses()) == 0 {
		t.Fatalf("ControllerGetVolumeHealth on the failed pool: %v, %v", ch, err)
	}
	nh, err := p.node.NodeGetVolumeHealth(ctx(t), &csi.NodeGetVolumeHealthRequest{VolumeId: v.VolumeId})
	if err != nil || len(nh.GetVolumeHealth().GetHealthStatuses()) == 0 {
		t.Fatalf("NodeGetVolumeHealth on the failed pool: %v, %v", nh, err)
	}
	if g := gauge(t, scrape(t), "csi_thin_pool_healthy"); g != 0 {
		t.Fatalf("csi_thin_pool_healthy %v on the failed pool", g)
	}
	if log, run := p.driverLog(t), "`thin_check "+p.meta.Path+"`"; !strings.Contains(log, run) {
		t.Fatalf("the driver's log does not say to run %s:\n%s", run, log)
	}

	// Changes refused, records kept.
	_, err = p.ctrl.CreateVolume(ctx(t), &csi.CreateVolumeRequest{
		Name: "refused", CapacityRange: &csi.CapacityRange{RequiredBytes: 16 * mib},
		VolumeCapabilities: []*csi.VolumeCapability{fs},
	})
	refused(t, "CreateVolume", err)
	_, err = p.ctrl.CreateSnapshot(ctx(t), &csi.CreateSnapshotRequest{Name: "refused", SourceVolumeId: v.VolumeId})
	refused(t, "CreateSnapshot", err)
	_, err = p.ctrl.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: idle.VolumeId})
	refused(t, "DeleteVolume", err)
	_, err = p.ctrl.DeleteSnapshot(ctx(t), &csi.DeleteSnapshotRequest{SnapshotId: s.SnapshotId})
	refused(t, "DeleteSnapshot", err)
	_, err = p.node.NodeExpandVolume(ctx(t), &csi.NodeExpandVolumeRequest{
		VolumeId: v.VolumeId, VolumePath: dir, CapacityRange: &csi.CapacityRange{RequiredBytes: 256 * mib}, VolumeCapability: fs,
	})
	refused(t, "NodeExpandVolume", err)
	if after := p.records(t); !slices.Equal(after, before) {
		t.Fatalf("records on the failed pool %v, before the fault %v", after, before)
	}
	// The node lets go of its volumes, so that the pool can be repaired.
	p.release(v)
	p.release(b)

	// Repair, as the README says.
	p.stop(syscall.SIGTERM)
	p.takeDownPool(t)
	p.meta.MustSet(t, faultdev.Healthy)
	steps := repairMetadata(t, p.meta.Path, rebuild)
	t.Logf("repair: %s", strings.Join(steps, "; "))
	p.start()

	// Serves again, with nothing lost.
	if sh, err := p.node.NodeGetStorageHealth(ctx(t), &csi.NodeGetStorageHealthRequest{}); err != nil || len(sh.BackendHealth) != 0 {
		t.Fatalf("NodeGetStorageHealth after the repair: %v, %v", sh, err)
	}
	if g := gauge(t, scrape(t), "csi_thin_pool_healthy"); g != 1 {
		t.Fatalf("csi_thin_pool_healthy %v after the repair", g)
	}
	if after := p.records(t); !slices.Equal(after, before) {
		t.Fatalf("records after the repair %v, before the fault %v", after, before)
	}
	p.checkAgreement(t)
	checkFiles(t, p.use(v, fs), 0, 20, 21)
	checkDevice(t, p.use(b, blockCap()), raw)
	r := p.create("restored", 128*mib, fs, fromSnapshot(s.SnapshotId))
	checkFiles(t, p.use(r, fs), 0, 20, 21)
	for _, vol := range []*csi.Volume{v, b, r} {
		p.release(vol)
	}
	if _, err := p.ctrl.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: idle.VolumeId}); err != nil {
		t.Fatalf("delete after the repair: %v", err)
	}
	p.checkAgreement(t)
	t.Logf("faults injected 1, survived 1; records lost 0 of %d", len(before))
}

// writeSynced writes b at the start of a block device and syncs it.
func writeSynced(t *testing.T, dev string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteAt(b, 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if f != nil {
		f.Close()
	}
	if err != nil {
		t.Fatalf("write %s: %v", dev, err)
	}
}

// checkDevice fails unless a block device starts with want, read past the
// page cache.
func checkDevice(t *testing.T, dev string, want []byte) {
	t.Helper()
	got, err := readDirect(dev, len(want))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s does not read back what was synced (%v)", dev, err)
	}
}

func readDirect(dev string, n int) ([]byte, error) {
	f, err := os.OpenFile(dev, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// O_DIRECT wants an aligned buffer: take a page-aligned slice of a
	// larger one.
	const align = 4096
	size := (n + align - 1) / align * align
	buf := make([]byte, size+align)
	off := align - int(uintptrOf(buf)%align)
	if off == align {
		off = 0
	}
	b := buf[off : off+size]
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("read %s: %w", dev, err)
	}
	return b[:n], nil
}
