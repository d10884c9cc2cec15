package main

import (
	"strings"
	"testing"
	"time"
)

// sample is n calls of d each.
func sample(n int, d time.Duration) Sample {
	s := make(Sample, n)
	for i := range s {
		s[i] = d
	}
	return s
}

// fakeResults are a run's figures: csi-thin takes csi a call with its
// state on ext4 (twice that on tmpfs, so that rows of the two differ),
// 64 callers make 64 calls in wall64, lvm2 takes 500ms a call, the bare
// ioctls 1ms, an fsync 0.5ms.
func fakeResults(csi, wall64 time.Duration, large int) *results {
	r := &results{}
	r.durExt4 = durability{fsync: sample(8, 500*time.Microsecond), commit: sample(8, time.Millisecond)}
	r.durTmpfs = durability{fsync: sample(8, 10*time.Microsecond), commit: sample(8, 100*time.Microsecond)}
	r.split = floorSplit{createThin: sample(8, 600*time.Microsecond), setTxID: sample(8, 400*time.Microsecond),
		statusCommit: sample(8, 300*time.Microsecond), statusNoCommit: sample(8, 100*time.Microsecond)}
	r.nullCall = sample(8, 200*time.Microsecond)
	r.serverCreate = sample(8, csi/2)
	fill := func(c *controlResult, lat time.Duration, wall16, wall64 time.Duration) {
		c.concurrent = map[int]*[opCount]Run{}
		var r16, r64 [opCount]Run
		for o := range opCount {
			c.serial[o] = sample(64, lat)
			r16[o] = Run{Calls: 64, Callers: 16, Wall: wall16}
			r64[o] = Run{Calls: 64, Callers: 64, Wall: wall64}
		}
		c.concurrent[16], c.concurrent[64] = &r16, &r64
	}
	fill(&r.ext4, csi, 64*csi, wall64)
	fill(&r.tmpfs, 2*csi, 128*csi, 2*wall64)
	fill(&r.lvm, 500*time.Millisecond, 32*time.Second, 32*time.Second)
	for o := range opCount {
		r.floor.serial[o] = sample(64, time.Millisecond)
	}
	r.stage = &stageResult{
		stage:   map[string]Sample{"ext4": sample(5, 1100*time.Millisecond), "xfs": sample(5, 1500*time.Millisecond)},
		bare:    map[string]Sample{"ext4": sample(5, time.Second), "xfs": sample(5, time.Second)},
		extras:  map[string]Sample{"ext4": sample(5, 50*time.Millisecond), "xfs": sample(5, 400*time.Millisecond)},
		process: sample(8, 10*time.Millisecond),
	}
	r.fio = []fioResult{
		{job: fioJobs[0], thin: Value{80, MiBPerS}, linear: Value{100, MiBPerS}, thinAmp: 17, linearAmp: 1},
		{job: fioJobs[1], thin: Value{80, MiBPerS}, linear: Value{100, MiBPerS}},
	}
	r.scale = &scaleResult{small: 100, large: large,
		createSmall: sample(100, 4*time.Millisecond), createLarge: sample(100, 5*time.Millisecond),
		startSmall: sample(3, 500*time.Millisecond), startLarge: sample(3, 1500*time.Millisecond)}
	return r
}

// find is the row of figure compared with a baseline that starts with base.
func find(t *testing.T, rows []Row, section, figure, base string) Row {
	t.Helper()
	in := ""
	for _, r := range rows {
		if r.Figure == "" {
			in = r.Section
			continue
		}
		if strings.Contains(in, section) && r.Figure == figure && strings.HasPrefix(r.Baseline, base) {
			return r
		}
	}
	t.Fatalf("no row %q against %q in section %q", figure, base, section)
	return Row{}
}

