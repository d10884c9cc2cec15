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

// controlRun is one controller's walk through the control path: n
// volumes, a snapshot of each, a restore of each snapshot, then the
// restores deleted (untimed), the snapshots and the volumes. Names start
// with prefix, which must be new to the controller.
type controlRun struct {
	c                     controller
	prefix                string
	n                     int
	vols, snaps, restores []string
	lat                   [opCount]Sample
	runs                  [opCount]Run
}

func newControlRun(c controller, prefix string, n int) *controlRun {
	return &controlRun{c: c, prefix: prefix, n: n, vols: make([]string, n), snaps: make([]string, n), restores: make([]string, n)}
}

// controlStep is one step of the walk: its i-th call, and the operation
// it is timed as, if it is.
type controlStep struct {
	o     op
	timed bool
	call  func(ctx context.Context, i int) error
}

func (r *controlRun) steps() []controlStep {
	c, p := r.c, r.prefix
	return []controlStep{
		{opCreateVolume, true, func(ctx context.Context, i int) (err error) {
			r.vols[i], err = c.createVolume(ctx, fmt.Sprintf("%sv%d", p, i))
			return err
		}},
		{opCreateSnapshot, true, func(ctx context.Context, i int) (err error) {
			r.snaps[i], err = c.createSnapshot(ctx, fmt.Sprintf("%ss%d", p, i), r.vols[i])
			return err
		}},
		{opRestore, true, func(ctx context.Context, i int) (err error) {
			r.restores[i], err = c.restore(ctx, fmt.Sprintf("%sr%d", p, i), r.snaps[i])
			return err
		}},
		{opDeleteVolume, false, func(ctx context.Context, i int) error { return c.deleteVolume(ctx, r.restores[i]) }},
		{opDeleteSnapshot, true, func(ctx context.Context, i int) error { return c.deleteSnapshot(ctx, r.snaps[i]) }},
		{opDeleteVolume, true, func(ctx context.Context, i int) error { return c.deleteVolume(ctx, r.vols[i]) }},
	}
}

// concurrently walks the control path with each step's calls made by
// callers concurrent callers.
func (r *controlRun) concurrently(ctx context.Context, callers int) error {
	for _, s := range r.steps() {
		l, run, err := calls(ctx, r.n, callers, s.call)
		if err != nil {
			return fmt.Errorf("%s (%d callers): %w", s.o, callers, err)
		}
		if s.timed {
			r.lat[s.o], r.runs[s.o] = l, run
		}
	}
	return nil
}

// serially walks the control path of every run at once, one call at a
// time, taking turns: the i-th call of a step by each run, then the
// next. Every run so meets the same moments of the machine's load, and a
// run of fewer calls takes its turns spread over the others'.
func serially(ctx context.Context, runs []*controlRun) error {
	most := 0
	for _, r := range runs {
		most = max(most, r.n)
	}
	steps := make([][]controlStep, len(runs))
	for k, r := range runs {
		steps[k] = r.steps()
	}
	for s := range steps[0] {
		done := make([]int, len(runs)) // calls made by each run in this step
		for i := range most {
			for k, r := range runs {
				if done[k]*most > i*r.n { // r's calls spread evenly over most
					continue
				}
				st := steps[k][s]
				t0 := time.Now()
				err := st.call(ctx, done[k])
				d := time.Since(t0)
				if err != nil {
					return fmt.Errorf("%s: %w", st.o, err)
				}
				if st.timed {
					r.lat[st.o] = append(r.lat[st.o], d)
				}
				done[k]++
			}
		}
	}
	return nil
}

// measureControl runs the serial figures: first those of the controllers
// that run alone (the bare ioctls, a floor: the least the operations
// cost, with nothing else in flight), then those of the others together,
// taking turns call by call. Then it runs the concurrent figures of each,
// one controller after the other. So a change in the machine's load over
// the run weighs on csi-thin and lvm2 alike.
func (b *bench) measureControl(cs []namedController) error {
	var runs, together []*controlRun
	for _, c := range cs {
		c.res.concurrent = map[int]*[opCount]Run{}
		n := b.cfg.serial
		if c.serialCalls > 0 {
			n = c.serialCalls
		}
		r := newControlRun(c.c, "ser-", n)
		runs = append(runs, r)
		if c.alone {
			klog.InfoS("Control path, serial, alone", "of", c.name, "calls", n)
			if err := serially(b.ctx, []*controlRun{r}); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			continue
		}
		together = append(together, r)
	}
	klog.InfoS("Control path, serial, taking turns", "controllers", len(together))
	if err := serially(b.ctx, together); err != nil {
		return err
	}
	for k, c := range cs {
		c.res.serial = runs[k].lat
		klog.InfoS("Control path, serial", "of", c.name, "calls", runs[k].n, "CreateVolume p50", runs[k].lat[opCreateVolume].Percentile(50))
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
			r := newControlRun(c.c, fmt.Sprintf("c%d-", callers), n)
			if err := r.concurrently(b.ctx, callers); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			c.res.concurrent[callers] = &r.runs
			klog.InfoS("Control path, concurrent", "of", c.name, "callers", callers, "CreateVolume/s", r.runs[opCreateVolume].Throughput())
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
	alone       bool // its serial calls take no turns with the others' but run by themselves
	oneCallEach bool // concurrent runs of one call by each caller, not --calls
}
