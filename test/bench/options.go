package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/csi-thin/csi-thin/pkg/driver"
)

// config is the benchmark's settings, one flag each. The defaults are the
// quick run `make bench` makes.
type config struct {
	binary string
	disks  []string

	serial    int   // serial calls of each control-path operation, for csi-thin and the bare ioctls
	lvmSerial int   // serial calls of each lvm2 command
	callers   []int // concurrent callers of each concurrent run
	calls     int   // calls of each concurrent run, at least its callers
	volSize   uint64

	stageRuns int
	stageSize uint64

	fioSize      uint64        // the region of the sequential runs and of random I/O on written blocks
	fioFreshSize uint64        // the region of random writes on fresh blocks
	fioRuntime   time.Duration // each time-based fio run
	fioDepth     int

	scale       int // volumes in the pool for the large scale figures
	scaleSmall  int // and for their baseline
	scaleGoalAt int // the scale the goals are set for
	scaleCalls  int // creates timed at each scale
	startups    int // start-ups timed at each scale

	phases     map[string]bool
	profileDir string
}

// The phases, in the order they run.
var allPhases = []string{"control", "stage", "fio", "scale"}

func defaultBinary() string {
	if b := os.Getenv("CSI_THIN_BINARY"); b != "" {
		return b
	}
	if self, err := os.Executable(); err == nil {
		return filepath.Join(filepath.Dir(self), "csi-thin")
	}
	return "csi-thin"
}

// parseFlags reads the flags, the disks from $KERNEL_BLOCK_DEVICES (the
// harness's) unless --disks names them.
func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("csi-thin-bench", flag.ContinueOnError)
	c := &config{}
	fs.StringVar(&c.binary, "binary", defaultBinary(), "the csi-thin binary (default: $CSI_THIN_BINARY, or csi-thin beside this program)")
	disks := fs.String("disks", os.Getenv("KERNEL_BLOCK_DEVICES"), "the "+strconv.Itoa(diskCount)+" blank block devices, space-separated, in the order of test/bench/run (default: $KERNEL_BLOCK_DEVICES)")
	fs.IntVar(&c.serial, "serial", 128, "serial calls of each control-path operation (csi-thin, bare ioctls)")
	fs.IntVar(&c.lvmSerial, "lvm-serial", 32, "serial calls of each lvm2 command")
	callers := fs.String("callers", "16,64", "concurrent callers of the concurrent runs, comma-separated")
	fs.IntVar(&c.calls, "calls", 64, "calls of each operation in a concurrent run (at least its callers)")
	volSize := driver.ByteSize(1 << 30)
	fs.Var(&volSize, "volume-size", "size of the control path's volumes")
	fs.IntVar(&c.stageRuns, "stage-runs", 9, "stages timed of each filesystem, and as many bare mkfs and mount")
	stageSize := driver.ByteSize(1 << 30)
	fs.Var(&stageSize, "stage-size", "size of the staged volumes")
	fioSize := driver.ByteSize(1 << 30)
	fs.Var(&fioSize, "fio-size", "region of fio's sequential runs and of its random runs on written blocks")
	fioFresh := driver.ByteSize(1 << 30)
	fs.Var(&fioFresh, "fio-fresh-size", "region of fio's random writes on fresh blocks, 4 KiB to each 64 KiB block once")
	fs.DurationVar(&c.fioRuntime, "fio-runtime", 5*time.Second, "length of each time-based fio run")
	fs.IntVar(&c.fioDepth, "fio-iodepth", 16, "fio's I/O depth (libaio, direct I/O)")
	fs.IntVar(&c.scale, "scale", 10000, "volumes in one pool for the large scale figures")
	fs.IntVar(&c.scaleSmall, "scale-small", 100, "volumes in the pool for the scale figures' baseline")
	fs.IntVar(&c.scaleCalls, "scale-calls", 200, "creates timed at each scale")
	fs.IntVar(&c.startups, "startups", 5, "start-ups timed at each scale")
	phases := fs.String("phases", strings.Join(allPhases, ","), "phases to run, comma-separated, of "+strings.Join(allPhases, ","))
	fs.StringVar(&c.profileDir, "profile-dir", "", "profile the engine's creates in this process (CPU, block and mutex profiles, execution traces) into this directory, with csi-thin's logs")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: every setting is a flag (see --help)", fs.Args())
	}
	c.disks = strings.Fields(*disks)
	if len(c.disks) != diskCount {
		return nil, fmt.Errorf("%d disks given, want %d (--disks or $KERNEL_BLOCK_DEVICES, in this order: %s): run the benchmark with test/bench/run, which makes them",
			len(c.disks), diskCount, strings.Join(diskRoles[:], "; "))
	}
	for _, f := range strings.Split(*callers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			return nil, fmt.Errorf("--callers %q: give numbers of at least 2, comma-separated", *callers)
		}
		c.callers = append(c.callers, n)
	}
	c.phases = map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		p = strings.TrimSpace(p)
		if !slices.Contains(allPhases, p) {
			return nil, fmt.Errorf("--phases: no phase %q: use some of %s", p, strings.Join(allPhases, ","))
		}
		c.phases[p] = true
	}
	c.volSize, c.stageSize, c.fioSize, c.fioFreshSize = uint64(volSize), uint64(stageSize), uint64(fioSize), uint64(fioFresh)
	c.scaleGoalAt = 10000
	return c, c.validate()
}

func (c *config) validate() error {
	var errs []error
	for _, n := range []struct {
		flag string
		v    int
	}{
		{"--serial", c.serial}, {"--lvm-serial", c.lvmSerial}, {"--calls", c.calls}, {"--stage-runs", c.stageRuns},
		{"--fio-iodepth", c.fioDepth}, {"--scale-small", c.scaleSmall},
		{"--scale-calls", c.scaleCalls}, {"--startups", c.startups},
	} {
		if n.v < 1 {
			errs = append(errs, fmt.Errorf("%s %d: give at least 1", n.flag, n.v))
		}
	}
	for _, n := range c.callers {
		if c.calls < n {
			errs = append(errs, fmt.Errorf("--calls %d is fewer than --callers %d: each caller makes at least one call", c.calls, n))
		}
	}
	if c.scale <= c.scaleSmall {
		errs = append(errs, fmt.Errorf("--scale %d: give more than --scale-small %d", c.scale, c.scaleSmall))
	}
	if c.fioRuntime < time.Second {
		errs = append(errs, fmt.Errorf("--fio-runtime %v: give at least 1s", c.fioRuntime))
	}
	for _, s := range []struct {
		flag string
		v    uint64
	}{{"--fio-size", c.fioSize}, {"--fio-fresh-size", c.fioFreshSize}} {
		if s.v < 64*mib || s.v%mib != 0 {
			errs = append(errs, fmt.Errorf("%s %d: give whole MiB, at least 64Mi", s.flag, s.v))
		}
	}
	if c.stageSize < 300*mib {
		errs = append(errs, fmt.Errorf("--stage-size %d: give at least 300Mi, xfs's smallest", c.stageSize))
	}
	return errors.Join(errs...)
}
