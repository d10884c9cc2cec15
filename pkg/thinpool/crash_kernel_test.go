package thinpool_test

// Crash tests of the engine in a real kernel. TestCrash re-executes this
// test binary as TestCrashChild, which opens the engine and runs a small
// workload with one failpoint armed (CSI_THIN_FAILPOINT), so that the child
// is SIGKILLed between two steps of an operation. The parent then opens the
// engine, which recovers, and checks that the pool and the records agree
// (thin_ls on a metadata snapshot), that what the child saw succeed is
// still there, that retried operations converge on the same volume, and
// that data written before a snapshot reads back from it.
//
// Failpoints are compiled in only with the build tag failpoints, which
// test/kernel/test.sh sets; without it the test fails rather than pass
// without a kill. Run it in the test kernel with
//
//	KERNEL_TEST_BENCH=none KERNEL_TEST_PKGS=./pkg/thinpool KERNEL_TEST_RUN='TestCrash$' test/kernel/test.sh
//
// CRASH_RUNS sets the runs per failpoint (default crashRunsDefault), and
// KERNEL_TEST_RUN='TestCrash$/^snapshot.origin-suspended$' runs one
// failpoint.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/internal/failpoint"
	"github.com/csi-thin/csi-thin/internal/kerneltest"
	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

const (
	// crashRunsDefault is the number of kills per failpoint.
	crashRunsDefault = 20
	// crashChildEnv carries a crashChildSpec (JSON) to the child.
	crashChildEnv = "CSI_THIN_CRASH_CHILD"

	crashPoolBytes   = 256 << 20
	crashGrowStep    = 16 << 20 // run r grows the pool to crashPoolBytes + (r+1) steps
	crashVolBytes    = 8 << 20  // every volume starts this size
	crashGrownBytes  = 16 << 20 // the restore is expanded to this
	crashPoolBlock   = thinpool.DefaultBlockSizeBytes
	crashPatternSize = 2 * crashPoolBlock // pattern A: two pool blocks
	crashChildLimit  = 2 * time.Minute    // a child that takes longer hangs
)

// crashOp is one step of the child's workload, as the progress file names
// it.
type crashOp string

const (
	crashCreate        crashOp = "create"         // create volume v<run>
	crashWrite         crashOp = "write"          // activate v, write pattern A, fsync
	crashGrow          crashOp = "grow"           // grow the pool to crashGrowTarget, v active
	crashSnapshot      crashOp = "snapshot"       // snapshot s<run> of the active v
	crashOverwrite     crashOp = "overwrite"      // write pattern B over v's first block, deactivate v
	crashRestore       crashOp = "restore"        // volume r<run> from s<run>
	crashExpand        crashOp = "expand"         // activate r, expand it, deactivate it
	crashDeleteRestore crashOp = "delete-restore" // delete r<run>
	crashDeleteOrigin  crashOp = "delete-origin"  // delete v<run> (odd runs)
)

// crashStep is a step of the workload and the failpoints the engine passes
// in it, in order.
type crashStep struct {
	op     crashOp
	points []string
}

func crashJournalPoints(op string) []string {
	return []string{op + ".after-intent", op + ".after-apply", op + ".after-txid"}
}

// crashPlan is the workload of one run. It passes through every failpoint
// but recover.after-delete, which only a recovery that rolls back a create
// reaches; the restore goes through the snapshot journal a second time,
// and odd runs delete twice.
func crashPlan(run int) []crashStep {
	steps := []crashStep{
		{crashCreate, crashJournalPoints("create")},
		{crashWrite, nil},
		{crashGrow, []string{"grow.after-intent", "grow.after-truncate", "grow.after-refresh", "grow.after-reload"}},
		{crashSnapshot, []string{"snapshot.after-intent", "snapshot.origin-suspended",
			"snapshot.taken-before-resume", "snapshot.after-apply", "snapshot.after-txid"}},
		{crashOverwrite, nil},
		{crashRestore, crashJournalPoints("snapshot")},
		// The restore is still the journal's pending change (its completion
		// is recorded lazily), and it is active: the expand writes the record
		// and a crash leaves the device smaller than the record.
		{crashExpand, []string{"expand.after-record"}},
		{crashDeleteRestore, crashJournalPoints("delete")},
	}
	if run%2 == 1 {
		steps = append(steps, crashStep{crashDeleteOrigin, crashJournalPoints("delete")})
	}
	return steps
}

// crashRecoverPoint is reached only inside a recovery that rolls back a
// create: the run first kills a child at one of crashRollbackPoints, then
// arms this point in a second child that only opens the engine.
const crashRecoverPoint = "recover.after-delete"

