package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/klog/v2"
)

// fioJob is one fio run, made on a thin volume and on a linear device
// alike.
type fioJob struct {
	figure string
	rw     string // write, read, randwrite, randread
	bs     string
	fresh  bool // the fresh region, not the sequential one
	// firstWrites writes 4 KiB to each 64 KiB pool block of the region
	// once, in random order: every write is the first to its block.
	firstWrites bool
	timed       bool    // for --fio-runtime, not once over the region
	snapshot    bool    // the thin volume is snapshotted first
	goal        float64 // the least thin/linear ratio
}

// The goals of the data path: first writes to a block pay its allocation
// (and zeroing, or copy when a snapshot shares it); any other I/O should
// cost nearly what a linear device's does.
const (
	goalFirstWrites = 0.7
	goalWritten     = 0.9
)

// fioJobs run in this order: the jobs that write first to fresh or to
// shared blocks each find every block of their region so, and snapshot
// says to take a snapshot of the volume before the job, so that all its
// blocks are shared.
var fioJobs = []fioJob{
	{figure: "sequential write 1 MiB, fresh blocks", rw: "write", bs: "1m", goal: goalFirstWrites},
	{figure: "sequential write 1 MiB, written blocks", rw: "write", bs: "1m", goal: goalWritten},
	{figure: "sequential read 1 MiB", rw: "read", bs: "1m", goal: goalWritten},
	{figure: "random write 4 KiB, fresh blocks", rw: "randwrite", bs: "4k", fresh: true, firstWrites: true, goal: goalFirstWrites},
	{figure: "random write 4 KiB, written blocks", rw: "randwrite", bs: "4k", timed: true, goal: goalWritten},
	{figure: "random read 4 KiB", rw: "randread", bs: "4k", timed: true, goal: goalWritten},
	{figure: "after a snapshot: random write 4 KiB, first to a shared block", rw: "randwrite", bs: "4k", firstWrites: true,
		snapshot: true, goal: goalFirstWrites},
	{figure: "after a snapshot: sequential write 1 MiB over shared blocks", rw: "write", bs: "1m", snapshot: true, goal: goalFirstWrites},
	{figure: "after a snapshot: random write 4 KiB, written blocks", rw: "randwrite", bs: "4k", timed: true, goal: goalWritten},
	{figure: "after a snapshot: random read 4 KiB", rw: "randread", bs: "4k", timed: true, goal: goalWritten},
	{figure: "after a snapshot: sequential read 1 MiB", rw: "read", bs: "1m", goal: goalWritten},
}

// fioTarget is where a job runs: a device for the sequential region and
// one for the fresh region.
type fioTarget struct{ seq, fresh string }

// fioResult is one job's figure on the thin volume and on the linear
// device, and for a write job the bytes the disk under both wrote for
// each byte fio wrote.
type fioResult struct {
	job                fioJob
	thin, linear       Value
	thinAmp, linearAmp float64
}

// fioArgs are fio's arguments for job on dev; seed picks the offsets of
// random I/O, and iolog is the log of first writes to replay.
func (b *bench) fioArgs(job fioJob, dev string, seed int, iolog string) []string {
	c := b.cfg
	region := b.region(job)
	args := []string{
		"--name=" + strings.ReplaceAll(job.figure, " ", "_"), "--filename=" + dev,
		"--ioengine=libaio", "--direct=1", "--iodepth=" + strconv.Itoa(c.fioDepth),
		"--rw=" + job.rw, "--bs=" + job.bs, "--size=" + strconv.FormatUint(region, 10),
		"--output-format=json",
	}
	if strings.HasPrefix(job.rw, "rand") {
		args = append(args, "--norandommap", "--randrepeat=0", "--randseed="+strconv.Itoa(seed))
	}
	if job.firstWrites {
		args = append(args, "--read_iolog="+iolog)
	}
	if job.timed {
		args = append(args, "--time_based", fmt.Sprintf("--runtime=%ds", int(c.fioRuntime.Seconds())))
	}
	return args
}

func (b *bench) region(job fioJob) uint64 {
	if job.fresh {
		return b.cfg.fioFreshSize
	}
	return b.cfg.fioSize
}

