package main

import (
	"context"
	"fmt"
	"time"

	"k8s.io/klog/v2"
)

// scaleVolumeBytes is the size of the scale figures' volumes: small, so
// that 10,000 of them are promised far less than the pool's budget.
const scaleVolumeBytes = 1 << 20

// scaleResult is CreateVolume's latency and csi-thin's start-up with few
// and with many volumes in the pool.
type scaleResult struct {
	small, large             int // volumes in the pool
	createSmall, createLarge Sample
	startSmall, startLarge   Sample
	populate                 Run // the creates that took the pool from small to large
}

// measureScale fills the pool to --scale-small volumes, times creates and
// start-ups there, then fills it to --scale and times them again. Each
// timed create is deleted again, untimed, so the pool keeps its count.
func (b *bench) measureScale(d *csiThin) (scaleResult, error) {
	var r scaleResult
	var err error
	if _, err = b.populate(d, b.cfg.scaleSmall); err != nil {
		return r, err
	}
	if r.small, r.createSmall, r.startSmall, err = b.atScale(d); err != nil {
		return r, err
	}
	if r.populate, err = b.populate(d, b.cfg.scale); err != nil {
		return r, err
	}
	r.large, r.createLarge, r.startLarge, err = b.atScale(d)
	return r, err
}

// populate creates volumes until the pool has n, by 16 callers.
func (b *bench) populate(d *csiThin, n int) (Run, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Hour)
	defer cancel()
	have, err := d.volumeCount(ctx)
	if err != nil {
		return Run{}, err
	}
	if have >= n {
		return Run{}, nil
	}
	_, run, err := calls(ctx, n-have, 16, func(ctx context.Context, i int) error {
		_, err := d.create(ctx, fmt.Sprintf("pop-%06d", have+i), scaleVolumeBytes, mountCapability("ext4"), "")
		return err
	})
	if err != nil {
		return run, fmt.Errorf("fill the pool to %d volumes: %w", n, err)
	}
	klog.InfoS("Pool filled", "volumes", n, "created", n-have, "in", run.Wall.Round(time.Millisecond), "CreateVolume/s", run.Throughput())
	return run, nil
}

// atScale times --scale-calls creates, each deleted again, and
// --startups restarts, with the pool as it is.
func (b *bench) atScale(d *csiThin) (int, Sample, Sample, error) {
	ctx, cancel := context.WithTimeout(b.ctx, time.Hour)
	defer cancel()
	n, err := d.volumeCount(ctx)
	if err != nil {
		return 0, nil, nil, err
	}
	var creates, starts Sample
	for i := range b.cfg.scaleCalls {
		t0 := time.Now()
		id, err := d.create(ctx, fmt.Sprintf("scale-%d-%d", n, i), scaleVolumeBytes, mountCapability("ext4"), "")
		if err != nil {
			return n, nil, nil, err
		}
		creates = append(creates, time.Since(t0))
		if err := d.deleteVolume(ctx, id); err != nil {
			return n, nil, nil, err
		}
	}
	for range b.cfg.startups {
		dt, err := d.restart()
		if err != nil {
			return n, nil, nil, err
		}
		starts = append(starts, dt)
	}
	klog.InfoS("At scale", "volumes", n, "CreateVolume p50", creates.Percentile(50), "p99", creates.Percentile(99),
		"start-up p50", starts.Percentile(50))
	return n, creates, starts, nil
}