// crashRollbackPoints leave a create the pool never committed.
var crashRollbackPoints = []string{
	"create.after-intent", "create.after-apply",
	"snapshot.after-intent", "snapshot.taken-before-resume", "snapshot.after-apply",
	"snapshot.after-intent:2", "snapshot.after-apply:2",
}

// crashArm is the CSI_THIN_FAILPOINT value of a run: the point's k-th
// occurrence in the workload, cycling through all of them over the runs.
// It returns "" when the workload never passes the point.
func crashArm(name string, run int) string {
	n := 0
	for _, s := range crashPlan(run) {
		for _, p := range s.points {
			if p == name {
				n++
			}
		}
	}
	switch {
	case n == 0:
		return ""
	case n == 1:
		return name
	}
	return fmt.Sprintf("%s:%d", name, 1+run%n)
}

// crashGrowTarget is the size run grows the pool to.
func crashGrowTarget(run int) uint64 { return crashPoolBytes + uint64(run+1)*crashGrowStep }

func crashNames(run int) (v, s, r string) {
	return fmt.Sprintf("v%d", run), fmt.Sprintf("s%d", run), fmt.Sprintf("r%d", run)
}

// crashPattern is recognisable data of run: 32-byte lines that name the
// pattern, the run and the offset.
func crashPattern(which byte, run, size int) []byte {
	b := make([]byte, 0, size)
	for off := 0; off < size; off += 32 {
		b = append(b, fmt.Sprintf("%c run %05d off %08x csi-thin\n", which, run, off)[:32]...)
	}
	return b
}

// crashChildSpec tells the child what to do.
type crashChildSpec struct {
	Mode     string // "workload": run crashPlan(Run); "open": open the engine and close it
	StateDir string
	Pool     string
	Progress string // file the child appends its progress to
	Run      int
}

func crashConfig(stateDir, pool string) thinpool.Config {
	return thinpool.Config{StateDir: stateDir, PoolName: pool, PoolSizeBytes: crashPoolBytes}
}

// TestCrashChild is the process TestCrash kills; it does nothing unless
// TestCrash started it.
func TestCrashChild(t *testing.T) {
	raw := os.Getenv(crashChildEnv)
	if raw == "" {
		t.Skip("runs only as a child of TestCrash")
	}
	var spec crashChildSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatalf("%s: %v", crashChildEnv, err)
	}
	e, err := thinpool.Open(crashConfig(spec.StateDir, spec.Pool))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer e.Close()
	if spec.Mode == "open" {
		return
	}
	progress, err := os.OpenFile(spec.Progress, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer progress.Close()
	report := func(format string, args ...any) {
		if _, err := fmt.Fprintf(progress, format+"\n", args...); err != nil {
			t.Fatal(err)
		}
		if err := progress.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	w := crashWorkload{t: t, e: e, run: spec.Run}
	for _, step := range crashPlan(spec.Run) {
		report("begin %s", step.op)
		vol, err := w.do(step.op)
		if err != nil {
			report("fail %s %v", step.op, err)
			t.Fatalf("%s: %v", step.op, err)
		}
		if vol != nil {
			report("done %s %s %d", step.op, vol.ID, vol.ThinID)
		} else {
			report("done %s - 0", step.op)
		}
	}
}

// crashWorkload runs the child's steps.
type crashWorkload struct {
	t       *testing.T
	e       *thinpool.Engine
	run     int
	v, s, r *thinpool.Volume
}

func (w *crashWorkload) do(op crashOp) (*thinpool.Volume, error) {
	e := w.e
	vName, sName, rName := crashNames(w.run)
	var err error
	switch op {
	case crashCreate:
		w.v, err = e.CreateVolume(context.Background(), thinpool.CreateRequest{Name: vName, RequiredBytes: crashVolBytes})
		return w.v, err
	case crashWrite:
		return nil, crashWriteVolume(e, w.v.ID, 0, crashPattern('A', w.run, crashPatternSize))
	case crashGrow:
		return nil, e.Grow(context.Background(), crashGrowTarget(w.run))
	case crashSnapshot:
		w.s, err = e.CreateSnapshot(context.Background(), sName, w.v.ID, nil)
		return w.s, err
	case crashOverwrite:
		if err := crashWriteVolume(e, w.v.ID, 0, crashPattern('B', w.run, crashPoolBlock)); err != nil {
			return nil, err
		}
		return nil, e.Deactivate(context.Background(), w.v.ID)
	case crashRestore:
		w.r, err = e.CreateVolume(context.Background(), thinpool.CreateRequest{Name: rName, SourceID: w.s.ID})
		return w.r, err
	case crashExpand:
		if _, err := e.Activate(context.Background(), w.r.ID, false); err != nil {
			return nil, err
		}
		g, err := e.Expand(context.Background(), w.r.ID, crashGrownBytes)
		if err != nil {
			return nil, err
		}
		return g, e.Deactivate(context.Background(), w.r.ID)
	case crashDeleteRestore:
		return nil, e.Delete(context.Background(), w.r.ID)
	case crashDeleteOrigin:
		return nil, e.Delete(context.Background(), w.v.ID)
	}
	return nil, fmt.Errorf("unknown step %q", op)
}

// crashWriteVolume activates a volume (or finds it active) and writes data
// at off, durably.
func crashWriteVolume(e *thinpool.Engine, id string, off int64, data []byte) error {
	path, err := e.Activate(context.Background(), id, false)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, off); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// crashReadVolume activates a volume or snapshot (or finds it active) and
// reads n bytes from its start with O_DIRECT, from the pool rather than
// the page cache, and returns them and the device's size.
func crashReadVolume(e *thinpool.Engine, v *thinpool.Volume, n int) ([]byte, uint64, error) {
	path, err := e.Activate(context.Background(), v.ID, v.Kind == thinpool.KindSnapshot)
	if err != nil {
		return nil, 0, err
	}
	size, err := dm.BlockDeviceSize(path)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE) // page-aligned
	if err != nil {
		return nil, 0, err
	}
	defer unix.Munmap(buf)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return nil, 0, err
	}
	return bytes.Clone(buf), size, nil
}

