// Command csi-thin-demo walks one volume through what Kubernetes does with
// it, over csi-thin's real gRPC API: create, stage, publish, write,
// snapshot, restore and read back, printing each step and the pool's usage
// after it. It starts the csi-thin binary on a loopback pool in a
// temporary directory and removes everything it made before it exits: the
// volumes and snapshot, the driver, the pool's device-mapper devices and
// its loop devices. It exits 0 only if every step passed.
//
// It needs root and a kernel with dm-thin; `make demo` runs it inside the
// kernel harness (test/kernel/run) when this kernel has no device-mapper.
//
//	csi-thin-demo [--binary bin/csi-thin] [--pool-name csi-thin-demo] [--pool-size 1Gi]
//	              [--volume-size 256Mi] [--data-size 64Mi]
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/csi-thin/csi-thin/internal/testpool"
	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
	"github.com/csi-thin/csi-thin/pkg/driver"
)

const (
	nodeID   = "demo-node"
	fsType   = "ext4"
	dataFile = "data.bin"
	noteFile = "hello.txt"
	note     = "written before the snapshot\n"
	changed  = "changed after the snapshot\n"
)

func main() { os.Exit(run()) }

func run() int {
	fs := flag.NewFlagSet("csi-thin-demo", flag.ContinueOnError)
	bin := fs.String("binary", defaultBinary(), "the csi-thin binary (default: $CSI_THIN_BINARY, or csi-thin beside this program)")
	pool := fs.String("pool-name", "csi-thin-demo", "device-mapper name of the demo's pool")
	poolSize := driver.ByteSize(1 << 30)
	fs.Var(&poolSize, "pool-size", "size of the demo's loopback pool")
	volSize := driver.ByteSize(256 << 20)
	fs.Var(&volSize, "volume-size", "size of the demo's volume")
	dataSize := driver.ByteSize(64 << 20)
	fs.Var(&dataSize, "data-size", "bytes the demo writes to the volume")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if dataSize == 0 || dataSize > volSize/2 {
		fmt.Fprintf(os.Stderr, "csi-thin-demo: --data-size %s: give more than 0 and at most half the --volume-size %s, for the filesystem's own room\n", dataSize.String(), volSize.String())
		return 2
	}
	if err := preflight(*bin, *pool); err != nil {
		fmt.Fprintf(os.Stderr, "csi-thin-demo: %v\n", err)
		return 2
	}
	dir, err := os.MkdirTemp("", "csi-thin-demo-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "csi-thin-demo: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d := &demo{
		ctx: ctx, bin: *bin, dir: dir, pool: *pool,
		poolSize: uint64(poolSize), volSize: int64(volSize), dataSize: int(dataSize),
		endpoint: "unix://" + filepath.Join(dir, "csi.sock"),
		log:      filepath.Join(dir, "csi-thin.log"),
	}
	return d.run()
}

// defaultBinary is $CSI_THIN_BINARY, or csi-thin in this program's
// directory.
func defaultBinary() string {
	if b := os.Getenv("CSI_THIN_BINARY"); b != "" {
		return b
	}
	if self, err := os.Executable(); err == nil {
		return filepath.Join(filepath.Dir(self), "csi-thin")
	}
	return "csi-thin"
}

// preflight says what is missing before anything is made.
func preflight(bin, pool string) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root and a kernel with dm-thin: run `make demo`, which uses the kernel harness when this kernel has no device-mapper")
	}
	if _, err := os.Stat("/dev/mapper/control"); err != nil {
		return errors.New("this kernel has no device-mapper (/dev/mapper/control is missing): run `make demo`, which uses the kernel harness")
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("the csi-thin binary: %w: build it (make demo does) and pass --binary or $CSI_THIN_BINARY", err)
	}
	ctl, err := dm.Open()
	if err != nil {
		return err
	}
	defer ctl.Close()
	devs, err := ctl.List()
	if err != nil {
		return err
	}
	for _, dev := range devs {
		if dev.Name == pool || strings.HasPrefix(dev.Name, pool+"-") {
			return fmt.Errorf("device-mapper device %s already exists, left by an earlier run?: remove it, or pass another --pool-name", dev.Name)
		}
	}
	return nil
}

