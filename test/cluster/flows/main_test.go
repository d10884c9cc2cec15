// Package flows tests csi-thin in a real Kubernetes: what users do with
// PVCs, pods and VolumeSnapshots, and what they see when something fails.
// test/cluster/cluster brings the cluster up (make test-cluster); without
// it every test is skipped, saying so.
package flows

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var skipReason string

func TestMain(m *testing.M) {
	c, skipReason = clusterFromEnv()
	code := m.Run()
	if c != nil && code == 0 {
		// Every sidecar did what the chart's RBAC allows it to.
		if lines, err := forbiddenLines(); err != nil {
			fmt.Fprintln(os.Stderr, "reading the sidecars' logs:", err)
			code = 1
		} else if len(lines) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: the sidecars' logs have %d forbidden lines: the chart's RBAC lacks what they do:\n%s\n",
				len(lines), strings.Join(lines, "\n"))
			code = 1
		}
	}
	os.Exit(code)
}

func needCluster(t *testing.T) {
	t.Helper()
	if c == nil {
		t.Skip(skipReason)
	}
}

var forbidden = regexp.MustCompile(`(?i)forbidden`)

// forbiddenLines are the lines of every csi-thin and snapshot-controller
// container's log (the previous instance's too) that say an API call was
// forbidden.
func forbiddenLines() ([]string, error) {
	var found []string
	for _, ns := range []string{driverNS, "kube-system"} {
		pods, err := c.kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, p := range pods.Items {
			for _, ctr := range p.Spec.Containers {
				for _, prev := range []bool{false, true} {
					args := []string{"-n", ns, "logs", p.Name, "-c", ctr.Name}
					if prev {
						if !restarted(p.Status.ContainerStatuses, ctr.Name) {
							continue
						}
						args = append(args, "--previous")
					}
					out, err := kubectl(args...)
					if err != nil {
						return nil, err
					}
					for _, l := range strings.Split(out, "\n") {
						if forbidden.MatchString(l) {
							found = append(found, fmt.Sprintf("%s/%s %s: %s", ns, p.Name, ctr.Name, l))
						}
					}
				}
			}
		}
	}
	return found, nil
}

func restarted(st []corev1.ContainerStatus, name string) bool {
	for _, s := range st {
		if s.Name == name {
			return s.RestartCount > 0
		}
	}
	return false
}

// checkForbidden fails the test for every forbidden line so far: before a
// test deletes a pod, whose logs go with it.
func checkForbidden(t *testing.T) {
	t.Helper()
	lines, err := forbiddenLines()
	if err != nil {
		t.Fatalf("reading the sidecars' logs: %v", err)
	}
	for _, l := range lines {
		t.Errorf("forbidden in a sidecar's log (the chart's RBAC lacks it): %s", l)
	}
}