// crashDiff describes where got differs from want.
func crashDiff(got, want []byte) string {
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			line := i &^ 31
			end := min(line+32, len(got))
			return fmt.Sprintf("differs at byte %d: read %q, want %q", i, got[line:end], want[line:min(line+32, len(want))])
		}
	}
	return ""
}

// crashStats is one failpoint's row of the summary.
type crashStats struct {
	name                       string
	ran                        bool
	runs, kills, leaks, losses int
	elapsed                    time.Duration
	inChildren                 time.Duration // of elapsed, in the children
}

func TestCrash(t *testing.T) {
	kerneltest.Require(t)
	if !failpoint.Enabled {
		t.Fatal("this test binary was built without -tags failpoints, so no child can be killed at a failpoint: " +
			"build it with `go test -tags failpoints` (test/kernel/test.sh does)")
	}
	if v := os.Getenv(failpoint.EnvVar); v != "" {
		t.Fatalf("%s=%s is set: the crash test arms failpoints in its children only; unset it", failpoint.EnvVar, v)
	}
	thinLs, err := exec.LookPath("thin_ls")
	if err != nil {
		t.Fatalf("thin_ls is needed to read the pool's thin ids: install thin-provisioning-tools: %v", err)
	}
	runs := crashRunsDefault
	if s := os.Getenv("CRASH_RUNS"); s != "" {
		if runs, err = strconv.Atoi(s); err != nil || runs < 1 {
			t.Fatalf("CRASH_RUNS=%q: want a positive number of runs per failpoint", s)
		}
	}
	logs := crashQuietKlog(t)

	start := time.Now()
	names := failpoint.Names()
	stats := make([]*crashStats, len(names))
	for i, name := range names {
		st := &crashStats{name: name}
		stats[i] = st
		t.Run(name, func(t *testing.T) {
			st.ran = true
			began := time.Now()
			defer func() { st.elapsed = time.Since(began) }()
			s := newCrashSeries(t, fmt.Sprintf("csi-thin-crash-%d", i), thinLs, logs, st)
			for run := 0; run < runs; run++ {
				s.run(t, name, run)
			}
			s.final(t)
		})
	}

	var b strings.Builder
	row := func(name, runs, kills, leaks, losses, secs string) {
		fmt.Fprintf(&b, "%-30s %5s %5s %5s %6s %7s\n", name, runs, kills, leaks, losses, secs)
	}
	row("failpoint", "runs", "kills", "leaks", "losses", "seconds")
	var total crashStats
	for _, st := range stats {
		if !st.ran {
			row(st.name, "-", "-", "-", "-", "-")
			continue
		}
		row(st.name, strconv.Itoa(st.runs), strconv.Itoa(st.kills), strconv.Itoa(st.leaks), strconv.Itoa(st.losses),
			fmt.Sprintf("%.1f", st.elapsed.Seconds()))
		total.runs += st.runs
		total.kills += st.kills
		total.leaks += st.leaks
		total.losses += st.losses
		total.inChildren += st.inChildren
	}
	row("total", strconv.Itoa(total.runs), strconv.Itoa(total.kills), strconv.Itoa(total.leaks), strconv.Itoa(total.losses),
		fmt.Sprintf("%.1f", time.Since(start).Seconds()))
	t.Logf("crash runs per failpoint (%d each; %.1f s in the children, the rest in the checks):\n%s",
		runs, total.inChildren.Seconds(), b.String())

	for _, st := range stats {
		if st.ran && st.kills == 0 {
			t.Errorf("failpoint %s was never hit: no child was killed there", st.name)
		}
	}
	if total.leaks != 0 || total.losses != 0 {
		t.Errorf("%d leaked and %d lost thin devices or records", total.leaks, total.losses)
	}
}