// poolBlock is csi-thin's default pool block, which the first writes
// aim at one by one.
const poolBlock = 64 << 10

// firstWriteLog is a fio I/O log (version 2) of 4 KiB writes to dev, one
// at the start of each pool block of the region, in an order seed
// shuffles.
func firstWriteLog(dev string, region uint64, seed int) []byte {
	n := int(region / poolBlock)
	order := rand.New(rand.NewPCG(uint64(seed), 0x6373692d7468696e)).Perm(n)
	var b strings.Builder
	fmt.Fprintf(&b, "fio version 2 iolog\n%s add\n%s open\n", dev, dev)
	for _, blk := range order {
		fmt.Fprintf(&b, "%s write %d 4096\n", dev, uint64(blk)*poolBlock)
	}
	fmt.Fprintf(&b, "%s close\n", dev)
	return []byte(b.String())
}

// diskWrittenBytes is what a disk has written since boot
// (/sys/block/NAME/stat's sectors written).
func diskWrittenBytes(disk string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(disk), "stat"))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 7 {
		return 0, fmt.Errorf("/sys/block/%s/stat has %d fields", filepath.Base(disk), len(f))
	}
	n, err := strconv.ParseUint(f[6], 10, 64)
	return n * 512, err
}

// runFio runs fio and returns the job's figure, MiB/s of a sequential
// job, IOPS of a random one, and for a write job the bytes disk wrote
// for each byte fio wrote.
func (b *bench) runFio(job fioJob, dev, disk string, seed int) (Value, float64, error) {
	before, err := diskWrittenBytes(disk)
	if err != nil {
		return Value{}, 0, err
	}
	v, wrote, err := b.fio(job, dev, seed)
	if err != nil {
		return v, 0, err
	}
	after, err := diskWrittenBytes(disk)
	if err != nil {
		return v, 0, err
	}
	if err := flushDisk(disk); err != nil {
		return v, 0, err
	}
	if wrote == 0 {
		return v, 0, nil
	}
	return v, float64(after-before) / float64(wrote), nil
}

// flushDisk makes the disk flush its cache. A ubd disk's flush is an
// fsync of its file on the host, which so writes back what the run left
// dirty in the host's page cache before the next run, rather than during
// it.
func flushDisk(disk string) error {
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("flush %s: %w", disk, err)
	}
	return nil
}

// fio runs one job and returns its figure and the bytes it wrote.
func (b *bench) fio(job fioJob, dev string, seed int) (Value, uint64, error) {
	var iolog string
	if job.firstWrites {
		iolog = b.workPath(fmt.Sprintf("first-writes-%d.iolog", seed))
		if err := os.WriteFile(iolog, firstWriteLog(dev, b.region(job), seed), 0o644); err != nil {
			return Value{}, 0, err
		}
		defer os.Remove(iolog)
	}
	args := b.fioArgs(job, dev, seed, iolog)
	cmd := exec.CommandContext(b.ctx, "fio", args...)
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		return Value{}, 0, fmt.Errorf("fio %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(msg))
	}
	return parseFio(out, job)
}

// fioOutput is what the benchmark reads of fio's JSON output.
type fioOutput struct {
	Jobs []struct {
		Error int `json:"error"`
		Read  struct {
			BwBytes float64 `json:"bw_bytes"`
			IOPS    float64 `json:"iops"`
		} `json:"read"`
		Write struct {
			BwBytes float64 `json:"bw_bytes"`
			IOPS    float64 `json:"iops"`
			IOBytes uint64  `json:"io_bytes"`
		} `json:"write"`
	} `json:"jobs"`
}

