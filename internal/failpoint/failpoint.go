// Package failpoint marks the places between the steps of an operation
// where a crash test may kill the process. Points are armed only in a
// build with the tag "failpoints", which the crash tests use; in any other
// build, the production binary among them, Hit does nothing and the
// environment variable is ignored.
//
// In a failpoints build a point does nothing unless the environment
// variable CSI_THIN_FAILPOINT names it when the process starts: "name"
// kills the process with SIGKILL the first time the point is reached,
// "name:N" the N-th time.
package failpoint

import (
	"sort"
	"sync"
)

// EnvVar names the failpoint to arm, in a build with the tag failpoints.
const EnvVar = "CSI_THIN_FAILPOINT"

// Point is one named failpoint.
type Point struct {
	name string
	arm  arm // empty without the failpoints tag
}

var (
	mu       sync.Mutex
	registry = map[string]*Point{}
)

// New declares a failpoint. Declare each at package level so that Names
// lists every point before any runs.
func New(name string) *Point {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[name]; dup {
		panic("failpoint " + name + " declared twice")
	}
	p := &Point{name: name, arm: newArm(name)}
	registry[name] = p
	return p
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