// crashSeries is one failpoint's pool and what the parent knows of it.
type crashSeries struct {
	cfg     thinpool.Config
	ctl     *dm.Control
	metaDev string // the pool's metadata device, for thin_ls
	thinLs  string
	dir     string // progress files
	logs    *crashLog
	st      *crashStats

	// model is every record after the last run's checks and retries.
	model map[string]*thinpool.Volume
	// leaked and lost are the thin ids and record ids already counted.
	leaked map[uint32]bool
	lost   map[string]bool
}

func newCrashSeries(t *testing.T, pool, thinLs string, logs *crashLog, st *crashStats) *crashSeries {
	s := &crashSeries{
		cfg: crashConfig(t.TempDir(), pool), thinLs: thinLs, dir: t.TempDir(), logs: logs, st: st,
		model: map[string]*thinpool.Volume{}, leaked: map[uint32]bool{}, lost: map[string]bool{},
	}
	var err error
	if s.ctl, err = dm.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.removePool(t) })
	e, err := thinpool.Open(s.cfg)
	if err != nil {
		t.Fatalf("create pool %s: %v", pool, err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := dm.FindLoop(filepath.Join(s.cfg.StateDir, "pool-metadata.img"))
	if err != nil {
		t.Fatalf("the pool's metadata loop device: %v", err)
	}
	s.metaDev = l.Path
	return s
}

// removePool removes the pool's devices and detaches its loops, so that
// later tests in the same kernel start clean.
func (s *crashSeries) removePool(t *testing.T) {
	pool := s.cfg.PoolName
	devs, err := s.ctl.List()
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, d := range devs {
		if !strings.HasPrefix(d.Name, pool+"-") {
			continue
		}
		if info, err := s.ctl.Info(d.Name); err == nil && info.Suspended {
			_ = s.ctl.Resume(d.Name, 0)
		}
		if err := s.ctl.Remove(d.Name, dm.RemoveOptions{}); err != nil {
			t.Errorf("cleanup: remove %s: %v", d.Name, err)
		}
	}
	if err := s.ctl.Remove(pool, dm.RemoveOptions{}); err != nil && !errors.Is(err, dm.ErrNotFound) {
		t.Errorf("cleanup: remove pool %s: %v", pool, err)
	}
	for _, f := range []string{"pool-data.img", "pool-metadata.img"} {
		l, err := dm.FindLoop(filepath.Join(s.cfg.StateDir, f))
		if errors.Is(err, dm.ErrNotFound) {
			continue
		}
		if err == nil {
			err = l.Detach()
		}
		if err != nil {
			t.Errorf("cleanup: detach the loop device of %s: %v", f, err)
		}
	}
	s.ctl.Close()
}

// crashChildResult is how a child ended.
type crashChildResult struct {
	killed bool // by SIGKILL: it reached the armed failpoint
	output string
}

// child runs TestCrashChild with failpoint arm. A child that fails or
// hangs fails the test.
func (s *crashSeries) child(t *testing.T, mode string, run int, arm string) crashChildResult {
	t.Helper()
	spec, err := json.Marshal(crashChildSpec{
		Mode: mode, StateDir: s.cfg.StateDir, Pool: s.cfg.PoolName, Run: run,
		Progress: s.progressFile(run),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), crashChildLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), failpoint.EnvVar+"="+arm, crashChildEnv+"="+string(spec))
	out := &crashLog{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	began := time.Now()
	err = cmd.Run()
	s.st.inChildren += time.Since(began)
	res := crashChildResult{output: out.String()}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("run %d: child (%s, %s=%s) did not finish in %v; its output:\n%s", run, mode, failpoint.EnvVar, arm, crashChildLimit, res.output)
	case err == nil:
	case errors.As(err, &exitErr):
		ws, ok := exitErr.Sys().(syscall.WaitStatus)
		if ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			res.killed = true
			break
		}
		t.Fatalf("run %d: child (%s, %s=%s) failed: %v; its output:\n%s", run, mode, failpoint.EnvVar, arm, err, res.output)
	default:
		t.Fatalf("run %d: start child: %v", run, err)
	}
	return res
}

func (s *crashSeries) progressFile(run int) string {
	return filepath.Join(s.dir, fmt.Sprintf("progress-%d", run))
}

