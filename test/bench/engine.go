package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sync"

	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/internal/testpool"
	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// engineResult is CreateVolume of the engine alone, in this process: no
// gRPC, no other process, the same pool devices and state disk.
type engineResult struct {
	serial     Sample
	concurrent Run // engineConcurrent creates at once
}

// engineConcurrent is how many creates the engine gets at once.
const engineConcurrent = 64

// measureEngine runs the engine in this process on the bare ioctls' pool,
// once that pool is removed, with its state on the ext4 disk, and times
// --serial serial creates and 64 concurrent ones. With --profile-dir it
// then profiles as many again, in passes of their own so that neither
// profile weighs on the timings nor on the other: a CPU profile, then an
// execution trace (`go tool trace -pprof=syscall` and `-pprof=sync` turn
// it into where the wall time blocked) with the block and mutex profiles.
func (b *bench) measureEngine(f *floor, dev poolDevices, ext4Dir string) (engineResult, error) {
	var r engineResult
	if err := b.ctl.Remove(f.pool, dm.RemoveOptions{}); err != nil {
		return r, err
	}
	if err := zeroStart(dev.meta); err != nil {
		return r, err
	}
	name, stateDir := "csi-thin-bench-engine", ext4Dir+"/engine"
	e, err := thinpool.Open(thinpool.Config{StateDir: stateDir, PoolName: name, DataDevice: dev.data, MetadataDevice: dev.meta,
		OverprovisionRatio: overprovisionRatio})
	if err != nil {
		return r, fmt.Errorf("open the engine in process: %w", err)
	}
	defer func() {
		if err := errors.Join(e.Close(), testpool.Remove(name, stateDir)); err != nil {
			klog.ErrorS(err, "Could not remove the in-process engine's pool")
		}
	}()
	var mu sync.Mutex
	next := 0 // the last volume's number, under mu
	create := func(ctx context.Context, _ int) error {
		mu.Lock()
		next++
		n := next
		mu.Unlock()
		_, err := e.CreateVolume(ctx, thinpool.CreateRequest{Name: fmt.Sprintf("engine-%d", n), RequiredBytes: b.cfg.volSize})
		return err
	}
	// Warm up: the first change settles the pool's first transaction.
	if err := create(b.ctx, 0); err != nil {
		return r, err
	}
	pass := func() (Sample, Run, error) {
		serial, _, err := calls(b.ctx, b.cfg.serial, 1, create)
		if err != nil {
			return nil, Run{}, err
		}
		_, run, err := calls(b.ctx, engineConcurrent, engineConcurrent, create)
		return serial, run, err
	}
	if r.serial, r.concurrent, err = pass(); err != nil {
		return r, err
	}
	klog.InfoS("The engine in process", "CreateVolume p50", r.serial.Percentile(50), "concurrent CreateVolume/s", r.concurrent.Throughput())
	if dir := b.cfg.profileDir; dir != "" {
		if err := profileEngine(dir, pass); err != nil {
			return r, err
		}
		klog.InfoS("Profiles written", "dir", dir)
	}
	return r, nil
}

// profileEngine runs pass twice, under a CPU profile, then under an
// execution trace with the block and mutex profiles on, and writes them
// to dir.
func profileEngine(dir string, pass func() (Sample, Run, error)) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cpu, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		return err
	}
	defer cpu.Close()
	if err := pprof.StartCPUProfile(cpu); err != nil {
		return err
	}
	_, _, err = pass()
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	tr, err := os.Create(filepath.Join(dir, "trace.out"))
	if err != nil {
		return err
	}
	defer tr.Close()
	runtime.SetBlockProfileRate(1)
	runtime.SetMutexProfileFraction(1)
	defer runtime.SetBlockProfileRate(0)
	defer runtime.SetMutexProfileFraction(0)
	if err := trace.Start(tr); err != nil {
		return err
	}
	_, _, err = pass()
	trace.Stop()
	if err != nil {
		return err
	}
	for _, p := range []string{"block", "mutex"} {
		if err := writeProfile(p, filepath.Join(dir, p+".pprof")); err != nil {
			return err
		}
	}
	return nil
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup(name).WriteTo(f, 0)
}

// zeroStart zeroes the first 4 KiB of a device, where a pool's superblock
// lives, so that a new pool is made there.
func zeroStart(dev string) error {
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, 4096), 0); err != nil {
		return err
	}
	return f.Sync()
}
