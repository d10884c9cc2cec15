// Command csi-thin-bench measures csi-thin against its baselines in one
// boot of one kernel and prints one table: each figure, its baseline, the
// ratio of the two and, where the project has set one, the goal and
// whether it is met.
//
//   - the control path over gRPC (CreateVolume, CreateSnapshot, restore,
//     DeleteVolume, DeleteSnapshot): p50 and p99 of serial calls and the
//     throughput of 16 and 64 concurrent callers, against lvm2's lvcreate
//     and lvremove on the same kind of disk and against the bare ioctls
//     the change needs (the message and set_transaction_id, through
//     pkg/devmapper); with csi-thin's state directory on ext4 over a block
//     device and on tmpfs, and the cost of an fsync and of a bbolt commit
//     on each alone;
//   - NodeStageVolume of a 1 GiB volume with ext4 and with xfs against
//     bare mkfs and mount of the same kind of device;
//   - fio on a staged thin volume against fio on a linear device over the
//     same disk, before and after a snapshot;
//   - CreateVolume's p99 and csi-thin's start-up with 100 and with 10,000
//     volumes in the pool.
//
// It starts the real csi-thin binary and calls it with the CSI spec's Go
// client. It needs root, a kernel with dm-thin, and five blank disks;
// test/bench/run makes them and runs it inside the kernel harness
// (test/kernel/run), as `make bench` does. It removes what it made
// before it exits.
//
//	csi-thin-bench [--binary bin/csi-thin] [--disks "/dev/ubdb ..."] [--serial 64] [--scale 10000] ...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

func main() { os.Exit(run()) }

func run() int {
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("logtostderr", "true")
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "csi-thin-bench: %v\n", err)
		return 2
	}
	if err := preflight(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "csi-thin-bench: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "csi-thin-bench-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "csi-thin-bench: %v\n", err)
		return 1
	}
	ctl, err := dm.Open()
	if err != nil {
		fmt.Fprintf(os.Stderr, "csi-thin-bench: %v\n", err)
		return 1
	}
	defer ctl.Close()
	b := &bench{ctx: ctx, cfg: cfg, dir: dir, ctl: ctl}
	start := time.Now()
	runErr := b.run()
	cleanErr := b.cleanup()
	if cleanErr == nil {
		_ = os.RemoveAll(dir)
	}
	if err := errors.Join(runErr, cleanErr); err != nil {
		fmt.Fprintf(os.Stderr, "csi-thin-bench: %v\n", err)
		return 1
	}
	rows := report(cfg, &b.res)
	fmt.Println()
	fmt.Println(b.res.machine.String())
	fmt.Println()
	if err := WriteTable(os.Stdout, rows); err != nil {
		return 1
	}
	fmt.Printf("\n%s; measured in %s\n", Summary(rows), time.Since(start).Round(time.Second))
	return 0
}

// preflight says what is missing before anything is made.
func preflight(cfg *config) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root and a kernel with dm-thin: run `make bench`, which runs it in the kernel harness")
	}
	if _, err := os.Stat("/dev/mapper/control"); err != nil {
		return errors.New("this kernel has no device-mapper (/dev/mapper/control is missing): run `make bench`, which runs it in the kernel harness")
	}
	if _, err := os.Stat(cfg.binary); err != nil {
		return fmt.Errorf("the csi-thin binary: %w: build it (make bench does) and pass --binary or $CSI_THIN_BINARY", err)
	}
	for _, tool := range []string{"fio", "lvcreate", "mkfs.ext4", "mkfs.xfs", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed: run `make setup`, which installs fio, lvm2, e2fsprogs and xfsprogs", tool)
		}
	}
	for _, d := range cfg.disks {
		if err := checkBlank(d); err != nil {
			return err
		}
	}
	return nil
}

// bench is one run: its settings, what it made and must undo, and its
// figures.
type bench struct {
	ctx  context.Context
	cfg  *config
	dir  string
	ctl  *dm.Control
	undo []action
	res  results
}

// action is one thing cleanup does.
type action struct {
	what string
	do   func() error
}

// defer_ has cleanup do fn, before what was deferred earlier.
func (b *bench) defer_(what string, fn func() error) { b.undo = append(b.undo, action{what, fn}) }

// cleanup undoes what the run made, last first, past failures.
func (b *bench) cleanup() error {
	var errs []error
	for i := len(b.undo) - 1; i >= 0; i-- {
		if err := b.undo[i].do(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", b.undo[i].what, err))
		}
	}
	b.undo = nil
	return errors.Join(errs...)
}

// results are every figure of a run.
type results struct {
	machine           machine
	durExt4, durTmpfs durability
	split             floorSplit
	nullCall          Sample // GetPluginInfo over the socket
	serverCreate      Sample // the serial creates, as long as the driver's log says it took
	floor, lvm        controlResult
	ext4, tmpfs       controlResult
	stage             *stageResult
	fio               []fioResult
	scale             *scaleResult
	engine            engineResult
}