// run is one kill at failpoint name and the checks after it.
func (s *crashSeries) run(t *testing.T, name string, run int) {
	t.Helper()
	s.logs.Reset()
	var res crashChildResult
	if name == crashRecoverPoint {
		pre := crashRollbackPoints[run%len(crashRollbackPoints)]
		if first := s.child(t, "workload", run, pre); !first.killed {
			t.Fatalf("run %d: the child was not killed at %s, which should leave a create to roll back; its output:\n%s", run, pre, first.output)
		}
		res = s.child(t, "open", run, name)
	} else {
		arm := crashArm(name, run)
		if arm == "" {
			t.Fatalf("no step of the crash workload passes failpoint %s: add it to crashPlan", name)
		}
		res = s.child(t, "workload", run, arm)
	}
	s.st.runs++
	if res.killed {
		s.st.kills++
	} else {
		t.Errorf("run %d: the child finished without reaching failpoint %s; its output:\n%s", run, name, res.output)
	}
	prog, err := readCrashProgress(s.progressFile(run))
	if err != nil {
		t.Fatalf("run %d: %v", run, err)
	}
	if !s.verify(t, run, prog) {
		t.Logf("run %d: the child's progress:\n%s\nits output:\n%s\nthe engine's log in the checks:\n%s", run, prog.raw, res.output, s.logs.String())
		t.FailNow()
	}
}

// crashProgress is what the child reported before it died.
type crashProgress struct {
	raw      string
	done     map[crashOp]crashDone
	inFlight crashOp // begun and not done; "" if none
}

type crashDone struct {
	id   string
	thin uint32
}

func readCrashProgress(path string) (*crashProgress, error) {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	p := &crashProgress{raw: string(b), done: map[crashOp]crashDone{}}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "begin" && len(f) == 2:
			p.inFlight = crashOp(f[1])
		case f[0] == "done" && len(f) == 4:
			thin, err := strconv.ParseUint(f[3], 10, 32)
			if err != nil || crashOp(f[1]) != p.inFlight {
				return nil, fmt.Errorf("progress file %s: bad line %q", path, line)
			}
			p.done[crashOp(f[1])] = crashDone{id: f[2], thin: uint32(thin)}
			p.inFlight = ""
		default:
			return nil, fmt.Errorf("progress file %s: bad line %q", path, line)
		}
	}
	return p, nil
}

func (p *crashProgress) finished(op crashOp) bool {
	_, ok := p.done[op]
	return ok
}

func (p *crashProgress) began(op crashOp) bool { return p.finished(op) || p.inFlight == op }

// verify opens the engine after a kill and checks it; it reports whether
// everything held.
func (s *crashSeries) verify(t *testing.T, run int, prog *crashProgress) bool {
	t.Helper()
	ok := true
	where := fmt.Sprintf("run %d, killed in %s", run, prog.inFlight)
	if prog.inFlight == "" {
		where = fmt.Sprintf("run %d, after its workload", run)
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: "+format, append([]any{where}, args...)...)
		ok = false
	}
	e, err := thinpool.Open(s.cfg)
	if err != nil {
		fail("the engine does not open after the crash: %v", err)
		return false
	}
	defer e.Close()
	if err := e.Health(); err != nil {
		fail("pool unhealthy after recovery: %v", err)
	}
	if !s.checkNotSuspended(fail) {
		return false // I/O to a suspended device would hang the checks
	}
	recs, err := crashRecords(e)
	if err != nil {
		fail("list: %v", err)
		return false
	}
	s.checkThins(fail, recs)
	s.checkRecords(fail, run, prog, recs)
	s.checkGrown(fail, run, prog)
	s.retry(fail, e, run, prog)

	vName, sName, rName := crashNames(run)
	for _, n := range []struct {
		kind thinpool.Kind
		name string
	}{{thinpool.KindVolume, vName}, {thinpool.KindSnapshot, sName}, {thinpool.KindVolume, rName}} {
		if v, err := e.GetByName(n.kind, n.name); err == nil {
			if err := e.Deactivate(t.Context(), v.ID); err != nil {
				fail("deactivate %s: %v", n.name, err)
			}
		}
	}
	if s.model, err = crashRecords(e); err != nil {
		fail("list: %v", err)
	}
	return ok
}

// checkNotSuspended: recovery resumes what a crash left suspended. It
// reports whether no device of the pool is suspended.
func (s *crashSeries) checkNotSuspended(fail func(string, ...any)) bool {
	devs, err := s.ctl.List()
	if err != nil {
		fail("list dm devices: %v", err)
		return false
	}
	ok := true
	for _, d := range devs {
		if d.Name != s.cfg.PoolName && !strings.HasPrefix(d.Name, s.cfg.PoolName+"-") {
			continue
		}
		info, err := s.ctl.Info(d.Name)
		if err != nil {
			fail("info %s: %v", d.Name, err)
			ok = false
		} else if info.Suspended {
			fail("dm device %s is still suspended after recovery", d.Name)
			ok = false
		}
	}
	return ok
}

