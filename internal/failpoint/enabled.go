//go:build failpoints

package failpoint

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// Enabled reports whether this build arms failpoints: true with the tag
// failpoints.
const Enabled = true

// arm is whether a point is the one named by the environment, and how
// often it has been reached.
type arm struct {
	armed bool
	after int64 // kill on this hit
	hits  atomic.Int64
}

type target struct {
	name  string
	after int64
}

var armed = parse(os.Getenv(EnvVar))

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

func newArm(name string) arm {
	return arm{armed: armed.name != "" && armed.name == name, after: armed.after}
}

// Hit kills the process if this point is armed and reached for the
// configured time.
func (p *Point) Hit() {
	if !p.arm.armed {
		return
	}
	if p.arm.hits.Add(1) == p.arm.after {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way; never return into the next step
	}
}
