// Package cluster is the Kubernetes test harness of csi-thin: the binaries
// it runs (built by build-bins at the versions pinned in go.mod) and the
// control plane (the controlplane script).
package cluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Bins is a directory of the harness's binaries, as build-bins made it.
type Bins struct {
	// Dir holds kube (with a link per component: etcd, kube-apiserver,
	// kube-controller-manager, kube-scheduler, kubelet, kubectl),
	// csi-provisioner, csi-snapshotter, snapshot-controller and csi-resizer.
	Dir string
	// Versions are the versions they were built at, by module
	// (kubernetes, etcd, external-provisioner, external-snapshotter,
	// external-resizer, go): what a test says it ran.
	Versions map[string]string
}

// Path is the path of the binary name.
func (b Bins) Path(name string) string { return filepath.Join(b.Dir, name) }

// String lists the versions, for a test's log.
func (b Bins) String() string {
	var s []string
	for _, k := range []string{"kubernetes", "etcd", "external-provisioner", "external-snapshotter", "external-resizer", "go"} {
		s = append(s, k+" "+b.Versions[k])
	}
	return strings.Join(s, ", ")
}

// moduleDir is this module's directory (where build-bins is).
func moduleDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot find the harness's directory")
	}
	return filepath.Dir(file), nil
}

// LoadBins returns the binaries: the directory in $CLUSTER_BINS if set, or
// build-bins's, which builds them unless they are cached (a cold build takes
// most of an hour on two cores: run such a test with -timeout 0).
func LoadBins(ctx context.Context) (Bins, error) {
	dir := os.Getenv("CLUSTER_BINS")
	if dir == "" {
		mod, err := moduleDir()
		if err != nil {
			return Bins{}, err
		}
		cmd := exec.CommandContext(ctx, filepath.Join(mod, "build-bins"), "-q")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return Bins{}, fmt.Errorf("test/cluster/build-bins failed (%v): see its output above", err)
		}
		dir = strings.TrimSpace(string(out))
	}
	data, err := os.ReadFile(filepath.Join(dir, "versions.txt"))
	if err != nil {
		return Bins{}, fmt.Errorf("%s is not a directory build-bins made (%v): unset CLUSTER_BINS or run test/cluster/build-bins", dir, err)
	}
	b := Bins{Dir: dir, Versions: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok {
			b.Versions[k] = v
		}
	}
	return b, nil
}