// checkGrown: a grow the child began is finished at start, wherever it
// was killed (every grow failpoint is after its intent is durable): the
// pool's table and its data file have the run's size.
func (s *crashSeries) checkGrown(fail func(string, ...any), run int, prog *crashProgress) {
	if !prog.began(crashGrow) {
		return
	}
	want := crashGrowTarget(run)
	st, err := s.ctl.PoolStatus(s.cfg.PoolName)
	if err != nil {
		fail("pool status: %v", err)
		return
	}
	if got := st.DataTotal * crashPoolBlock; got != want {
		fail("the pool has %d data bytes after the restart, want the grown %d", got, want)
	}
	fi, err := os.Stat(filepath.Join(s.cfg.StateDir, "pool-data.img"))
	if err != nil || uint64(fi.Size()) != want {
		fail("the pool's data file: %v, want %d bytes", err, want)
	}
}

// crashRecords lists every volume and snapshot, page by page.
func crashRecords(e *thinpool.Engine) (map[string]*thinpool.Volume, error) {
	out := map[string]*thinpool.Volume{}
	for _, kind := range []thinpool.Kind{thinpool.KindVolume, thinpool.KindSnapshot} {
		token := ""
		for {
			page, next, err := e.List(kind, token, 5)
			if err != nil {
				return nil, err
			}
			for _, v := range page {
				if out[v.ID] != nil {
					return nil, fmt.Errorf("list gave %s twice", v.ID)
				}
				out[v.ID] = v
			}
			if next == "" {
				break
			}
			token = next
		}
	}
	return out, nil
}

// poolThins returns the thin ids in the pool's metadata, read by thin_ls
// from a metadata snapshot of the live pool.
func (s *crashSeries) poolThins() (map[uint32]bool, error) {
	pool := s.cfg.PoolName
	if err := s.ctl.ReserveMetadataSnap(pool); err != nil {
		return nil, fmt.Errorf("reserve a metadata snapshot: %w", err)
	}
	out, err := exec.Command(s.thinLs, "--metadata-snap", "--no-headers", "-o", "DEV", s.metaDev).CombinedOutput()
	if relErr := s.ctl.ReleaseMetadataSnap(pool); relErr != nil && err == nil {
		return nil, fmt.Errorf("release the metadata snapshot: %w", relErr)
	}
	if err != nil {
		return nil, fmt.Errorf("thin_ls %s: %v: %s", s.metaDev, err, out)
	}
	ids := map[uint32]bool{}
	for _, f := range strings.Fields(string(out)) {
		id, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("thin_ls printed %q, not a thin id: %s", f, out)
		}
		ids[uint32(id)] = true
	}
	return ids, nil
}

// checkThins: the pool's thin ids are exactly those the records name.
func (s *crashSeries) checkThins(fail func(string, ...any), recs map[string]*thinpool.Volume) {
	inPool, err := s.poolThins()
	if err != nil {
		fail("%v", err)
		return
	}
	named := map[uint32]string{}
	for _, v := range recs {
		if other, dup := named[v.ThinID]; dup {
			fail("records %s and %s both name thin %d", other, v.ID, v.ThinID)
		}
		named[v.ThinID] = v.ID
		if !inPool[v.ThinID] {
			fail("loss: record %s (%s %q) names thin %d, which the pool does not have", v.ID, v.Kind, v.Name, v.ThinID)
			if !s.lost[v.ID] {
				s.lost[v.ID] = true
				s.st.losses++
			}
		}
	}
	for id := range inPool {
		if _, ok := named[id]; !ok {
			fail("leak: the pool has thin %d, which no record names", id)
			if !s.leaked[id] {
				s.leaked[id] = true
				s.st.leaks++
			}
		}
	}
}