// parseFio reads the figure of job from fio's JSON output, the bandwidth
// of a sequential job in MiB/s, the IOPS of a random one, and the bytes
// it wrote. fio may print warnings before the JSON.
func parseFio(out []byte, job fioJob) (Value, uint64, error) {
	if i := strings.IndexByte(string(out), '{'); i > 0 {
		out = out[i:]
	}
	var o fioOutput
	if err := json.Unmarshal(out, &o); err != nil {
		return Value{}, 0, fmt.Errorf("fio's output is not its JSON: %w", err)
	}
	if len(o.Jobs) != 1 {
		return Value{}, 0, fmt.Errorf("fio reported %d jobs, want 1", len(o.Jobs))
	}
	j := o.Jobs[0]
	if j.Error != 0 {
		return Value{}, 0, fmt.Errorf("fio's job failed with error %d", j.Error)
	}
	bw, iops := j.Write.BwBytes, j.Write.IOPS
	if strings.HasSuffix(job.rw, "read") {
		bw, iops = j.Read.BwBytes, j.Read.IOPS
	}
	if strings.HasPrefix(job.rw, "rand") {
		if iops <= 0 {
			return Value{}, 0, fmt.Errorf("fio reported no %s I/O", job.rw)
		}
		return Value{iops, IOPS}, j.Write.IOBytes, nil
	}
	if bw <= 0 {
		return Value{}, 0, fmt.Errorf("fio reported no %s bandwidth", job.rw)
	}
	return Value{bw / float64(mib), MiBPerS}, j.Write.IOBytes, nil
}

// measureFio runs every job on a staged thin volume and on a linear
// device over the same disk, one after the other, the thin volume first
// and the linear device first in turn.
func (b *bench) measureFio(d *csiThin, linear fioTarget) ([]fioResult, error) {
	// The phase's calls, not each call: fio runs between them.
	ctx, cancel := context.WithTimeout(b.ctx, time.Hour)
	defer cancel()
	var thin fioTarget
	var ids, stagings []string
	for _, v := range []struct {
		name string
		size uint64
		dev  *string
	}{{"fio-seq", b.cfg.fioSize, &thin.seq}, {"fio-fresh", b.cfg.fioFreshSize, &thin.fresh}} {
		id, err := d.create(ctx, v.name, int64(v.size), blockCapability(), "")
		if err != nil {
			return nil, err
		}
		staging, err := d.stage(ctx, id, blockCapability())
		if err != nil {
			return nil, err
		}
		ids, stagings = append(ids, id), append(stagings, staging)
		if *v.dev, err = b.thinDevice(d.name, id); err != nil {
			return nil, err
		}
	}
	if err := flushDisk(b.cfg.disks[diskPoolExt4]); err != nil {
		return nil, err
	}
	var res []fioResult
	var snaps []string
	for i, job := range fioJobs {
		if job.snapshot {
			snap, err := d.createSnapshot(ctx, fmt.Sprintf("fio-snapshot-%d", len(snaps)), ids[0])
			if err != nil {
				return res, err
			}
			snaps = append(snaps, snap)
		}
		thinDev, linearDev := thin.seq, linear.seq
		if job.fresh {
			thinDev, linearDev = thin.fresh, linear.fresh
		}
		r := fioResult{job: job}
		var err error
		disk := b.cfg.disks[diskPoolExt4]
		thinRun := func() (err error) { r.thin, r.thinAmp, err = b.runFio(job, thinDev, disk, i); return err }
		linearRun := func() (err error) { r.linear, r.linearAmp, err = b.runFio(job, linearDev, disk, i); return err }
		first, second := thinRun, linearRun
		if i%2 == 1 { // the second run of a pair may find the host busy writing back the first's data
			first, second = linearRun, thinRun
		}
		if err = first(); err == nil {
			err = second()
		}
		if err != nil {
			return res, err
		}
		klog.InfoS("fio", "job", job.figure, "thin", r.thin.String(), "linear", r.linear.String(),
			"disk bytes a byte, thin", r.thinAmp, "linear device", r.linearAmp)
		res = append(res, r)
	}
	// Leave the pool as it was, for the scale figures.
	for _, snap := range snaps {
		if err := d.deleteSnapshot(ctx, snap); err != nil {
			return res, err
		}
	}
	for i, id := range ids {
		if err := d.unstage(ctx, id, stagings[i]); err != nil {
			return res, err
		}
		if err := d.deleteVolume(ctx, id); err != nil {
			return res, err
		}
	}
	return res, nil
}