// demo is one run: the driver, a client, what the steps made and what is
// left to undo.
type demo struct {
	ctx                 context.Context
	bin, dir, pool, log string
	poolSize            uint64
	volSize             int64
	dataSize            int
	endpoint            string
	metricsAddr         string

	cmd    *exec.Cmd
	exited chan error // the driver's Wait
	conn   *grpc.ClientConn
	ctrl   csi.ControllerClient
	node   csi.NodeClient
	ident  csi.IdentityClient

	step, steps int
	failed      int      // steps that failed
	cleaning    bool     // calls no longer stop on ^C
	undo        []action // what cleanup undoes, last first
	last        *usage   // the pool's usage at the last report

	origin, restore         *csi.Volume
	names                   map[string]string // volume id -> name
	originPath, restorePath string
	dataSum                 string // sha256 of what was written before the snapshot
	snapshotID              string
}

// action is one thing cleanup does.
type action struct {
	what string
	do   func() error
}

func (d *demo) stateDir() string { return filepath.Join(d.dir, "state") }

func (d *demo) poolSizeFlag() string {
	b := driver.ByteSize(d.poolSize)
	return b.String()
}

func (d *demo) run() int {
	d.names = map[string]string{}
	steps := []struct {
		title string
		do    func() error
	}{
		{fmt.Sprintf("Start csi-thin on a %s loopback pool", human(d.poolSize)), d.start},
		{fmt.Sprintf("Create a %s %s volume (CreateVolume)", human(uint64(d.volSize)), fsType), d.createOrigin},
		{"Stage it: format it and mount it on the node (NodeStageVolume)", func() error { return d.stage(d.origin) }},
		{"Publish it where a pod would see it (NodePublishVolume)", func() (err error) {
			d.originPath, err = d.publish(d.origin)
			return err
		}},
		{"Write to it", d.write},
		{"Snapshot it (CreateSnapshot)", d.snapshot},
		{"Change the volume after the snapshot", d.change},
		{"Restore the snapshot into a new volume (CreateVolume from the snapshot)", d.createRestore},
		{"Stage and publish the restored volume (NodeStageVolume, NodePublishVolume)", func() (err error) {
			if err = d.stage(d.restore); err != nil {
				return err
			}
			d.restorePath, err = d.publish(d.restore)
			return err
		}},
		{"Read the restored volume back", d.readBack},
		{"Clean up: unpublish, unstage and delete the volumes and the snapshot", d.cleanup},
		{"Stop the driver and remove the pool", d.teardown},
	}
	d.steps = len(steps)
	const cleanupSteps = 2
	fmt.Println("csi-thin demo: one volume through create, stage, publish, write, snapshot, restore and read-back,")
	fmt.Println("over the CSI gRPC API of a real csi-thin process")
	fmt.Printf("work directory %s\n\n", d.dir)
	start := time.Now()
	for i, s := range steps {
		if d.failed > 0 && i < len(steps)-cleanupSteps {
			continue // skip to the cleanup
		}
		if i == len(steps)-cleanupSteps {
			d.cleaning = true
		}
		d.step = i + 1
		fmt.Printf("[%2d/%d] %s\n", d.step, d.steps, s.title)
		t0 := time.Now()
		err := s.do()
		if err == nil && !d.cleaning && d.ctx.Err() != nil {
			err = errors.New("interrupted")
		}
		if err != nil {
			d.failed++
			d.say("FAILED", "%v", err)
			d.driverLogTail()
			fmt.Println()
			continue
		}
		if d.cmd != nil {
			d.report()
		}
		d.say("ok", "%.2fs", time.Since(t0).Seconds())
		fmt.Println()
	}
	if d.failed > 0 {
		fmt.Printf("demo FAILED: %d step(s) failed, in %.1fs\n", d.failed, time.Since(start).Seconds())
		return 1
	}
	fmt.Printf("demo passed: %d steps in %.1fs\n", d.steps, time.Since(start).Seconds())
	return 0
}

// say prints a detail of the current step under a label.
func (d *demo) say(label, format string, args ...any) {
	fmt.Printf("        %-10s %s\n", label, fmt.Sprintf(format, args...))
}

// call is the context of one gRPC call: ^C cancels it, except in the
// cleanup.
func (d *demo) call() (context.Context, context.CancelFunc) {
	parent := d.ctx
	if d.cleaning {
		parent = context.Background()
	}
	return context.WithTimeout(parent, 2*time.Minute)
}