// checkRecords: the records after recovery are those of the last run's
// checks, plus what the child saw created and minus what it saw deleted.
// The operation in flight may or may not have happened.
func (s *crashSeries) checkRecords(fail func(string, ...any), run int, prog *crashProgress, recs map[string]*thinpool.Volume) {
	vName, sName, rName := crashNames(run)
	type obj struct {
		op, del crashOp
		kind    thinpool.Kind
		name    string
	}
	objs := []obj{
		{crashCreate, crashDeleteOrigin, thinpool.KindVolume, vName},
		{crashSnapshot, "", thinpool.KindSnapshot, sName},
		{crashRestore, crashDeleteRestore, thinpool.KindVolume, rName},
	}
	want := map[string]*thinpool.Volume{}
	for id, v := range s.model {
		want[id] = v
	}
	mayLack := map[string]bool{}
	mayHave := map[string]bool{} // kind/name of a create in flight
	for _, o := range objs {
		d, created := prog.done[o.op]
		switch {
		case prog.inFlight == o.op:
			mayHave[string(o.kind)+"/"+o.name] = true
		case !created:
		case o.del != "" && prog.finished(o.del):
		default:
			want[d.id] = &thinpool.Volume{ID: d.id, Kind: o.kind, Name: o.name, ThinID: d.thin}
			if prog.inFlight == o.del {
				mayLack[d.id] = true
			}
		}
	}
	for id, w := range want {
		v := recs[id]
		switch {
		case v == nil && mayLack[id]:
		case v == nil:
			fail("loss: %s %q (%s, thin %d) is gone, but the child saw it created and never deleted it", w.Kind, w.Name, id, w.ThinID)
			if !s.lost[id] {
				s.lost[id] = true
				s.st.losses++
			}
		case v.Kind != w.Kind || v.Name != w.Name || v.ThinID != w.ThinID:
			fail("record %s is %s %q on thin %d, not %s %q on thin %d", id, v.Kind, v.Name, v.ThinID, w.Kind, w.Name, w.ThinID)
		}
	}
	for id, v := range recs {
		if want[id] == nil && !mayHave[string(v.Kind)+"/"+v.Name] {
			fail("leak: %s %q (%s, thin %d) exists, but no create of it succeeded or was in flight", v.Kind, v.Name, id, v.ThinID)
			if !s.leaked[v.ThinID] {
				s.leaked[v.ThinID] = true
				s.st.leaks++
			}
		}
	}
}

