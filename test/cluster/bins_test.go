package cluster

import (
	"context"
	"os/exec"
	"strings"
	"testing"
)

// Every binary says the version go.mod pins: what the harness reports is
// what ran.
func TestBinsReportTheirVersions(t *testing.T) {
	b, err := LoadBins(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("binaries in %s: %s", b.Dir, b)
	for _, c := range []struct {
		bin, version string
		args         []string
	}{
		{"kube-apiserver", "Kubernetes " + b.Versions["kubernetes"], []string{"--version"}},
		{"kube-controller-manager", "Kubernetes " + b.Versions["kubernetes"], []string{"--version"}},
		{"kube-scheduler", "Kubernetes " + b.Versions["kubernetes"], []string{"--version"}},
		{"kubelet", "Kubernetes " + b.Versions["kubernetes"], []string{"--version"}},
		{"kubectl", "Client Version: " + b.Versions["kubernetes"], []string{"version", "--client"}},
		{"etcd", "etcd Version: " + strings.TrimPrefix(b.Versions["etcd"], "v"), []string{"--version"}},
		{"csi-provisioner", b.Versions["external-provisioner"], []string{"--version"}},
		{"csi-snapshotter", b.Versions["external-snapshotter"], []string{"--version"}},
		{"snapshot-controller", b.Versions["external-snapshotter"], []string{"--version"}},
		{"csi-resizer", b.Versions["external-resizer"], []string{"--version"}},
	} {
		out, err := exec.Command(b.Path(c.bin), c.args...).CombinedOutput()
		if err != nil {
			t.Errorf("%s %s: %v\n%s", c.bin, strings.Join(c.args, " "), err, out)
			continue
		}
		if !strings.Contains(string(out), c.version) {
			t.Errorf("%s %s says %q, want it to contain %q", c.bin, strings.Join(c.args, " "), strings.TrimSpace(string(out)), c.version)
		}
	}
}
