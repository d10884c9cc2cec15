package flows

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/csi-thin/csi-thin/internal/faultdev"
	"github.com/csi-thin/csi-thin/internal/testpool"
	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// faultPool is a driver whose pool is on fault devices: a data device and
// a metadata device, each over a loop device on a sparse file.
type faultPool struct {
	*driverProc
	data, meta *faultdev.Device
	ctl        *dm.Control
}

func startFaultPool(t *testing.T, pool string, dataBytes, metaBytes int64, args ...string) *faultPool {
	t.Helper()
	// Registered before the driver, so removed after its pool.
	data := faultdev.OnSparseFile(t, "fault-"+pool+"-data", dataBytes)
	meta := faultdev.OnSparseFile(t, "fault-"+pool+"-meta", metaBytes)
	ctl, err := dm.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	t.Cleanup(func() {
		// Whatever the test did, leave the devices healthy so that the
		// pool on them can be torn down.
		for _, d := range []*faultdev.Device{data, meta} {
			if !d.IsHealthy() {
				if err := d.Set(faultdev.Healthy); err != nil {
					t.Errorf("%v", err)
				}
			}
		}
	})
	d := startDriver(t, pool, append([]string{"--data-device", data.Path, "--metadata-device", meta.Path}, args...)...)
	return &faultPool{driverProc: d, data: data, meta: meta, ctl: ctl}
}

// status is the pool's status as the kernel reports it.
func (p *faultPool) status(t *testing.T) dm.PoolStatus {
	t.Helper()
	st, err := p.ctl.PoolStatus(p.pool)
	if err != nil {
		t.Fatalf("pool status: %v", err)
	}
	return st
}

func describeStatus(st dm.PoolStatus) string {
	if st.Fail {
		return "Fail"
	}
	if st.Error {
		return "Error"
	}
	s := fmt.Sprintf("mode %s, transaction %d, data %d/%d, metadata %d/%d", st.Mode, st.TransactionID,
		st.DataUsed, st.DataTotal, st.MetadataUsed, st.MetadataTotal)
	if st.NeedsCheck {
		s += ", needs_check"
	}
	return s
}

// waitUnhealthy waits on the pool's dm events until the kernel reports it
// read-only, needs_check or failed, and returns that status.
func (p *faultPool) waitUnhealthy(t *testing.T, within time.Duration) dm.PoolStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		info, err := p.ctl.Info(p.pool)
		if err != nil {
			t.Fatal(err)
		}
		st := p.status(t)
		if st.Fail || st.Error || st.NeedsCheck || st.Mode == dm.PoolModeReadOnly {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pool stayed healthy (%s) for %v after its metadata device failed", describeStatus(st), within)
		}
		// The kernel raises an event when the pool changes mode; a
		// commit that fails is at most a second (the commit period) away.
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = p.ctl.WaitEvent(p.pool, info.EventNr)
		}()
		select {
		case <-done:
		case <-time.After(time.Second):
		}
	}
}

// refused checks that a change was refused with a code that says the pool
// cannot take it now (not Internal, not OK) and a message naming the pool.
func refused(t *testing.T, what string, err error) {
	t.Helper()
	s, _ := status.FromError(err)
	switch {
	case err == nil:
		t.Fatalf("%s on an unhealthy pool succeeded", what)
	case s.Code() != codes.Unavailable && s.Code() != codes.FailedPrecondition:
		t.Fatalf("%s on an unhealthy pool: code %s, want Unavailable or FailedPrecondition: %v", what, s.Code(), err)
	case !strings.Contains(s.Message(), "pool"):
		t.Fatalf("%s on an unhealthy pool: the message does not say it is the pool: %v", what, err)
	}
	t.Logf("%s refused: %s: %s", what, s.Code(), s.Message())
}

// records lists the ids of every volume and snapshot through CSI, sorted.
func (p *faultPool) records(t *testing.T) []string {
	t.Helper()
	var ids []string
	vs, err := p.ctrl.ListVolumes(ctx(t), &csi.ListVolumesRequest{})
	if err != nil {
		t.Fatalf("list volumes: %v", err)
	}
	for _, e := range vs.Entries {
		ids = append(ids, e.Volume.VolumeId)
	}
	ss, err := p.ctrl.ListSnapshots(ctx(t), &csi.ListSnapshotsRequest{})
	if err != nil {
		t.Fatalf("list snapshots: %v", err)
	}
	for _, e := range ss.Entries {
		ids = append(ids, e.Snapshot.SnapshotId)
	}
	sort.Strings(ids)
	return ids
}