// retry retries what the child was doing and checks that every create
// converges on one volume, then reads back the data.
func (s *crashSeries) retry(fail func(string, ...any), e *thinpool.Engine, run int, prog *crashProgress) {
	vName, sName, rName := crashNames(run)
	byName := func(kind thinpool.Kind, name string) *thinpool.Volume {
		v, err := e.GetByName(kind, name)
		if err != nil && !errors.Is(err, thinpool.ErrNotFound) {
			fail("get %s: %v", name, err)
		}
		return v
	}
	// converge retries a create that succeeded or was in flight: it must
	// succeed, return what exists (never a second volume), and return the
	// same again.
	converge := func(op crashOp, kind thinpool.Kind, name string, create func() (*thinpool.Volume, error)) *thinpool.Volume {
		had := byName(kind, name)
		a, err := create()
		if err != nil {
			fail("retried %s %q: %v", op, name, err)
			return nil
		}
		if d, ok := prog.done[op]; ok && (a.ID != d.id || a.ThinID != d.thin) {
			fail("retried %s %q gave %s (thin %d), but the child created %s (thin %d)", op, name, a.ID, a.ThinID, d.id, d.thin)
		}
		if had != nil && a.ID != had.ID {
			fail("retried %s %q created %s although %s existed", op, name, a.ID, had.ID)
		}
		b, err := create()
		if err != nil || b.ID != a.ID || b.ThinID != a.ThinID {
			fail("%s %q again: %+v, %v; want %s (thin %d)", op, name, b, err, a.ID, a.ThinID)
		}
		return a
	}
	// gone retries a delete that succeeded or was in flight.
	gone := func(op, created crashOp, kind thinpool.Kind, name string) {
		id := prog.done[created].id // a delete begins after its create
		if prog.inFlight == op {
			if err := e.Delete(context.Background(), id); err != nil && !errors.Is(err, thinpool.ErrNotFound) {
				fail("retried delete of %q: %v", name, err)
			}
		}
		if err := e.Delete(context.Background(), id); !errors.Is(err, thinpool.ErrNotFound) {
			fail("delete of %q (%s) again: %v, want not found", name, id, err)
		}
		if v := byName(kind, name); v != nil {
			fail("%q (%s) exists after its delete", name, v.ID)
		}
	}

	var v, snap, r *thinpool.Volume
	switch {
	case prog.began(crashDeleteOrigin):
		gone(crashDeleteOrigin, crashCreate, thinpool.KindVolume, vName)
	case prog.began(crashCreate):
		v = converge(crashCreate, thinpool.KindVolume, vName, func() (*thinpool.Volume, error) {
			return e.CreateVolume(context.Background(), thinpool.CreateRequest{Name: vName, RequiredBytes: crashVolBytes})
		})
	default:
		if got := byName(thinpool.KindVolume, vName); got != nil {
			fail("volume %q exists, but the child never began to create it", vName)
		}
	}
	if prog.began(crashSnapshot) {
		origin := prog.done[crashCreate].id
		snap = converge(crashSnapshot, thinpool.KindSnapshot, sName, func() (*thinpool.Volume, error) {
			return e.CreateSnapshot(context.Background(), sName, origin, nil)
		})
	}
	switch {
	case prog.began(crashDeleteRestore):
		gone(crashDeleteRestore, crashRestore, thinpool.KindVolume, rName)
	case prog.began(crashExpand):
		// A create is retried with its own parameters, so not after an
		// expand: the expand is retried instead.
		r = byName(thinpool.KindVolume, rName)
		if r == nil {
			fail("restore %q is gone", rName)
			break
		}
		if prog.inFlight == crashExpand {
			g, err := e.Expand(context.Background(), r.ID, crashGrownBytes)
			if err != nil {
				fail("retried expand of %q: %v", rName, err)
				break
			}
			r = g
		}
		if r.SizeBytes != crashGrownBytes {
			fail("restore %q is %d bytes after its expand, want %d", rName, r.SizeBytes, crashGrownBytes)
		}
		if path, err := e.DevicePath(r.ID); err == nil {
			// The child was killed with the volume active: its device
			// follows the record.
			if size, err := dm.BlockDeviceSize(path); err != nil || size != r.SizeBytes {
				fail("active restore %q: device %s is %d bytes (%v) after the expand, want %d", rName, path, size, err, r.SizeBytes)
			}
		}
	case prog.began(crashRestore):
		source := prog.done[crashSnapshot].id
		r = converge(crashRestore, thinpool.KindVolume, rName, func() (*thinpool.Volume, error) {
			return e.CreateVolume(context.Background(), thinpool.CreateRequest{Name: rName, SourceID: source})
		})
	}

	// Data: the snapshot and the restore hold pattern A, written before
	// the snapshot; the origin has pattern B over its first block since.
	a := crashPattern('A', run, crashPatternSize)
	check := func(what string, vol *thinpool.Volume, want []byte, size uint64) {
		if vol == nil {
			return
		}
		got, devSize, err := crashReadVolume(e, vol, len(want))
		if err != nil {
			fail("read %s %s: %v", what, vol.ID, err)
			return
		}
		if d := crashDiff(got, want); d != "" {
			fail("%s %s: %s", what, vol.ID, d)
		}
		if devSize != size {
			fail("%s %s: device is %d bytes, want %d", what, vol.ID, devSize, size)
		}
	}
	check("snapshot", snap, a, crashVolBytes)
	restoreSize := uint64(crashVolBytes)
	if prog.began(crashExpand) {
		restoreSize = crashGrownBytes
	}
	check("restore", r, a, restoreSize)
	if _, ok := prog.done[crashWrite]; ok && v != nil {
		want := a
		if _, ok := prog.done[crashOverwrite]; ok {
			want = append(crashPattern('B', run, crashPoolBlock), a[crashPoolBlock:]...)
		}
		check("origin", v, want, crashVolBytes)
	}
}

// final checks the pool once more after the last run.
func (s *crashSeries) final(t *testing.T) {
	t.Helper()
	e, err := thinpool.Open(s.cfg)
	if err != nil {
		t.Fatalf("the engine does not open after the last run: %v", err)
	}
	defer e.Close()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("after the last run: "+format, args...)
	}
	recs, err := crashRecords(e)
	if err != nil {
		t.Fatal(err)
	}
	s.checkThins(fail, recs)
	ids := make([]string, 0, len(recs))
	for id := range recs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if m := s.model[id]; m == nil || m.ThinID != recs[id].ThinID {
			fail("record %s changed since the last run's checks", id)
		}
	}
	if len(recs) != len(s.model) {
		fail("%d records, %d after the last run's checks", len(recs), len(s.model))
	}
}

// crashLog is a bounded, concurrency-safe buffer that keeps the last max
// bytes written to it (all of them when max is 0).
type crashLog struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (l *crashLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if l.max > 0 && len(l.b) > l.max {
		l.b = append(l.b[:0], l.b[len(l.b)-l.max:]...)
	}
	return len(p), nil
}

func (l *crashLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

func (l *crashLog) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = l.b[:0]
}

// crashQuietKlog sends the engine's log lines in this process to a buffer
// while the test runs: hundreds of recoveries would drown the summary. A
// failing run prints what its checks logged.
func crashQuietKlog(t *testing.T) *crashLog {
	logs := &crashLog{max: 64 << 10}
	klog.LogToStderr(false)
	klog.SetOutput(logs)
	t.Cleanup(func() {
		klog.Flush()
		klog.SetOutput(os.Stderr)
		klog.LogToStderr(true)
	})
	return logs
}
