package main

import (
	"fmt"
	"strconv"
	"time"
)

// The goals the engine's performance work is judged by.
var (
	goalVsLVM        = &Goal{AtLeast: true, Bound: 100} // CreateVolume, CreateSnapshot p50 against lvcreate
	goalVsFloor      = &Goal{Bound: 3}                  // ... against the bare ioctls and one fsync
	goalConcurrent64 = &Goal{AtLeast: true, Bound: 8}   // 64 concurrent CreateVolume against 64 serial
	goalStage        = &Goal{Bound: 1.2}                // NodeStageVolume against bare mkfs and mount
	goalScaleP99     = &Goal{Bound: 1.5}                // CreateVolume p99 at 10,000 volumes against at 100
	goalStartup      = &Goal{Bound: 2, OnValue: true}   // start-up with 10,000 volumes, in seconds
)

// lvmCommand and floorCalls name each operation's baselines.
var (
	lvmCommand = [opCount]string{"lvcreate --thin", "lvcreate -s", "lvcreate -s of the snapshot", "lvremove", "lvremove"}
	floorCalls = [opCount]string{"create_thin", "create_snap", "create_snap", "delete", "delete"}
)

// report turns a run's figures into the table's rows. A phase that did
// not run has no rows.
func report(cfg *config, r *results) []Row {
	var rows []Row
	add := func(row Row) { rows = append(rows, row) }
	p50 := func(s Sample) Value { return Seconds(s.Percentile(50)) }
	p99 := func(s Sample) Value { return Seconds(s.Percentile(99)) }

	add(Row{Section: "durability: a 4 KiB write made durable in the state directory (p50)"})
	add(Row{Figure: "fsync, ext4 state disk", Value: p50(r.durExt4.fsync), Baseline: "fsync, tmpfs", Base: p50(r.durTmpfs.fsync)})
	add(Row{Figure: "bbolt commit of one record, ext4", Value: p50(r.durExt4.commit), Baseline: "fsync, ext4", Base: p50(r.durExt4.fsync)})
	add(Row{Figure: "bbolt commit of one record, tmpfs", Value: p50(r.durTmpfs.commit), Baseline: "bbolt commit, ext4", Base: p50(r.durExt4.commit)})

	if r.ext4.concurrent != nil {
		rows = append(rows, controlRows(cfg, "ext4 over a block device", r.ext4, r, r.durExt4, true)...)
		rows = append(rows, controlRows(cfg, "tmpfs", r.tmpfs, r, r.durTmpfs, false)...)
		add(Row{Section: "the cost of durability: control path p50, state on ext4 against tmpfs"})
		for o := range opCount {
			add(Row{Figure: o.String() + " p50, ext4", Value: p50(r.ext4.serial[o]), Baseline: "on tmpfs", Base: p50(r.tmpfs.serial[o])})
		}
	}

	if len(r.split.createThin) > 0 {
		create := p50(r.ext4.serial[opCreateVolume])
		base := "CreateVolume p50, ext4"
		add(Row{Section: "where a CreateVolume's time goes: each step it takes, timed alone (p50), against CreateVolume"})
		steps := []struct {
			what string
			s    Sample
		}{
			{"gRPC round trip (GetPluginInfo)", r.nullCall},
			{"bbolt commit of the intent, ext4", r.durExt4.commit},
			{"pool status, committing the metadata", r.split.statusCommit},
			{"create_thin", r.split.createThin},
			{"set_transaction_id", r.split.setTxID},
			{"pool status without a commit", r.split.statusNoCommit},
		}
		var sum time.Duration
		for _, s := range steps {
			add(Row{Figure: s.what, Value: p50(s.s), Baseline: base, Base: create})
			sum += s.s.Percentile(50)
		}
		add(Row{Figure: "the steps added up", Value: Seconds(sum), Baseline: base, Base: create})
		if len(r.serverCreate) > 0 {
			add(Row{Figure: "CreateVolume inside csi-thin (its log's call duration)", Value: p50(r.serverCreate), Baseline: base, Base: create})
		}
		if e := r.engine; len(e.serial) > 0 {
			add(Row{Figure: "CreateVolume of the engine in process (no gRPC)", Value: p50(e.serial), Baseline: base, Base: create})
			add(Row{Figure: fmt.Sprintf("the engine in process, %d creates at once", e.concurrent.Calls), Value: Rate(e.concurrent.Throughput()),
				Baseline: "serial, in process", Base: Rate(e.serial.Throughput()), Kind: Speedup})
		}
	}

	if s := r.stage; s != nil {
		add(Row{Section: fmt.Sprintf("stage of a %s volume: NodeStageVolume (activate, mkfs, mount) against bare mkfs and mount (p50 of %d)",
			sizeText(cfg.stageSize), cfg.stageRuns)})
		for _, fs := range stageFilesystems {
			stage := p50(s.stage[fs.name])
			add(Row{Figure: "NodeStageVolume, " + fs.name, Value: stage,
				Baseline: fs.mkfs[0] + " and mount", Base: p50(s.bare[fs.name]), Goal: goalStage})
			add(Row{Figure: fmt.Sprintf("its other commands alone: blkid twice, blockdev --getro, %s", fs.grow[0]),
				Value: p50(s.extras[fs.name]), Baseline: "NodeStageVolume, " + fs.name, Base: stage})
			add(Row{Figure: fmt.Sprintf("%s and mount, and the other commands", fs.mkfs[0]),
				Value: Seconds(s.bare[fs.name].Percentile(50) + s.extras[fs.name].Percentile(50)), Baseline: "NodeStageVolume, " + fs.name, Base: stage})
		}
		add(Row{Figure: "a process that does nothing (true)", Value: p50(s.process), Baseline: "NodeStageVolume, ext4", Base: p50(s.stage["ext4"])})
	}

	if len(r.fio) > 0 {
		add(Row{Section: fmt.Sprintf("data path: fio (libaio, direct, depth %d) on a staged thin volume against a linear device on the same disk",
			cfg.fioDepth)})
		for _, f := range r.fio {
			add(Row{Figure: f.job.figure, Value: f.thin, Baseline: "linear device", Base: f.linear,
				Goal: &Goal{AtLeast: true, Bound: f.job.goal}})
		}
		for _, f := range r.fio {
			if f.job.goal == goalFirstWrites && f.thinAmp > 0 && f.linearAmp > 0 {
				add(Row{Figure: "disk bytes written a byte written: " + f.job.figure, Value: Value{f.thinAmp, Ratio},
					Baseline: "linear device", Base: Value{f.linearAmp, Ratio}})
			}
		}
	}

	if s := r.scale; s != nil {
		add(Row{Section: fmt.Sprintf("scale: one pool with %s volumes against %s", count(s.large), count(s.small))})
		unjudged := ""
		if s.large < cfg.scaleGoalAt {
			unjudged = fmt.Sprintf("the goal is for %s volumes (BENCH_SCALE=%d)", count(cfg.scaleGoalAt), cfg.scaleGoalAt)
		}
		at := fmt.Sprintf(", %s volumes", count(s.large))
		base := fmt.Sprintf("with %s", count(s.small))
		add(Row{Figure: "CreateVolume p99" + at, Value: p99(s.createLarge), Baseline: base, Base: p99(s.createSmall),
			Goal: goalScaleP99, Unjudged: unjudged})
		add(Row{Figure: "CreateVolume p50" + at, Value: p50(s.createLarge), Baseline: base, Base: p50(s.createSmall)})
		add(Row{Figure: fmt.Sprintf("start-up%s (p50 of %d)", at, len(s.startLarge)), Value: p50(s.startLarge), Baseline: base,
			Base: p50(s.startSmall), Goal: goalStartup, Unjudged: unjudged})
		if s.populate.Calls > 0 {
			add(Row{Figure: fmt.Sprintf("CreateVolume, 16 callers, filling the pool to %s", count(s.large)), Value: Rate(s.populate.Throughput()),
				Baseline: "serial, " + base, Base: Rate(s.createSmall.Throughput()), Kind: Speedup})
		}
	}
	return rows
}

