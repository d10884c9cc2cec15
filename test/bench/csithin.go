package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/csi-thin/csi-thin/internal/testpool"
)

const nodeID = "bench-node"

// overprovisionRatio lets the control path's volumes, snapshots and
// restores add up to many times their pool: only their sizes are
// promised, and the budget check costs the same whatever its ratio.
const overprovisionRatio = 1000

// csiThin is one csi-thin process on a pool on block devices, and a
// client of its socket.
type csiThin struct {
	b        *bench
	name     string // its pool's dm name
	stateDir string
	dev      poolDevices
	log      string
	endpoint string
	volSize  int64

	cmd    *exec.Cmd
	exited chan error
	conn   *grpc.ClientConn
	ctrl   csi.ControllerClient
	node   csi.NodeClient
	ident  csi.IdentityClient
}

// newCSIThin prepares a csi-thin on dev with its state in stateDir; start
// runs it, and cleanup stops it and removes its pool.
func (b *bench) newCSIThin(name, stateDir string, dev poolDevices) *csiThin {
	d := &csiThin{
		b: b, name: name, stateDir: stateDir, dev: dev, volSize: int64(b.cfg.volSize),
		log:      b.workPath(name + ".log"),
		endpoint: "unix://" + b.workPath(name+".sock"),
	}
	b.defer_("stop csi-thin "+name+" and remove its pool", func() error {
		err := errors.Join(d.stop(), testpool.Remove(d.name, d.stateDir))
		if b.cfg.profileDir != "" { // the log says when each step of a call began
			err = errors.Join(err, copyFile(d.log, filepath.Join(b.cfg.profileDir, name+".log")))
		}
		return err
	})
	return d
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// start runs the driver and waits until Probe says it is ready; it
// returns how long that took from the exec.
func (d *csiThin) start() (time.Duration, error) {
	log, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer log.Close()
	args := []string{
		"--endpoint", d.endpoint, "--node-id", nodeID, "--state-dir", d.stateDir, "--pool-name", d.name,
		"--data-device", d.dev.data, "--metadata-device", d.dev.meta,
		"--overprovision-ratio", strconv.Itoa(overprovisionRatio),
		"-v=2", // the chart's log level
	}
	d.cmd = exec.Command(d.b.cfg.binary, args...)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t0 := time.Now()
	if err := d.cmd.Start(); err != nil {
		d.cmd = nil
		return 0, err
	}
	d.exited = make(chan error, 1)
	go func(cmd *exec.Cmd) { d.exited <- cmd.Wait() }(d.cmd)
	if d.conn == nil {
		conn, err := grpc.NewClient(d.endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return 0, err
		}
		d.conn, d.ctrl, d.node, d.ident = conn, csi.NewControllerClient(conn), csi.NewNodeClient(conn), csi.NewIdentityClient(conn)
	}
	deadline := t0.Add(5 * time.Minute)
	for {
		select {
		case err := <-d.exited:
			d.cmd = nil
			return 0, fmt.Errorf("csi-thin %s exited while starting (%v): %s", d.name, err, d.logTail())
		default:
		}
		ctx, cancel := context.WithTimeout(d.b.ctx, time.Second)
		resp, err := d.ident.Probe(ctx, &csi.ProbeRequest{})
		cancel()
		if err == nil && resp.GetReady().GetValue() {
			return time.Since(t0), nil
		}
		if time.Now().After(deadline) || d.b.ctx.Err() != nil {
			return 0, fmt.Errorf("csi-thin %s is not ready after %v: %v", d.name, time.Since(t0).Round(time.Second), err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop ends the driver with SIGTERM, as kubelet does, and waits for it.
func (d *csiThin) stop() error {
	if d.cmd == nil {
		return nil
	}
	defer func() { d.cmd = nil }()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		if err != nil {
			return fmt.Errorf("csi-thin %s did not stop cleanly: %v: %s", d.name, err, d.logTail())
		}
		return nil
	case <-time.After(2 * time.Minute):
		_ = d.cmd.Process.Kill()
		return fmt.Errorf("csi-thin %s still running 2 minutes after SIGTERM: killed (%v)", d.name, <-d.exited)
	}
}

// restart stops the driver and times its start again.
func (d *csiThin) restart() (time.Duration, error) {
	if err := d.stop(); err != nil {
		return 0, err
	}
	return d.start()
}

// logSize is how far the driver's log has come.
func (d *csiThin) logSize() (int64, error) {
	fi, err := os.Stat(d.log)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// serverDurations are the durations of the first n calls of method that
// the driver's log has from offset on: how long the driver took over
// each call, from its own interceptor, without the client's round trip.
func (d *csiThin) serverDurations(offset int64, method string, n int) (Sample, error) {
	b, err := os.ReadFile(d.log)
	if err != nil {
		return nil, err
	}
	if offset > int64(len(b)) {
		return nil, fmt.Errorf("the log of %s is shorter than before", d.name)
	}
	return parseCallDurations(b[offset:], method, n)
}

// parseCallDurations reads the durations of the first n calls of method
// from the driver's log lines "Call done" (pkg/driver's logCalls).
func parseCallDurations(log []byte, method string, n int) (Sample, error) {
	var s Sample
	want := `"Call done" method="` + method + `"`
	for _, line := range strings.Split(string(log), "\n") {
		if len(s) == n {
			break
		}
		if !strings.Contains(line, want) {
			continue
		}
		_, rest, ok := strings.Cut(line, ` duration="`)
		if !ok {
			continue
		}
		v, _, _ := strings.Cut(rest, `"`)
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("the driver's log line %q: %w", line, err)
		}
		s = append(s, d)
	}
	if len(s) < n {
		return s, fmt.Errorf("the driver's log has %d calls of %s, want %d: does it still log each call at -v=2?", len(s), method, n)
	}
	return s, nil
}

// logTail is the end of the driver's log.
func (d *csiThin) logTail() string {
	b, err := os.ReadFile(d.log)
	if err != nil {
		return "no log: " + err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return "the end of its log " + d.log + ":\n" + strings.Join(lines[max(0, len(lines)-15):], "\n")
}

func (d *csiThin) call() (context.Context, context.CancelFunc) {
	return context.WithTimeout(d.b.ctx, 2*time.Minute)
}

func mountCapability(fsType string) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fsType}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

func blockCapability() *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

// create makes a volume of size bytes with capability c, from the
// snapshot snapID if it is not empty.
func (d *csiThin) create(ctx context.Context, name string, size int64, c *csi.VolumeCapability, snapID string) (string, error) {
	req := &csi.CreateVolumeRequest{
		Name: name, CapacityRange: &csi.CapacityRange{RequiredBytes: size},
		VolumeCapabilities: []*csi.VolumeCapability{c},
	}
	if snapID != "" {
		req.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
			Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snapID},
		}}
	}
	resp, err := d.ctrl.CreateVolume(ctx, req)
	if err != nil {
		return "", fmt.Errorf("CreateVolume %s: %w", name, err)
	}
	return resp.GetVolume().GetVolumeId(), nil
}

// The controller's calls, as Kubernetes' provisioner and snapshotter
// make them: ext4 volumes of --volume-size.

func (d *csiThin) createVolume(ctx context.Context, name string) (string, error) {
	return d.create(ctx, name, d.volSize, mountCapability("ext4"), "")
}

func (d *csiThin) createSnapshot(ctx context.Context, name, volumeID string) (string, error) {
	resp, err := d.ctrl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: name, SourceVolumeId: volumeID})
	if err != nil {
		return "", fmt.Errorf("CreateSnapshot %s: %w", name, err)
	}
	return resp.GetSnapshot().GetSnapshotId(), nil
}