// run sets the disks up and measures every phase asked for.
func (b *bench) run() error {
	c := b.cfg
	b.res.machine = readMachine()
	ext4Dir := b.workPath("ext4")
	if err := b.mountState(ext4Dir); err != nil {
		return err
	}
	tmpfsDir := b.workPath("tmpfs")

	klog.InfoS("Durability: fsync and bbolt commits", "dirs", []string{ext4Dir, tmpfsDir})
	var err error
	if b.res.durExt4, err = measureDurability(ext4Dir+"/durability", c.serial); err != nil {
		return err
	}
	if b.res.durTmpfs, err = measureDurability(tmpfsDir+"/durability", c.serial); err != nil {
		return err
	}

	// csi-thin's pool with its state on ext4 leaves room on its disk for
	// the data path's linear devices.
	diskA, err := diskSize(c.disks[diskPoolExt4])
	if err != nil {
		return err
	}
	linearBytes := c.fioSize + c.fioFreshSize
	if diskA < metaBytes+linearBytes+4*gib {
		return fmt.Errorf("%s (%s) has %d MiB: it needs %d MiB with --fio-size and --fio-fresh-size as they are, make it larger",
			c.disks[diskPoolExt4], diskRoles[diskPoolExt4], diskA/mib, (metaBytes+linearBytes+4*gib)/mib)
	}
	poolA, err := b.poolOn(diskPoolExt4, diskA-metaBytes-linearBytes)
	if err != nil {
		return err
	}
	poolB, err := b.poolOn(diskPoolTmpfs, 0)
	if err != nil {
		return err
	}
	poolF, err := b.poolOn(diskFloor, 0)
	if err != nil {
		return err
	}
	f, err := b.newFloor("csi-thin-bench-floor", poolF)
	if err != nil {
		return err
	}
	if b.res.split, err = f.split(c.serial); err != nil {
		return err
	}

	a := b.newCSIThin("csi-thin-bench-ext4", ext4Dir+"/csi-thin", poolA)
	if _, err := a.start(); err != nil {
		return err
	}
	for range c.serial {
		ctx, cancel := a.call()
		t0 := time.Now()
		err := a.nullCall(ctx)
		cancel()
		if err != nil {
			return err
		}
		b.res.nullCall = append(b.res.nullCall, time.Since(t0))
	}

	if c.phases["control"] {
		l, err := b.setupLVM(ext4Dir + "/lvm")
		if err != nil {
			return err
		}
		t := b.newCSIThin("csi-thin-bench-tmpfs", tmpfsDir+"/csi-thin", poolB)
		if _, err := t.start(); err != nil {
			return err
		}
		logAt, err := a.logSize()
		if err != nil {
			return err
		}
		err = b.measureControl([]namedController{
			{name: "bare ioctls", c: f, res: &b.res.floor, serialOnly: true, alone: true},
			{name: "lvm2", c: l, res: &b.res.lvm, serialCalls: c.lvmSerial, oneCallEach: true},
			{name: "csi-thin, state on ext4", c: a, res: &b.res.ext4},
			{name: "csi-thin, state on tmpfs", c: t, res: &b.res.tmpfs},
		})
		if err != nil {
			return err
		}
		// Its serial creates are the first CreateVolume calls since.
		if b.res.serverCreate, err = a.serverDurations(logAt, "CreateVolume", c.serial); err != nil {
			return err
		}
		if err := t.stop(); err != nil {
			return err
		}
	}
	if c.phases["stage"] {
		klog.InfoS("Stage", "runs", c.stageRuns, "bytes", c.stageSize)
		r, err := b.measureStage(a)
		if err != nil {
			return err
		}
		b.res.stage = &r
	}
	if c.phases["fio"] {
		klog.InfoS("Data path: fio on a thin volume and on a linear device")
		var lin fioTarget
		if lin.seq, err = b.linear("csi-thin-bench-linear-seq", c.disks[diskPoolExt4], diskA-linearBytes, c.fioSize); err != nil {
			return err
		}
		if lin.fresh, err = b.linear("csi-thin-bench-linear-fresh", c.disks[diskPoolExt4], diskA-c.fioFreshSize, c.fioFreshSize); err != nil {
			return err
		}
		if b.res.fio, err = b.measureFio(a, lin); err != nil {
			return err
		}
	}
	if c.phases["scale"] {
		klog.InfoS("Scale", "small", c.scaleSmall, "large", c.scale)
		r, err := b.measureScale(a)
		if err != nil {
			return err
		}
		b.res.scale = &r
	}
	if err := a.stop(); err != nil {
		return err
	}
	b.res.engine, err = b.measureEngine(f, poolF, ext4Dir)
	return err
}
