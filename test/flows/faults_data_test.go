package flows

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/csi-thin/csi-thin/internal/faultdev"
	"github.com/csi-thin/csi-thin/internal/kerneltest"
)

// callDeadline is the deadline of each CSI call made while the data device
// is slow or failing: the external-provisioner's default timeout is 10 s
// and kubelet's are minutes, so a call that needs longer than this hangs as
// far as a user can tell.
const callDeadline = 30 * time.Second

// timedCall is one CSI call made during a fault: how long it took and what
// it answered.
type timedCall struct {
	name string
	took time.Duration
	err  error
}

func (c timedCall) String() string {
	s := fmt.Sprintf("%s %v %s", c.name, c.took.Round(time.Millisecond), status.Code(c.err))
	if c.err != nil {
		s += fmt.Sprintf(" (%s)", status.Convert(c.err).Message())
	}
	return s
}

// calls makes the CSI calls a cluster makes of a node, each with
// callDeadline: provisioning, a snapshot of a volume being written, health
// and stats, deletes. It fails the test on a call that outlives its
// deadline or answers Internal without saying what is wrong, and returns
// the timings.
func (p *faultPool) calls(t *testing.T, tag string, busy *csi.Volume, busyPath string) []timedCall {
	t.Helper()
	var out []timedCall
	call := func(name string, f func(ctx context.Context) error) error {
		c, cancel := context.WithTimeout(context.Background(), callDeadline)
		defer cancel()
		start := time.Now()
		err := f(c)
		tc := timedCall{name: name, took: time.Since(start), err: err}
		out = append(out, tc)
		if tc.took > callDeadline+5*time.Second {
			t.Fatalf("%s took %v, past its %v deadline", name, tc.took, callDeadline)
		}
		if s, _ := status.FromError(err); err != nil && s.Code() == codes.Internal && s.Message() == "" {
			t.Fatalf("%s failed with Internal and no message", name)
		}
		return err
	}
	var vol *csi.Volume
	_ = call("CreateVolume", func(c context.Context) error {
		r, err := p.ctrl.CreateVolume(c, &csi.CreateVolumeRequest{
			Name: "during-" + tag, CapacityRange: &csi.CapacityRange{RequiredBytes: 16 * mib},
			VolumeCapabilities: []*csi.VolumeCapability{mountCap("ext4")},
		})
		vol = r.GetVolume()
		return err
	})
	var snap *csi.Snapshot
	_ = call("CreateSnapshot", func(c context.Context) error {
		r, err := p.ctrl.CreateSnapshot(c, &csi.CreateSnapshotRequest{Name: "during-" + tag, SourceVolumeId: busy.VolumeId})
		snap = r.GetSnapshot()
		return err
	})
	_ = call("NodeGetVolumeStats", func(c context.Context) error {
		_, err := p.node.NodeGetVolumeStats(c, &csi.NodeGetVolumeStatsRequest{VolumeId: busy.VolumeId, VolumePath: busyPath})
		return err
	})
	_ = call("NodeGetVolumeHealth", func(c context.Context) error {
		_, err := p.node.NodeGetVolumeHealth(c, &csi.NodeGetVolumeHealthRequest{VolumeId: busy.VolumeId})
		return err
	})
	_ = call("NodeGetStorageHealth", func(c context.Context) error {
		_, err := p.node.NodeGetStorageHealth(c, &csi.NodeGetStorageHealthRequest{})
		return err
	})
	_ = call("GetCapacity", func(c context.Context) error {
		_, err := p.ctrl.GetCapacity(c, &csi.GetCapacityRequest{})
		return err
	})
	if snap != nil {
		_ = call("DeleteSnapshot", func(c context.Context) error {
			_, err := p.ctrl.DeleteSnapshot(c, &csi.DeleteSnapshotRequest{SnapshotId: snap.SnapshotId})
			return err
		})
	}
	if vol != nil {
		_ = call("DeleteVolume", func(c context.Context) error {
			_, err := p.ctrl.DeleteVolume(c, &csi.DeleteVolumeRequest{VolumeId: vol.VolumeId})
			return err
		})
	}
	return out
}

// blockWriter writes numbered 64 KiB chunks one after another to a block
// device, each synced (fdatasync) before the count moves on, until the
// device is full, stopped, or a write fails.
type blockWriter struct {
	mu     sync.Mutex
	synced int
	err    error
	stop   chan struct{}
	done   chan struct{}
}

const chunk = 64 << 10

func chunkData(i int) []byte { return kerneltest.Pattern(byte(i*7+1), chunk) }

