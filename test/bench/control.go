package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"
)

// op is a control-path operation.
type op int

const (
	opCreateVolume op = iota
	opCreateSnapshot
	opRestore
	opDeleteVolume
	opDeleteSnapshot
	opCount
)

var opNames = [opCount]string{"CreateVolume", "CreateSnapshot", "restore", "DeleteVolume", "DeleteSnapshot"}

func (o op) String() string { return opNames[o] }

// controller is one way to make and remove thin volumes and snapshots:
// csi-thin over gRPC, lvm2's commands, or the bare ioctls. Each returns
// the id its later calls take. Calls on different objects may run
// concurrently.
type controller interface {
	createVolume(ctx context.Context, name string) (string, error)
	createSnapshot(ctx context.Context, name, volumeID string) (string, error)
	restore(ctx context.Context, name, snapshotID string) (string, error)
	deleteVolume(ctx context.Context, id string) error
	deleteSnapshot(ctx context.Context, id string) error
}

// controlResult is a controller's figures: latencies of serial calls, and
// concurrent runs by number of callers.
type controlResult struct {
	serial     [opCount]Sample
	concurrent map[int]*[opCount]Run
}

// calls runs n calls of fn by callers concurrent callers, which start
// together and take the next call as each finishes theirs. It returns
// every call's latency and the wall time of all; the first error stops
// the callers at their next call.
func calls(ctx context.Context, n, callers int, fn func(ctx context.Context, i int) error) (Sample, Run, error) {
	lat := make(Sample, n)
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	start := make(chan struct{})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range min(callers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				err := fn(ctx, i)
				lat[i] = time.Since(t0)
				if err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	run := Run{Calls: n, Callers: callers, Wall: time.Since(t0)}
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return lat, run, first
}

// runControl makes n volumes, a snapshot of each, a restore of each
// snapshot, then deletes the restores (untimed), the snapshots and the
// volumes, each step by callers concurrent callers (1: serial), and
// returns each operation's latencies and run. Names start with prefix,
// which must be new to the controller.
func runControl(ctx context.Context, c controller, prefix string, n, callers int) ([opCount]Sample, [opCount]Run, error) {
	var lat [opCount]Sample
	var runs [opCount]Run
	vols, snaps, restores := make([]string, n), make([]string, n), make([]string, n)
	step := func(o op, timed bool, fn func(ctx context.Context, i int) error) error {
		l, r, err := calls(ctx, n, callers, fn)
		if err != nil {
			return fmt.Errorf("%s (%d callers): %w", o, callers, err)
		}
		if timed {
			lat[o], runs[o] = l, r
		}
		return nil
	}
	err := step(opCreateVolume, true, func(ctx context.Context, i int) (err error) {
		vols[i], err = c.createVolume(ctx, fmt.Sprintf("%sv%d", prefix, i))
		return err
	})
	if err == nil {
		err = step(opCreateSnapshot, true, func(ctx context.Context, i int) (err error) {
			snaps[i], err = c.createSnapshot(ctx, fmt.Sprintf("%ss%d", prefix, i), vols[i])
			return err
		})
	}
	if err == nil {
		err = step(opRestore, true, func(ctx context.Context, i int) (err error) {
			restores[i], err = c.restore(ctx, fmt.Sprintf("%sr%d", prefix, i), snaps[i])
			return err
		})
	}
	if err == nil {
		err = step(opDeleteVolume, false, func(ctx context.Context, i int) error { return c.deleteVolume(ctx, restores[i]) })
	}
	if err == nil {
		err = step(opDeleteSnapshot, true, func(ctx context.Context, i int) error { return c.deleteSnapshot(ctx, snaps[i]) })
	}
	if err == nil {
		err = step(opDeleteVolume, true, func(ctx context.Context, i int) error { return c.deleteVolume(ctx, vols[i]) })
	}
	return lat, runs, err
}

// measureControl runs the serial and then the concurrent figures of each
// controller, one controller after the other at each step, so that a
// change in the machine's load over the run weighs on all of them alike.
func (b *bench) measureControl(cs []namedController) error {
	for _, c := range cs {
		c.res.concurrent = map[int]*[opCount]Run{}
	}
	for _, c := range cs {
		n := b.cfg.serial
		if c.serialCalls > 0 {
			n = c.serialCalls
		}
		klog.InfoS("Control path, serial", "of", c.name, "calls", n)
		lat, _, err := runControl(b.ctx, c.c, "ser-", n, 1)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		c.res.serial = lat
		klog.InfoS("Control path, serial", "of", c.name, "CreateVolume p50", lat[opCreateVolume].Percentile(50))
	}
	for _, callers := range b.cfg.callers {
		for _, c := range cs {
			if c.serialOnly {
				continue
			}
			n := b.cfg.calls
			if c.oneCallEach {
				n = callers
			}
			klog.InfoS("Control path, concurrent", "of", c.name, "callers", callers, "calls", n)
			_, runs, err := runControl(b.ctx, c.c, fmt.Sprintf("c%d-", callers), n, callers)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			c.res.concurrent[callers] = &runs
			klog.InfoS("Control path, concurrent", "of", c.name, "callers", callers, "CreateVolume/s", runs[opCreateVolume].Throughput())
		}
	}
	return nil
}

// namedController is a controller and where its figures go.
type namedController struct {
	name        string
	c           controller
	res         *controlResult
	serialCalls int  // serial calls of each operation, when not --serial
	serialOnly  bool // no concurrent runs
	oneCallEach bool // concurrent runs of one call by each caller, not --calls
}
