package cluster

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The control plane comes up in its own network namespace, serves kubectl,
// and its controller-manager and scheduler act; then everything is stopped
// and removed (see the controlplane script).
func TestControlPlaneSmoke(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the control plane runs in a network namespace it creates")
	}
	b, err := LoadBins(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("binaries: %s", b)
	mod, err := moduleDir()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(mod, "controlplane"), "smoke")
	cmd.Env = append(os.Environ(), "CLUSTER_BINS="+b.Dir)
	out, err := cmd.CombinedOutput()
	t.Logf("controlplane smoke:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
}