func (d *csiThin) restore(ctx context.Context, name, snapshotID string) (string, error) {
	return d.create(ctx, name, d.volSize, mountCapability("ext4"), snapshotID)
}

func (d *csiThin) deleteVolume(ctx context.Context, id string) error {
	if _, err := d.ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
		return fmt.Errorf("DeleteVolume %s: %w", id, err)
	}
	return nil
}

func (d *csiThin) deleteSnapshot(ctx context.Context, id string) error {
	if _, err := d.ctrl.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: id}); err != nil {
		return fmt.Errorf("DeleteSnapshot %s: %w", id, err)
	}
	return nil
}

// stage stages a volume at a path of its own and returns the path.
func (d *csiThin) stage(ctx context.Context, id string, c *csi.VolumeCapability) (string, error) {
	staging := d.b.workPath("staging", d.name, id)
	if _, err := d.node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{
		VolumeId: id, StagingTargetPath: staging, VolumeCapability: c,
	}); err != nil {
		return "", fmt.Errorf("NodeStageVolume %s: %w", id, err)
	}
	return staging, nil
}

func (d *csiThin) unstage(ctx context.Context, id, staging string) error {
	if _, err := d.node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: staging}); err != nil {
		return fmt.Errorf("NodeUnstageVolume %s: %w", id, err)
	}
	return nil
}

// nullCall is one GetPluginInfo: the round trip of a call that does
// nothing, over the same socket and interceptors.
func (d *csiThin) nullCall(ctx context.Context) error {
	_, err := d.ident.GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
	return err
}

// volumeCount is the number of volumes csi-thin lists.
func (d *csiThin) volumeCount(ctx context.Context) (int, error) {
	n, token := 0, ""
	for {
		resp, err := d.ctrl.ListVolumes(ctx, &csi.ListVolumesRequest{StartingToken: token, MaxEntries: 1000})
		if err != nil {
			return 0, err
		}
		n += len(resp.GetEntries())
		if token = resp.GetNextToken(); token == "" {
			return n, nil
		}
	}
}