// start runs the driver and waits until it is ready.
func (d *demo) start() error {
	addr, err := freeLocalPort()
	if err != nil {
		return err
	}
	d.metricsAddr = addr
	log, err := os.Create(d.log)
	if err != nil {
		return err
	}
	defer log.Close()
	args := []string{
		"--endpoint", d.endpoint, "--node-id", nodeID, "--state-dir", d.stateDir(), "--pool-name", d.pool,
		"--pool-size", d.poolSizeFlag(), "--metrics-address", addr, "-v=2",
	}
	d.cmd = exec.Command(d.bin, args...)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	// Its own process group: a ^C at the terminal reaches the demo only,
	// which cleans up through the driver before it stops it.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		d.cmd = nil
		return err
	}
	d.exited = make(chan error, 1)
	go func() { d.exited <- d.cmd.Wait() }()
	d.say("run", "%s --endpoint %s --node-id %s", d.bin, d.endpoint, nodeID)
	d.say("", "--state-dir %s --pool-name %s", d.stateDir(), d.pool)
	d.say("", "--pool-size %s --metrics-address %s -v=2", d.poolSizeFlag(), addr)
	d.say("", "(its log: %s)", d.log)

	conn, err := grpc.NewClient(d.endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	d.conn, d.ctrl, d.node, d.ident = conn, csi.NewControllerClient(conn), csi.NewNodeClient(conn), csi.NewIdentityClient(conn)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-d.exited:
			d.exited <- err
			return fmt.Errorf("csi-thin exited while starting (%v)", err)
		default:
		}
		ctx, cancel := context.WithTimeout(d.ctx, 2*time.Second)
		resp, err := d.ident.Probe(ctx, &csi.ProbeRequest{})
		cancel()
		if err == nil && resp.GetReady().GetValue() {
			break
		}
		if time.Now().After(deadline) || d.ctx.Err() != nil {
			return fmt.Errorf("csi-thin is not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := d.call()
	defer cancel()
	info, err := d.ident.GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
	if err != nil {
		return err
	}
	d.say("ready", "%s version %s, pid %d: Probe says ready", info.GetName(), info.GetVendorVersion(), d.cmd.Process.Pid)
	return nil
}

func mountCapability() *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fsType}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

// createVolume creates a volume, from a snapshot if given, and has
// cleanup delete it.
func (d *demo) createVolume(name string, src *csi.VolumeContentSource) (*csi.Volume, error) {
	ctx, cancel := d.call()
	defer cancel()
	resp, err := d.ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{
		Name: name, CapacityRange: &csi.CapacityRange{RequiredBytes: d.volSize},
		VolumeCapabilities: []*csi.VolumeCapability{mountCapability()}, VolumeContentSource: src,
	})
	if err != nil {
		return nil, fmt.Errorf("CreateVolume %s: %w", name, err)
	}
	v := resp.GetVolume()
	d.names[v.GetVolumeId()] = name
	d.undo = append(d.undo, action{"delete volume " + name, func() error {
		ctx, cancel := d.call()
		defer cancel()
		_, err := d.ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v.GetVolumeId()})
		return err
	}})
	if v.GetCapacityBytes() < d.volSize {
		return nil, fmt.Errorf("volume %s has %d bytes, %d asked", name, v.GetCapacityBytes(), d.volSize)
	}
	var segs []string
	for _, t := range v.GetAccessibleTopology() {
		for k, val := range t.GetSegments() {
			segs = append(segs, k+"="+val)
		}
	}
	d.say("volume", "%s %q: %s, accessible on %s", v.GetVolumeId(), name, human(uint64(v.GetCapacityBytes())), strings.Join(segs, ","))
	return v, nil
}

func (d *demo) createOrigin() (err error) {
	d.origin, err = d.createVolume("demo-volume", nil)
	return err
}

func (d *demo) stagingPath(v *csi.Volume) string {
	return filepath.Join(d.dir, "staging", d.names[v.GetVolumeId()])
}

func (d *demo) targetPath(v *csi.Volume) string {
	return filepath.Join(d.dir, "pods", d.names[v.GetVolumeId()], "volume")
}

// stage stages a volume and has cleanup unstage it.
func (d *demo) stage(v *csi.Volume) error {
	name, staging := d.names[v.GetVolumeId()], d.stagingPath(v)
	ctx, cancel := d.call()
	defer cancel()
	_, err := d.node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{
		VolumeId: v.GetVolumeId(), StagingTargetPath: staging, VolumeCapability: mountCapability(), VolumeContext: v.GetVolumeContext(),
	})
	if err != nil {
		return fmt.Errorf("NodeStageVolume %s: %w", name, err)
	}
	d.undo = append(d.undo, action{"unstage " + name, func() error {
		ctx, cancel := d.call()
		defer cancel()
		_, err := d.node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: v.GetVolumeId(), StagingTargetPath: staging})
		return err
	}})
	m, err := mountAt(staging)
	if err != nil {
		return err
	}
	d.say("staged", "%s: %s (%s) mounted at %s", name, m.source, m.fsType, staging)
	return nil
}

// publish publishes a staged volume and has cleanup unpublish it.
func (d *demo) publish(v *csi.Volume) (string, error) {
	name, target := d.names[v.GetVolumeId()], d.targetPath(v)
	ctx, cancel := d.call()
	defer cancel()
	_, err := d.node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{
		VolumeId: v.GetVolumeId(), StagingTargetPath: d.stagingPath(v), TargetPath: target,
		VolumeCapability: mountCapability(), VolumeContext: v.GetVolumeContext(),
	})
	if err != nil {
		return "", fmt.Errorf("NodePublishVolume %s: %w", name, err)
	}
	d.undo = append(d.undo, action{"unpublish " + name, func() error {
		ctx, cancel := d.call()
		defer cancel()
		_, err := d.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.GetVolumeId(), TargetPath: target})
		return err
	}})
	if _, err := mountAt(target); err != nil {
		return "", err
	}
	d.say("published", "%s: bind-mounted at %s", name, target)
	return target, nil
}

// write fills a file with pseudo-random data and writes a note beside it.
func (d *demo) write() error {
	sum, err := writeData(filepath.Join(d.originPath, dataFile), d.dataSize, 0)
	if err != nil {
		return err
	}
	d.dataSum = sum
	if err := writeSync(filepath.Join(d.originPath, noteFile), []byte(note)); err != nil {
		return err
	}
	d.say("wrote", "%s: %s of pseudo-random data, sha256 %s", dataFile, human(uint64(d.dataSize)), short(sum))
	d.say("wrote", "%s: %q", noteFile, strings.TrimSpace(note))
	return nil
}

func (d *demo) snapshot() error {
	ctx, cancel := d.call()
	defer cancel()
	resp, err := d.ctrl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "demo-snapshot", SourceVolumeId: d.origin.GetVolumeId()})
	if err != nil {
		return fmt.Errorf("CreateSnapshot: %w", err)
	}
	s := resp.GetSnapshot()
	d.undo = append(d.undo, action{"delete snapshot demo-snapshot", func() error {
		ctx, cancel := d.call()
		defer cancel()
		_, err := d.ctrl.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: s.GetSnapshotId()})
		return err
	}})
	if !s.GetReadyToUse() {
		return fmt.Errorf("snapshot %s is not ready to use", s.GetSnapshotId())
	}
	d.snapshotID = s.GetSnapshotId()
	d.say("snapshot", "%s %q of %s: %s, ready to use", s.GetSnapshotId(), "demo-snapshot", d.origin.GetVolumeId(), human(uint64(s.GetSizeBytes())))
	d.say("", "copy-on-write: it shares the volume's blocks, no data is copied")
	return nil
}

// change overwrites the start of the data and the note on the volume,
// which the snapshot must not see.
func (d *demo) change() error {
	n := min(8<<20, d.dataSize)
	if _, err := writeData(filepath.Join(d.originPath, dataFile), n, 1); err != nil {
		return err
	}
	if err := writeSync(filepath.Join(d.originPath, noteFile), []byte(changed)); err != nil {
		return err
	}
	d.say("overwrote", "the first %s of %s, and %s with %q", human(uint64(n)), dataFile, noteFile, strings.TrimSpace(changed))
	d.say("", "the pool copies the blocks the snapshot shares before they change")
	return nil
}

func (d *demo) createRestore() (err error) {
	src := &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{
		Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: d.snapshotID},
	}}
	d.restore, err = d.createVolume("demo-restore", src)
	if err == nil {
		d.say("from", "snapshot %s: shares its blocks, no data is copied", d.snapshotID)
	}
	return err
}