// checkAgreement stops the driver, opens the engine on its state
// directory and checks that the thin ids the records name are exactly
// those thin_ls finds in the pool's metadata, then starts the driver
// again.
func (p *faultPool) checkAgreement(t *testing.T) {
	t.Helper()
	p.stop(syscall.SIGTERM)
	e, err := thinpool.Open(thinpool.Config{
		StateDir: filepath.Join(p.dir, "state"), PoolName: p.pool,
		DataDevice: p.data.Path, MetadataDevice: p.meta.Path, ErrorIfNoSpace: true,
	})
	if err != nil {
		t.Fatalf("open the engine on the driver's state directory: %v", err)
	}
	want := map[uint32]bool{}
	for _, k := range []thinpool.Kind{thinpool.KindVolume, thinpool.KindSnapshot} {
		vs, _, err := e.List(k, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			want[v.ThinID] = true
		}
	}
	e.Close()
	have, err := testpool.ThinIDs(p.pool, p.meta.Path)
	if err != nil {
		t.Fatalf("thin ids in the pool: %v", err)
	}
	if fmt.Sprint(have) != fmt.Sprint(want) {
		t.Fatalf("the pool has thin devices %v, the records name %v", have, want)
	}
	t.Logf("records and pool agree on %d thin devices", len(want))
	p.start()
}

// takeDownPool removes the pool's volume devices and the pool, as the
// repair procedure does once the driver is stopped.
func (p *faultPool) takeDownPool(t *testing.T) {
	t.Helper()
	devs, err := p.ctl.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if strings.HasPrefix(d.Name, p.pool+"-vol-") || strings.HasPrefix(d.Name, p.pool+"-snap-") {
			if err := p.ctl.Remove(d.Name, dm.RemoveOptions{}); err != nil {
				t.Fatalf("remove %s: %v", d.Name, err)
			}
		}
	}
	if err := p.ctl.Remove(p.pool, dm.RemoveOptions{}); err != nil && !errors.Is(err, dm.ErrNotFound) {
		t.Fatalf("remove the pool: %v", err)
	}
}

// repairMetadata is the troubleshooting procedure of the README on a
// deactivated pool's metadata device: thin_check, clearing the needs_check
// flag the kernel set when it passes; if it fails (or always, with
// rebuild), thin_repair into a fresh device of the same size, thin_check
// that, and copy it back over the metadata device. It returns the steps it
// took.
func repairMetadata(t *testing.T, meta string, rebuild bool) []string {
	t.Helper()
	out, err := exec.Command("thin_check", "--clear-needs-check-flag", meta).CombinedOutput()
	steps := []string{fmt.Sprintf("thin_check --clear-needs-check-flag: %v", errOr(err, "passed"))}
	if err == nil && !rebuild {
		return steps
	}
	t.Logf("thin_check %s: %v\n%s", meta, err, out)
	size, err := dm.BlockDeviceSize(meta)
	if err != nil {
		t.Fatal(err)
	}
	// thin_repair writes with O_DIRECT, which a file on tmpfs refuses: the
	// fresh device is a loop device over a sparse file.
	file := filepath.Join(t.TempDir(), "repaired-metadata.img")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, int64(size)); err != nil {
		t.Fatal(err)
	}
	fresh, err := dm.AttachLoop(file, dm.LoopOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Detach()
	if out, err := exec.Command("thin_repair", "-i", meta, "-o", fresh.Path).CombinedOutput(); err != nil {
		t.Fatalf("thin_repair: %v\n%s", err, out)
	}
	if out, err := exec.Command("thin_check", fresh.Path).CombinedOutput(); err != nil {
		t.Fatalf("thin_check of the repaired metadata: %v\n%s", err, out)
	}
	if out, err := exec.Command("dd", "if="+fresh.Path, "of="+meta, "bs=1M", "oflag=direct", "conv=fsync").CombinedOutput(); err != nil {
		t.Fatalf("copy the repaired metadata back: %v\n%s", err, out)
	}
	return append(steps, "thin_repair -i META -o FRESH: done", "thin_check FRESH: passed", "dd if=FRESH of=META: done")
}

func errOr(err error, ok string) string {
	if err != nil {
		return err.Error()
	}
	return ok
}

// driverLog is everything the driver has logged since the test began.
func (p *faultPool) driverLog(t *testing.T) string {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(p.dir, "driver-*.log"))
	var b strings.Builder
	for _, l := range logs {
		out, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(out)
	}
	return b.String()
}

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }
