package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const junitA = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="Kubernetes e2e suite">
<testcase name="[SynchronizedBeforeSuite]" status="passed"></testcase>
<testcase name="[It] External Storage [Driver: d] [Testpattern: P] volumes should store data [Driver: d]" status="passed"></testcase>
<testcase name="[It] External Storage [Driver: d] [Testpattern: P] topology should fail [Driver: d]" status="skipped"><skipped message="skipped - Not enough topologies in cluster -- skipping"></skipped></testcase>
<testcase name="[It] External Storage [Driver: d] [Testpattern: P] multiVolume x [Slow] [Driver: d, Slow]" status="skipped"><skipped message="skipped"></skipped></testcase>
<testcase name="[It] External Storage [Driver: d] [Testpattern: P] disruptive y [Disruptive] [Driver: d, Disruptive]" status="skipped"><skipped message="skipped"></skipped></testcase>
<testcase name="[It] [sig-storage] other" status="skipped"><skipped message="skipped"></skipped></testcase>
</testsuite></testsuites>`

// junitB is another shard: it ran the spec junitA filtered out.
const junitB = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="Kubernetes e2e suite">
<testcase name="[It] External Storage [Driver: d] [Testpattern: P] volumes should store data [Driver: d]" status="skipped"><skipped message="skipped"></skipped></testcase>
<testcase name="[It] External Storage [Driver: d] [Testpattern: P] multiVolume x [Slow] [Driver: d, Slow]" status="failed"><failure message="timed out&#xA;more" type="failed"></failure></testcase>
</testsuite></testsuites>`

func report(t *testing.T, junits ...string) (string, int) {
	t.Helper()
	dir := t.TempDir()
	args := []string{"run", "-trimpath", ".", "-driver", "d", "-exclude", `\[Disruptive\]=needs SSH`}
	for i, j := range junits {
		f := filepath.Join(dir, "junit-"+string(rune('a'+i))+".xml")
		if err := os.WriteFile(f, []byte(j), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, f)
	}
	out, err := exec.Command("go", args...).CombinedOutput()
	code := 0
	if e, ok := err.(*exec.ExitError); ok {
		code = e.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestReport(t *testing.T) {
	out, code := report(t, junitA)
	// The [Slow] spec is filtered out with no exclusion for it.
	if code != 1 || !strings.Contains(out, "4 specs of d: 1 passed, 0 failed, 2 skipped (1 by the suite at run time, 1 excluded by the run)") ||
		!strings.Contains(out, "excluded, 1: needs SSH") || !strings.Contains(out, "Not enough topologies in cluster") ||
		!strings.Contains(out, "filtered out by no exclusion") {
		t.Errorf("one shard: exit %d\n%s", code, out)
	}
	out, code = report(t, junitA, junitB)
	if code != 1 || !strings.Contains(out, "4 specs of d: 1 passed, 1 failed, 2 skipped") ||
		!strings.Contains(out, "FAILED, 1:") || !strings.Contains(out, "failed: timed out\n") {
		t.Errorf("two shards: exit %d\n%s", code, out)
	}
}