// readBack checks that the restore has what was written before the
// snapshot, and the volume what was written after.
func (d *demo) readBack() error {
	sum, n, err := hashFile(filepath.Join(d.restorePath, dataFile))
	if err != nil {
		return err
	}
	if sum != d.dataSum || n != int64(d.dataSize) {
		return fmt.Errorf("%s in the restore: %s, sha256 %s; written before the snapshot: %s, sha256 %s",
			dataFile, human(uint64(n)), short(sum), human(uint64(d.dataSize)), short(d.dataSum))
	}
	d.say("read", "%s: %s, sha256 %s: matches what was written before the snapshot", dataFile, human(uint64(n)), short(sum))
	got, err := os.ReadFile(filepath.Join(d.restorePath, noteFile))
	if err != nil {
		return err
	}
	if string(got) != note {
		return fmt.Errorf("%s in the restore says %q, want %q", noteFile, got, note)
	}
	d.say("read", "%s: %q", noteFile, strings.TrimSpace(string(got)))
	now, err := os.ReadFile(filepath.Join(d.originPath, noteFile))
	if err != nil {
		return err
	}
	changedSum, _, err := hashFile(filepath.Join(d.originPath, dataFile))
	if err != nil {
		return err
	}
	if string(now) != changed || changedSum == d.dataSum {
		return fmt.Errorf("the original volume lost the change made after the snapshot: %s says %q", noteFile, now)
	}
	d.say("", "while the original volume has the change: %q, sha256 %s", strings.TrimSpace(string(now)), short(changedSum))
	return nil
}

// cleanup undoes what the steps made, last first, past failures.
func (d *demo) cleanup() error {
	if len(d.undo) == 0 {
		d.say("", "nothing to clean up")
	}
	var errs []error
	for i := len(d.undo) - 1; i >= 0; i-- {
		a := d.undo[i]
		if err := a.do(); err != nil {
			d.say("FAILED", "%s: %v", a.what, err)
			errs = append(errs, fmt.Errorf("%s: %w", a.what, err))
			continue
		}
		d.say("done", "%s", a.what)
	}
	d.undo = nil
	return errors.Join(errs...)
}

// teardown stops the driver and removes the pool's devices and the work
// directory.
func (d *demo) teardown() error {
	var errs []error
	if d.conn != nil {
		d.conn.Close()
	}
	if d.cmd != nil {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		var err error
		select {
		case err = <-d.exited:
		case <-time.After(60 * time.Second):
			_ = d.cmd.Process.Kill()
			err = fmt.Errorf("still running 60s after SIGTERM: killed (%v)", <-d.exited)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("csi-thin: %w", err))
			d.say("FAILED", "csi-thin did not stop cleanly: %v", err)
			d.driverLogTail()
		} else {
			d.say("stopped", "csi-thin exited 0 on SIGTERM")
		}
		d.cmd = nil
	}
	// A failed unpublish or unstage leaves mounts that hold the devices.
	if mounts, err := mountsUnder(d.dir); err == nil {
		for i := len(mounts) - 1; i >= 0; i-- {
			if err := syscall.Unmount(mounts[i], 0); err != nil {
				errs = append(errs, fmt.Errorf("unmount %s: %w", mounts[i], err))
				continue
			}
			d.say("unmounted", "%s, left mounted by a failed step", mounts[i])
		}
	}
	devs, loops := d.leftovers()
	if err := testpool.Remove(d.pool, d.stateDir()); err != nil {
		errs = append(errs, err)
	}
	if len(devs) > 0 {
		d.say("removed", "device-mapper devices %s", strings.Join(devs, ", "))
	}
	if len(loops) > 0 {
		d.say("detached", "loop devices %s", strings.Join(loops, ", "))
	}
	if devs, loops := d.leftovers(); len(devs)+len(loops) > 0 {
		errs = append(errs, fmt.Errorf("still there: %s", strings.Join(append(devs, loops...), ", ")))
	}
	if len(errs) > 0 || d.failed > 0 {
		d.say("kept", "%s, for the driver's log", d.dir)
		return errors.Join(errs...)
	}
	if err := os.RemoveAll(d.dir); err != nil {
		return err
	}
	d.say("removed", "%s", d.dir)
	return nil
}

// leftovers are the pool's device-mapper devices, and the loop devices
// over its files.
func (d *demo) leftovers() (devs, loops []string) {
	if ctl, err := dm.Open(); err == nil {
		if list, err := ctl.List(); err == nil {
			for _, dev := range list {
				if dev.Name == d.pool || strings.HasPrefix(dev.Name, d.pool+"-") {
					devs = append(devs, dev.Name)
				}
			}
		}
		ctl.Close()
	}
	files, _ := filepath.Glob(filepath.Join(d.stateDir(), "*.img"))
	for _, f := range files {
		if l, err := dm.FindLoop(f); err == nil {
			loops = append(loops, fmt.Sprintf("%s (%s)", l.Path, filepath.Base(f)))
		}
	}
	return devs, loops
}