func startBlockWriter(t *testing.T, dev string) *blockWriter {
	w := &blockWriter{stop: make(chan struct{}), done: make(chan struct{})}
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Seek(0, 2)
	n := int(fi / chunk)
	go func() {
		defer close(w.done)
		defer f.Close()
		for i := 0; i < n; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			_, err := f.WriteAt(chunkData(i), int64(i)*chunk)
			if err == nil {
				err = syscall.Fdatasync(int(f.Fd()))
			}
			w.mu.Lock()
			if err != nil {
				w.err = err
			} else {
				w.synced = i + 1
			}
			w.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { w.halt() })
	return w
}

func (w *blockWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.synced
}

func (w *blockWriter) halt() (int, error) {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	return w.synced, w.err
}

// checkChunks fails unless the first n chunks of dev read back as written,
// past the page cache.
func checkChunks(t *testing.T, dev string, n int) {
	t.Helper()
	got, err := readDirect(dev, n*chunk)
	if err != nil {
		t.Fatalf("read back %d chunks of %s: %v", n, dev, err)
	}
	for i := 0; i < n; i++ {
		if !bytes.Equal(got[i*chunk:(i+1)*chunk], chunkData(i)) {
			t.Fatalf("chunk %d of %d synced chunks of %s does not read back", i, n, dev)
		}
	}
}

// writers is a mounted ext4 volume and a raw block volume, each with a
// writer that syncs what it writes.
type writers struct {
	fs, blk         *csi.Volume
	fsPath, blkPath string
	files           *kerneltest.FileWriter
	chunks          *blockWriter
}

func (p *faultPool) startWriters(t *testing.T) *writers {
	t.Helper()
	w := &writers{}
	w.fs = p.create("fs", 256*mib, mountCap("ext4"), nil)
	w.fsPath = p.use(w.fs, mountCap("ext4"))
	w.blk = p.create("block", 64*mib, blockCap(), nil)
	w.blkPath = p.use(w.blk, blockCap())
	w.files = kerneltest.StartFileWriter(t, w.fsPath)
	w.chunks = startBlockWriter(t, w.blkPath)
	w.files.WaitFor(t, 20)
	return w
}

// TestDataDeviceDelays slows the pool's data device under running writers:
// every CSI call answers within its deadline, and the writers go on.
func TestDataDeviceDelays(t *testing.T) {
	p := startFaultPool(t, "csi-thin-flow-data-delay", 1<<30, 64*mib)
	w := p.startWriters(t)
	for _, d := range []time.Duration{100 * time.Millisecond, 1 * time.Second} {
		start := time.Now()
		p.data.MustSet(t, faultdev.Delayed(d))
		t.Logf("switching the data device to %v took %v", d, time.Since(start).Round(time.Millisecond))
		files, chunks := w.files.Done(), w.chunks.count()
		tag := fmt.Sprintf("delay-%dms", d.Milliseconds())
		began := time.Now()
		cs := p.calls(t, tag, w.fs, w.fsPath)
		t.Logf("data device delayed %v: %v", d, cs)
		snapLate := false
		for _, c := range cs {
			switch {
			case c.err == nil:
			case c.name == "CreateSnapshot" && status.Code(c.err) == codes.DeadlineExceeded:
				// The origin's suspend flushes its filesystem's dirty
				// data through the delay, in the kernel, where the
				// call's deadline does not reach (the engine takes no
				// context yet). Measured below, then finished.
				snapLate = true
			default:
				t.Errorf("%s failed on a slow data device: %v", c.name, c.err)
			}
		}
		w.files.WaitFor(t, files+2)
		t.Logf("writers during the delay: %d files, %d chunks", w.files.Done()-files, w.chunks.count()-chunks)
		if snapLate {
			// The retry waits on the snapshot's name until the first
			// call is done, still on the slow device: when it returns,
			// the first call has finished in the driver.
			s := p.snapshot("during-"+tag, w.fs.VolumeId)
			t.Logf("the snapshot that outlived its %v deadline finished in the driver within %v of its call",
				callDeadline, time.Since(began).Round(time.Millisecond))
			if _, err := p.ctrl.DeleteSnapshot(ctx(t), &csi.DeleteSnapshotRequest{SnapshotId: s.SnapshotId}); err != nil {
				t.Fatal(err)
			}
		}
		p.data.MustSet(t, faultdev.Healthy)
	}
	n, err := w.files.Halt()
	if err != nil {
		t.Fatalf("the file writer failed on a slow device: %v", err)
	}
	c, err := w.chunks.halt()
	if err != nil {
		t.Fatalf("the block writer failed on a slow device: %v", err)
	}
	kerneltest.CheckFiles(t, w.fsPath, n)
	checkChunks(t, w.blkPath, c)
	p.release(w.fs)
	p.release(w.blk)
	t.Logf("faults injected 2, survived 2; %d files and %d chunks synced, none lost", n, c)
}

