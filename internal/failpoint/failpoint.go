// Package failpoint marks the places between the steps of an operation
// where a crash test may kill the process. A point does nothing unless the
// environment variable CSI_THIN_FAILPOINT names it when the process starts:
// "name" kills the process with SIGKILL the first time the point is
// reached, "name:N" the N-th time. It is for tests only; nothing else sets
// the variable.
package failpoint

import (
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// EnvVar names the failpoint to arm.
const EnvVar = "CSI_THIN_FAILPOINT"

// Point is one named failpoint.
type Point struct {
	name  string
	armed bool
	after int64 // kill on this hit
	hits  atomic.Int64
}

var (
	mu       sync.Mutex
	registry = map[string]*Point{}
	armed    = parse(os.Getenv(EnvVar))
)

type target struct {
	name  string
	after int64
}

func parse(v string) target {
	name, n, found := strings.Cut(v, ":")
	t := target{name: name, after: 1}
	if found {
		if k, err := strconv.ParseInt(n, 10, 64); err == nil && k > 0 {
			t.after = k
		}
	}
	return t
}

// New declares a failpoint. Declare each at package level so that Names
// lists every point before any runs.
func New(name string) *Point {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[name]; dup {
		panic("failpoint " + name + " declared twice")
	}
	p := &Point{name: name, armed: armed.name == name, after: armed.after}
	registry[name] = p
	return p
}

// Hit kills the process if this point is armed and reached for the
// configured time.
func (p *Point) Hit() {
	if !p.armed {
		return
	}
	if p.hits.Add(1) == p.after {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way; never return into the next step
	}
}

// Name is the point's name.
func (p *Point) Name() string { return p.name }

// Names lists every declared failpoint, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