// driverLogTail prints the end of the driver's log.
func (d *demo) driverLogTail() {
	b, err := os.ReadFile(d.log)
	if err != nil || len(b) == 0 {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	lines = lines[max(0, len(lines)-15):]
	d.say("log", "the end of %s:", d.log)
	for _, l := range lines {
		fmt.Printf("          | %s\n", l)
	}
}

// usage is the pool's, from the driver's metrics.
type usage struct {
	healthy                 bool
	volumes, snapshots      int
	data, dataUsed          uint64
	metadata, metadataUsed  uint64
	promised, budget, avail uint64
}

// report prints the pool's usage, with what changed since the last.
func (d *demo) report() {
	u, err := d.usage()
	if err != nil {
		d.say("pool", "cannot read the metrics: %v", err)
		return
	}
	prev := d.last
	if prev == nil {
		prev = &usage{promised: u.promised, dataUsed: u.dataUsed}
	}
	health := "healthy"
	if !u.healthy {
		health = "UNHEALTHY"
	}
	d.say("pool", "%s, %s, %s; %s promised%s of the %s budget, %s available",
		plural(u.volumes, "volume"), plural(u.snapshots, "snapshot"), health,
		human(u.promised), delta(prev.promised, u.promised), human(u.budget), human(u.avail))
	d.say("", "data %s written%s of %s, metadata %s of %s",
		human(u.dataUsed), delta(prev.dataUsed, u.dataUsed), human(u.data), human(u.metadataUsed), human(u.metadata))
	d.last = u
}

// usage scrapes the driver's /metrics.
func (d *demo) usage() (*usage, error) {
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + d.metricsAddr + driver.MetricsPath)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", driver.MetricsPath, resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "csi_thin_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, name := range []string{"csi_thin_pool_healthy", "csi_thin_pool_data_bytes", "csi_thin_volumes"} {
		if _, ok := m[name]; !ok {
			return nil, fmt.Errorf("no %s in the metrics", name)
		}
	}
	b := func(name string) uint64 { return uint64(m["csi_thin_pool_"+name+"_bytes"]) }
	return &usage{
		healthy: m["csi_thin_pool_healthy"] == 1,
		volumes: int(m["csi_thin_volumes"]), snapshots: int(m["csi_thin_snapshots"]),
		data: b("data"), dataUsed: b("data_used"), metadata: b("metadata"), metadataUsed: b("metadata_used"),
		promised: b("promised"), budget: b("budget"), avail: b("available"),
	}, nil
}

// freeLocalPort returns a loopback address with a port free now.
func freeLocalPort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port for the metrics: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// writeData writes n bytes of pseudo-random data from seed at the start
// of file, syncs it, and returns the data's sha256.
func writeData(file string, n int, seed uint64) (string, error) {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return "", err
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{byte(seed)})
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := n; left > 0; left -= len(buf) {
		chunk := buf[:min(len(buf), left)]
		_, _ = rng.Read(chunk)
		h.Write(chunk)
		if _, err := f.Write(chunk); err != nil {
			return "", fmt.Errorf("write %s: %w", file, err)
		}
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("sync %s: %w", file, err)
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}

// writeSync replaces a small file's content and syncs it.
func writeSync(file string, b []byte) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

func hashFile(file string) (string, int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", file, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// mount is a line of /proc/self/mountinfo.
type mount struct{ point, source, fsType string }

func mounts() ([]mount, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []mount
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 2 {
			continue
		}
		out = append(out, mount{point: unescape(f[4]), fsType: g[0], source: unescape(g[1])})
	}
	return out, nil
}

// unescape undoes mountinfo's octal escapes of spaces, tabs and the like.
func unescape(s string) string {
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountAt is the mount at path, the last one there.
func mountAt(path string) (mount, error) {
	ms, err := mounts()
	if err != nil {
		return mount{}, err
	}
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].point == path {
			return ms[i], nil
		}
	}
	return mount{}, fmt.Errorf("nothing is mounted at %s", path)
}

// mountsUnder lists the mount points under dir, in mount order.
func mountsUnder(dir string) ([]string, error) {
	ms, err := mounts()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		if strings.HasPrefix(m.point, dir+"/") {
			out = append(out, m.point)
		}
	}
	return out, nil
}

// human formats bytes in binary units, with one decimal where it helps.
func human(b uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	v, i := float64(b), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + units[i]
}

// delta is " (+N)" or " (-N)" for a change, empty for none.
func delta(before, after uint64) string {
	switch {
	case after > before:
		return " (+" + human(after-before) + ")"
	case after < before:
		return " (-" + human(before-after) + ")"
	}
	return ""
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// short is the start of a hash, enough to compare by eye.
func short(sum string) string { return sum[:16] }