// TestDataDeviceErrors fails the pool's data device under running writers,
// in each way a disk fails: CSI calls answer within their deadline with
// what went wrong, and once the device is back (and the pool repaired, if
// the kernel asks for it) everything synced before the fault reads back.
func TestDataDeviceErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		mode faultdev.Mode
	}{
		{"failing-writes", faultdev.FailingWrites},
		{"failing", faultdev.Failing},
		{"flaky", faultdev.Flaky(time.Second, time.Second)},
	} {
		t.Run(c.name, func(t *testing.T) { testDataDeviceErrors(t, "csi-thin-flow-data-"+c.name, c.mode) })
	}
}

func testDataDeviceErrors(t *testing.T, pool string, mode faultdev.Mode) {
	p := startFaultPool(t, pool, 1<<30, 64*mib)
	w := p.startWriters(t)
	before := p.records(t)
	files, chunks := w.files.Done(), w.chunks.count()
	p.data.MustSet(t, mode)
	injected := time.Now()
	cs := p.calls(t, "error", w.fs, w.fsPath)
	t.Logf("data device %s: %v", mode, cs)
	// Let the writers meet the fault.
	time.Sleep(3 * time.Second)
	st := p.status(t)
	t.Logf("kernel, %v after the fault: pool %s; writers: %d more files, %d more chunks",
		time.Since(injected).Round(time.Millisecond), describeStatus(st), w.files.Done()-files, w.chunks.count()-chunks)
	nFiles, fileErr := w.files.Halt()
	nChunks, chunkErr := w.chunks.halt()
	t.Logf("writers stopped: %d files synced (%v), %d chunks synced (%v)", nFiles, fileErr, nChunks, chunkErr)
	p.data.MustSet(t, faultdev.Healthy)

	sh, err := p.node.NodeGetStorageHealth(ctx(t), &csi.NodeGetStorageHealthRequest{})
	if err != nil {
		t.Fatal(err)
	}
	st = p.status(t)
	t.Logf("after the device is back: pool %s, storage health %v", describeStatus(st), sh.BackendHealth)

	// Unmount (the filesystem may have shut down on the errors), repair
	// the pool if the kernel took it out of write mode, mount again.
	p.release(w.fs)
	p.release(w.blk)
	if st.Fail || st.Error || st.NeedsCheck || st.Mode == "ro" {
		if len(sh.BackendHealth) == 0 {
			t.Fatalf("the pool is %s but NodeGetStorageHealth reports it healthy", describeStatus(st))
		}
		p.stop(syscall.SIGTERM)
		p.takeDownPool(t)
		t.Logf("repair: %s", strings.Join(repairMetadata(t, p.meta.Path, false), "; "))
		p.start()
	}
	p.checkAgreement(t)
	kerneltest.CheckFiles(t, p.useAfterFault(t, w.fs), nFiles)
	checkChunks(t, p.use(w.blk, blockCap()), nChunks)
	after := p.records(t)
	for _, id := range before {
		if !slices.Contains(after, id) {
			t.Fatalf("%s was lost: records after the fault %v, before %v", id, after, before)
		}
	}
	p.release(w.fs)
	p.release(w.blk)
	t.Logf("faults injected 1, survived 1; records lost 0; %d files and %d chunks synced before and during the fault, none lost", nFiles, nChunks)
}

// useAfterFault stages and publishes an ext4 volume whose device failed
// under it. Where the node's fsck -a refuses the filesystem (writes that
// failed part way through a journal commit can leave it so), it runs
// e2fsck -fy on the volume's device, reached by staging it as a raw block
// volume, as the README's troubleshooting says, and stages it again.
func (p *faultPool) useAfterFault(t *testing.T, v *csi.Volume) string {
	t.Helper()
	fs := mountCap("ext4")
	staging := filepath.Join(p.dir, "staging", v.VolumeId)
	_, err := p.node.NodeStageVolume(ctx(t), &csi.NodeStageVolumeRequest{
		VolumeId: v.VolumeId, StagingTargetPath: staging, VolumeCapability: fs, VolumeContext: v.VolumeContext,
	})
	if err == nil {
		if _, err := p.node.NodeUnstageVolume(ctx(t), &csi.NodeUnstageVolumeRequest{VolumeId: v.VolumeId, StagingTargetPath: staging}); err != nil {
			t.Fatal(err)
		}
		return p.use(v, fs)
	}
	if !strings.Contains(err.Error(), "fsck") {
		t.Fatalf("stage %s after the fault: %v", v.VolumeId, err)
	}
	t.Logf("stage after the fault: %v", err)
	dev := p.use(v, blockCap())
	out, err := exec.Command("e2fsck", "-fy", dev).CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() < 4) {
		t.Fatalf("e2fsck -fy: %v\n%s", err, out)
	}
	t.Logf("e2fsck -fy: %v\n%s", err, out)
	p.release(v)
	return p.use(v, fs)
}