func TestReportGoals(t *testing.T) {
	cfg := &config{serial: 64, lvmSerial: 16, callers: []int{16, 64}, calls: 64, stageRuns: 5, stageSize: gib,
		fioDepth: 16, scaleGoalAt: 10000}
	for _, tc := range []struct {
		name          string
		csi, wall64   time.Duration
		large         int
		section, fig  string
		base, verdict string
	}{
		{"100x lvcreate met", 4 * time.Millisecond, 32 * time.Millisecond, 10000, "ext4", "CreateVolume p50", "lvcreate --thin p50", "met"},
		{"100x lvcreate not met", 6 * time.Millisecond, 32 * time.Millisecond, 10000, "ext4", "CreateVolume p50", "lvcreate --thin p50", "not met"},
		{"100x lvcreate -s met", 4 * time.Millisecond, 32 * time.Millisecond, 10000, "ext4", "CreateSnapshot p50", "lvcreate -s p50", "met"},
		{"3x floor and fsync met", 4 * time.Millisecond, 32 * time.Millisecond, 10000, "ext4", "CreateVolume p50", "create_thin", "met"},
		{"3x floor and fsync not met", 5 * time.Millisecond, 32 * time.Millisecond, 10000, "ext4", "CreateVolume p50", "create_thin", "not met"},
		{"no goal for restore", 4 * time.Millisecond, 32 * time.Millisecond, 10000, "ext4", "restore p50", "lvcreate -s of", ""},
		{"no goal on tmpfs", 4 * time.Millisecond, 32 * time.Millisecond, 10000, "tmpfs", "CreateVolume p50", "lvcreate --thin p50", ""},
		{"64 callers 8x met", 4 * time.Millisecond, 32 * time.Millisecond, 10000, "ext4", "CreateVolume, 64 callers", "serial", "met"},
		{"64 callers 8x not met", 4 * time.Millisecond, 64 * time.Millisecond, 10000, "ext4", "CreateVolume, 64 callers", "serial", "not met"},
		{"stage ext4 met", 4 * time.Millisecond, 32 * time.Millisecond, 10000, "stage", "NodeStageVolume, ext4", "mkfs.ext4", "met"},
		{"stage xfs not met", 4 * time.Millisecond, 32 * time.Millisecond, 10000, "stage", "NodeStageVolume, xfs", "mkfs.xfs", "not met"},
		{"first writes met", 4 * time.Millisecond, 32 * time.Millisecond, 10000, "data path", fioJobs[0].figure, "linear", "met"},
		{"written blocks not met", 4 * time.Millisecond, 32 * time.Millisecond, 10000, "data path", fioJobs[1].figure, "linear", "not met"},
		{"scale p99 met", 4 * time.Millisecond, 32 * time.Millisecond, 10000, "scale", "CreateVolume p99, 10,000 volumes", "with 100", "met"},
		{"start-up met", 4 * time.Millisecond, 32 * time.Millisecond, 10000, "scale", "start-up, 10,000 volumes (p50 of 3)", "with 100", "met"},
		{"scale p99 unjudged below 10,000", 4 * time.Millisecond, 32 * time.Millisecond, 1000, "scale", "CreateVolume p99, 1,000 volumes", "with 100",
			"not judged: the goal is for 10,000 volumes (BENCH_SCALE=10000)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows := report(cfg, fakeResults(tc.csi, tc.wall64, tc.large))
			if got := find(t, rows, tc.section, tc.fig, tc.base).Verdict(); got != tc.verdict {
				t.Errorf("verdict %q, want %q", got, tc.verdict)
			}
		})
	}
}

func TestReportBaselines(t *testing.T) {
	cfg := &config{serial: 64, lvmSerial: 16, callers: []int{16, 64}, calls: 64, stageRuns: 5, stageSize: gib, fioDepth: 16, scaleGoalAt: 10000}
	rows := report(cfg, fakeResults(4*time.Millisecond, 32*time.Millisecond, 10000))
	for _, tc := range []struct {
		section, fig, base string
		want               float64
	}{
		{"ext4", "CreateVolume p50", "lvcreate --thin p50", 125},                 // 500ms / 4ms
		{"ext4", "CreateVolume p50", "create_thin", 4.0 / 1.5},                   // 4ms / (1ms + 0.5ms)
		{"tmpfs", "CreateVolume p50", "create_thin", 8.0 / 1.01},                 // 8ms / (1ms + 10µs)
		{"ext4", "CreateVolume, 16 callers", "lvcreate --thin, 16 at once", 125}, // 64/256ms against 64/32s
		{"ext4", "DeleteSnapshot, 64 callers", "serial", 8},                      // 64/32ms against 64/256ms
		{"durability", "CreateVolume p50, ext4", "on tmpfs", 0.5},
		{"time goes", "the steps added up", "CreateVolume p50", 2.6 / 4}, // 0.2+1+0.3+0.6+0.4+0.1 ms
		{"durability", "fsync, ext4 state disk", "fsync, tmpfs", 50},
		{"stage", "mkfs.xfs and mount, and the other commands", "NodeStageVolume, xfs", 1.4 / 1.5},
		{"stage", "a process that does nothing (true)", "NodeStageVolume, ext4", 0.01 / 1.1},
		{"time goes", "CreateVolume inside csi-thin (its log's call duration)", "CreateVolume p50", 0.5},
		{"data path", "disk bytes written a byte written: " + fioJobs[0].figure, "linear", 17},
	} {
		r := find(t, rows, tc.section, tc.fig, tc.base)
		if got := r.Ratio(); got < tc.want*0.999 || got > tc.want*1.001 {
			t.Errorf("%s: %s against %s: ratio %g, want %g", tc.section, tc.fig, tc.base, got, tc.want)
		}
	}
}

func TestReportLeavesOutWhatDidNotRun(t *testing.T) {
	cfg := &config{serial: 64, callers: []int{16, 64}, calls: 64, scaleGoalAt: 10000}
	rows := report(cfg, &results{})
	for _, r := range rows {
		if r.Figure == "" && !strings.HasPrefix(r.Section, "durability") {
			t.Errorf("section %q of a phase that did not run", r.Section)
		}
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{0: "0", 100: "100", 1000: "1,000", 10000: "10,000", 1234567: "1,234,567"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}
