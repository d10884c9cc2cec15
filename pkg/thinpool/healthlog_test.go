package thinpool

import (
	"bytes"
	"flag"
	"strings"
	"sync"
	"testing"

	"k8s.io/klog/v2"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// syncBuffer collects klog's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.b.String()
	s.b.Reset()
	return out
}

func captureKlog(t *testing.T) *syncBuffer {
	t.Helper()
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	if err := fs.Parse([]string{"-logtostderr=false", "-alsologtostderr=false", "-stderrthreshold=FATAL"}); err != nil {
		t.Fatal(err)
	}
	buf := &syncBuffer{}
	klog.SetOutput(buf)
	t.Cleanup(func() {
		klog.Flush()
		_ = fs.Parse([]string{"-logtostderr=true"})
	})
	return buf
}

// The pool's health is read on every change and health call; the log says
// once that it turned unhealthy, with the commands to run when its
// metadata is in question, and once that it is well again.
func TestHealthLoggedOncePerChange(t *testing.T) {
	for _, c := range []struct {
		name   string
		status dm.PoolStatus
		repair bool // the line names thin_check
	}{
		{"fail", dm.PoolStatus{Fail: true}, true},
		{"read-only", dm.PoolStatus{Mode: dm.PoolModeReadOnly}, true},
		{"needs_check", dm.PoolStatus{Mode: dm.PoolModeReadOnly, NeedsCheck: true}, true},
		{"out of data space", dm.PoolStatus{Mode: dm.PoolModeOutOfDataSpace, DataTotal: 16384, DataUsed: 16384}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			fk := newFakeKernel()
			e := testEngine(t, fk)
			logs := captureKlog(t)
			healthy := fk.status
			fk.status = c.status
			for range 3 {
				if err := e.Health(); err == nil {
					t.Fatal("an unhealthy pool reads healthy")
				}
			}
			klog.Flush()
			out := logs.take()
			if n := distinctLines(out, "E"); n != 1 {
				t.Fatalf("want one error line for three reads of the unhealthy pool, got %d:\n%s", n, out)
			}
			if got := strings.Contains(out, "`thin_check "); got != c.repair {
				t.Fatalf("the line names thin_check: %v, want %v:\n%s", got, c.repair, out)
			}
			fk.status = healthy
			for range 3 {
				if err := e.Health(); err != nil {
					t.Fatal(err)
				}
			}
			klog.Flush()
			if out := logs.take(); distinctLines(out, "I") != 1 || !strings.Contains(out, "healthy again") {
				t.Fatalf("want one line saying the pool is healthy again, got:\n%s", out)
			}
		})
	}
}

// distinctLines counts the different lines of a severity (klog writes a
// line once for each severity at or below its own when all share one
// output).
func distinctLines(out, severity string) int {
	seen := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, severity) {
			seen[l] = true
		}
	}
	return len(seen)
}
