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

	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/internal/testpool"
	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// profileCreates is how many creates each profile covers, serial and
// concurrent.
const profileCreates = 64

// profile runs the engine in this process on the bare ioctls' pool, once
// that pool is removed, with its state on the ext4 disk, and profiles
// --serial serial creates and 64 concurrent ones: a CPU profile and an
// execution trace of each (`go tool trace -pprof=syscall` and `-pprof=sync`
// turn a trace into where the wall time blocked), and the block and
// mutex profiles of the concurrent creates.
func (b *bench) profile(f *floor, dev poolDevices, ext4Dir string) error {
	dir := b.cfg.profileDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := b.ctl.Remove(f.pool, dm.RemoveOptions{}); err != nil {
		return err
	}
	if err := zeroStart(dev.meta); err != nil {
		return err
	}
	name, stateDir := "csi-thin-bench-profile", ext4Dir+"/profile"
	e, err := thinpool.Open(thinpool.Config{StateDir: stateDir, PoolName: name, DataDevice: dev.data, MetadataDevice: dev.meta})
	if err != nil {
		return fmt.Errorf("open the engine to profile: %w", err)
	}
	defer func() {
		if err := errors.Join(e.Close(), testpool.Remove(name, stateDir)); err != nil {
			klog.ErrorS(err, "Could not remove the profiled pool")
		}
	}()
	create := func(ctx context.Context, i int) error {
		_, err := e.CreateVolume(ctx, thinpool.CreateRequest{Name: fmt.Sprintf("prof-%d", i), RequiredBytes: b.cfg.volSize})
		return err
	}
	// Warm up: the first change settles the pool's first transaction.
	if err := create(b.ctx, -1); err != nil {
		return err
	}
	profiled := func(kind string, fn func() error) error {
		cpu, err := os.Create(filepath.Join(dir, "cpu-"+kind+".pprof"))
		if err != nil {
			return err
		}
		defer cpu.Close()
		tr, err := os.Create(filepath.Join(dir, "trace-"+kind+".out"))
		if err != nil {
			return err
		}
		defer tr.Close()
		if err := pprof.StartCPUProfile(cpu); err != nil {
			return err
		}
		if err := trace.Start(tr); err != nil {
			pprof.StopCPUProfile()
			return err
		}
		err = fn()
		trace.Stop()
		pprof.StopCPUProfile()
		return err
	}
	err = profiled("serial", func() error {
		for i := range b.cfg.serial {
			if err := create(b.ctx, i); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	runtime.SetBlockProfileRate(1)
	runtime.SetMutexProfileFraction(1)
	defer runtime.SetBlockProfileRate(0)
	defer runtime.SetMutexProfileFraction(0)
	var run Run
	err = profiled("concurrent", func() error {
		var err error
		_, run, err = calls(b.ctx, profileCreates, profileCreates, func(ctx context.Context, i int) error {
			return create(ctx, b.cfg.serial+i)
		})
		return err
	})
	if err != nil {
		return err
	}
	for _, p := range []string{"block", "mutex"} {
		if err := writeProfile(p, filepath.Join(dir, p+"-concurrent.pprof")); err != nil {
			return err
		}
	}
	b.res.profile = dir
	klog.InfoS("Profiles written", "dir", dir, "concurrent creates", run.Calls, "in", run.Wall)
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
