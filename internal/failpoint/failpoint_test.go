package failpoint

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// childEnv makes TestHitChild run: it is set only in the child processes
// TestHit starts.
const childEnv = "CSI_THIN_FAILPOINT_TEST_CHILD"

// Declared at package level, as the engine declares its points.
var testPoint = New("test.point")

// TestHitChild reaches testPoint three times and says so; TestHit runs it
// in a child process with the point armed.
func TestHitChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("runs only as a child of TestHit")
	}
	for i := 0; i < 3; i++ {
		testPoint.Hit()
	}
	os.Stdout.WriteString("passed every hit\n")
}

// TestHit runs a child process with CSI_THIN_FAILPOINT naming a point the
// child reaches. A build with the tag failpoints is killed there; any
// other build, the production binary's, ignores the variable.
func TestHit(t *testing.T) {
	cases := []struct {
		arm        string
		killedWith bool // in a failpoints build
	}{
		{"test.point", true},
		{"test.point:3", true},
		{"test.point:4", false}, // never reached a fourth time
		{"other.point", false},
		{"", false},
	}
	for _, c := range cases {
		t.Run(c.arm, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHitChild$", "-test.v")
			cmd.Env = append(os.Environ(), childEnv+"=1", EnvVar+"="+c.arm)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			killed := errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
			if err != nil && !killed {
				t.Fatalf("child failed: %v\n%s", err, out)
			}
			want := c.killedWith && Enabled
			if killed != want {
				t.Fatalf("%s=%q in a build with failpoints %v: killed %v, want %v\n%s", EnvVar, c.arm, Enabled, killed, want, out)
			}
			if !killed && !strings.Contains(string(out), "passed every hit") {
				t.Fatalf("child did not reach its points:\n%s", out)
			}
		})
	}
}

func TestNames(t *testing.T) {
	if got := Names(); len(got) != 1 || got[0] != "test.point" || testPoint.Name() != "test.point" {
		t.Fatalf("Names() = %q", got)
	}
}