// controlRows are the control path's rows of csi-thin with its state on
// stateFS. goals says whether the goals apply (they are set for ext4).
func controlRows(cfg *config, stateFS string, c controlResult, r *results, dur durability, goals bool) []Row {
	var rows []Row
	add := func(row Row) { rows = append(rows, row) }
	goal := func(g *Goal, o op) *Goal {
		if goals && (o == opCreateVolume || o == opCreateSnapshot) {
			return g
		}
		return nil
	}
	add(Row{Section: fmt.Sprintf("control path over gRPC, state on %s: %d serial calls (lvm2: %d), %d calls by concurrent callers (lvm2: one each)",
		stateFS, cfg.serial, cfg.lvmSerial, cfg.calls)})
	fsync := dur.fsync.Percentile(50)
	for o := range opCount {
		ser, lvm, floor := c.serial[o], r.lvm.serial[o], r.floor.serial[o]
		add(Row{Figure: o.String() + " p50", Value: Seconds(ser.Percentile(50)), Baseline: lvmCommand[o] + " p50",
			Base: Seconds(lvm.Percentile(50)), Kind: Speedup, Goal: goal(goalVsLVM, o)})
		var floorBase Value
		if len(floor) > 0 {
			floorBase = Seconds(floor.Percentile(50) + fsync)
		}
		add(Row{Figure: o.String() + " p50", Value: Seconds(ser.Percentile(50)),
			Baseline: floorCalls[o] + " + set_transaction_id + fsync, p50", Base: floorBase, Goal: goal(goalVsFloor, o)})
		add(Row{Figure: o.String() + " p99", Value: Seconds(ser.Percentile(99)), Baseline: lvmCommand[o] + " p99",
			Base: Seconds(lvm.Percentile(99)), Kind: Speedup})
		for _, n := range cfg.callers {
			var mine, theirs Value
			if runs := c.concurrent[n]; runs != nil {
				mine = Rate(runs[o].Throughput())
			}
			if runs := r.lvm.concurrent[n]; runs != nil {
				theirs = Rate(runs[o].Throughput())
			}
			add(Row{Figure: fmt.Sprintf("%s, %d callers", o, n), Value: mine, Baseline: fmt.Sprintf("%s, %d at once", lvmCommand[o], n),
				Base: theirs, Kind: Speedup})
		}
		if last := cfg.callers[len(cfg.callers)-1]; c.concurrent[last] != nil {
			var g *Goal
			if goals && o == opCreateVolume && last == 64 {
				g = goalConcurrent64
			}
			add(Row{Figure: fmt.Sprintf("%s, %d callers", o, last), Value: Rate(c.concurrent[last][o].Throughput()),
				Baseline: "serial", Base: Rate(ser.Throughput()), Kind: Speedup, Goal: g})
		}
	}
	return rows
}

// count is n with a thousands separator: 10,000.
func count(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// sizeText is a size in GiB or MiB.
func sizeText(b uint64) string {
	if b%gib == 0 {
		return strconv.FormatUint(b/gib, 10) + " GiB"
	}
	return strconv.FormatUint(b/mib, 10) + " MiB"
}
