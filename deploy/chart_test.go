package deploy

import (
	"flag"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	groupsnapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumegroupsnapshot/v1"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/pkg/driver"
	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// The socket every container shares, and where the image puts the driver.
const (
	socketPath = "/csi/csi.sock"
	driverPath = "/usr/local/bin/csi-thin"
)

// What each value set should produce.
type expectation struct {
	kubeletDir, stateDir string
	daemonSets           []string // names
	capacity             bool
	snapshots, expansion bool
	// clusterSnapshots: csi-snapshotter runs beside the forwarder, not on
	// the nodes (snapshots.placement cluster).
	clusterSnapshots bool
	snapshotMetadata bool
	metricsPort      int32          // 0: no metrics
	counts           map[string]int // objects of each kind
}

// forwarder reports whether the value set runs the forwarder, and so the
// nodes' listener.
func (e expectation) forwarder() bool { return e.clusterSnapshots || e.snapshotMetadata }

var expectations = map[string]expectation{
	"default": {
		kubeletDir: "/var/lib/kubelet", stateDir: "/var/lib/csi-thin",
		daemonSets: []string{"csi-thin-node"},
		capacity:   true, snapshots: true, expansion: true, metricsPort: 9809,
		counts: map[string]int{"Namespace": 0, "ServiceAccount": 1, "CSIDriver": 1, "ClusterRole": 3, "ClusterRoleBinding": 3,
			"Role": 2, "RoleBinding": 2, "DaemonSet": 1, "StorageClass": 1, "VolumeSnapshotClass": 1},
	},
	"full": {
		kubeletDir: "/var/snap/microk8s/common/var/lib/kubelet", stateDir: "/srv/csi-thin",
		daemonSets: []string{"storage-thin-node", "storage-thin-node-loop", "storage-thin-node-big"},
		capacity:   true, snapshots: true, expansion: true, metricsPort: 19809,
		clusterSnapshots: true, snapshotMetadata: true,
		counts: map[string]int{"Namespace": 1, "ServiceAccount": 2, "CSIDriver": 1, "ClusterRole": 4, "ClusterRoleBinding": 4,
			"Role": 3, "RoleBinding": 3, "DaemonSet": 3, "StorageClass": 1, "VolumeSnapshotClass": 1, "VolumeGroupSnapshotClass": 1,
			"Deployment": 1, "Service": 2, "Secret": 2, "SnapshotMetadataService": 1},
	},
	"minimal": {
		kubeletDir: "/var/lib/kubelet", stateDir: "/var/lib/csi-thin",
		daemonSets: []string{"csi-thin-node-storage"},
		counts: map[string]int{"Namespace": 0, "ServiceAccount": 0, "CSIDriver": 1, "ClusterRole": 1, "ClusterRoleBinding": 1,
			"Role": 0, "RoleBinding": 0, "DaemonSet": 1, "StorageClass": 0, "VolumeSnapshotClass": 0},
	},
	"snapshot-metadata": {
		kubeletDir: "/var/lib/kubelet", stateDir: "/var/lib/csi-thin",
		daemonSets: []string{"csi-thin-node"},
		capacity:   true, snapshots: true, expansion: true, metricsPort: 9809,
		snapshotMetadata: true,
		counts: map[string]int{"Namespace": 0, "ServiceAccount": 2, "CSIDriver": 1, "ClusterRole": 4, "ClusterRoleBinding": 4,
			"Role": 2, "RoleBinding": 2, "DaemonSet": 1, "StorageClass": 1, "VolumeSnapshotClass": 1,
			"Deployment": 1, "Service": 2, "Secret": 2, "SnapshotMetadataService": 1},
	},
	"cluster-snapshots": {
		kubeletDir: "/var/lib/kubelet", stateDir: "/var/lib/csi-thin",
		daemonSets: []string{"csi-thin-node"},
		capacity:   true, snapshots: true, expansion: true, metricsPort: 9809,
		clusterSnapshots: true,
		counts: map[string]int{"Namespace": 0, "ServiceAccount": 2, "CSIDriver": 1, "ClusterRole": 3, "ClusterRoleBinding": 3,
			"Role": 3, "RoleBinding": 3, "DaemonSet": 1, "StorageClass": 1, "VolumeSnapshotClass": 1, "VolumeGroupSnapshotClass": 1,
			"Deployment": 1, "Service": 1, "Secret": 2},
	},
	"manifests": {
		kubeletDir: "/var/lib/kubelet", stateDir: "/var/lib/csi-thin",
		daemonSets: []string{"csi-thin-node"},
		capacity:   true, snapshots: true, expansion: true, metricsPort: 9809,
		counts: map[string]int{"Namespace": 1, "ServiceAccount": 1, "CSIDriver": 1, "ClusterRole": 3, "ClusterRoleBinding": 3,
			"Role": 2, "RoleBinding": 2, "DaemonSet": 1, "StorageClass": 1, "VolumeSnapshotClass": 1},
	},
}

// forEachValueSet runs f for each value set, with its rendered objects.
func forEachValueSet(t *testing.T, f func(t *testing.T, v valueSet, want expectation, objs []object)) {
	for _, v := range valueSets {
		t.Run(v.name, func(t *testing.T) {
			want, ok := expectations[v.name]
			if !ok {
				t.Fatalf("no expectation for value set %s", v.name)
			}
			f(t, v, want, render(t, v))
		})
	}
}

// forEachDaemonSet runs f for each node DaemonSet of each value set.
func forEachDaemonSet(t *testing.T, f func(t *testing.T, v valueSet, want expectation, ds *appsv1.DaemonSet)) {
	forEachValueSet(t, func(t *testing.T, v valueSet, want expectation, objs []object) {
		for _, ds := range daemonSets(objs) {
			t.Run(ds.Name, func(t *testing.T) { f(t, v, want, ds) })
		}
	})
}

// deref shows what a pointer field holds, for messages.
func deref[T any](p *T) any {
	if p == nil {
		return "<unset>"
	}
	return *p
}

func daemonSets(objs []object) []*appsv1.DaemonSet { return ofKind[appsv1.DaemonSet](objs) }

func container(ds *appsv1.DaemonSet, name string) *corev1.Container {
	for i, c := range ds.Spec.Template.Spec.Containers {
		if c.Name == name {
			return &ds.Spec.Template.Spec.Containers[i]
		}
	}
	return nil
}

func mustContainer(t *testing.T, ds *appsv1.DaemonSet, name string) *corev1.Container {
	t.Helper()
	c := container(ds, name)
	if c == nil {
		t.Fatalf("DaemonSet %s has no container %s", ds.Name, name)
	}
	return c
}

func volume(ds *appsv1.DaemonSet, name string) *corev1.Volume {
	for i, v := range ds.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return &ds.Spec.Template.Spec.Volumes[i]
		}
	}
	return nil
}

func mount(c *corev1.Container, name string) *corev1.VolumeMount {
	for i, m := range c.VolumeMounts {
		if m.Name == name {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// hostPath returns the host path of a hostPath volume and its type.
func hostPath(t *testing.T, ds *appsv1.DaemonSet, name string) (string, corev1.HostPathType) {
	t.Helper()
	v := volume(ds, name)
	if v == nil || v.HostPath == nil {
		t.Fatalf("DaemonSet %s has no hostPath volume %s", ds.Name, name)
	}
	typ := corev1.HostPathUnset
	if v.HostPath.Type != nil {
		typ = *v.HostPath.Type
	}
	return v.HostPath.Path, typ
}

// flags returns a sidecar's --name=value arguments (a bare --name is
// "true"), failing on a positional argument or a flag given twice.
func flags(t *testing.T, c *corev1.Container) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, a := range c.Args {
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			t.Errorf("container %s: argument %q is not a --flag", c.Name, a)
			continue
		}
		value := "true"
		if n, v, ok := strings.Cut(name, "="); ok {
			name, value = n, v
		}
		if _, dup := m[name]; dup {
			t.Errorf("container %s: --%s is given twice", c.Name, name)
		}
		m[name] = value
	}
	return m
}

// fieldEnv returns the container's environment variables set from the
// downward API, by name, as their field paths.
func fieldEnv(c *corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			m[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	return m
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand substitutes $(VAR) in the arguments as kubelet does, from the
// given values, and checks each such variable is in the container's env.
func expand(t *testing.T, c *corev1.Container, values map[string]string) []string {
	t.Helper()
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = true
	}
	var out []string
	for _, a := range c.Args {
		out = append(out, varRef.ReplaceAllStringFunc(a, func(ref string) string {
			name := varRef.FindStringSubmatch(ref)[1]
			if !env[name] {
				t.Errorf("container %s: argument %q refers to $(%s), which its env does not set", c.Name, a, name)
			}
			if v, ok := values[name]; ok {
				return v
			}
			t.Errorf("container %s: no test value for $(%s)", c.Name, name)
			return ref
		}))
	}
	return out
}

// parseDriverArgs parses the csi-thin container's arguments with the
// command's own flags (cmd/csi-thin: klog's and the driver's options) and
// validates them as the command does before it starts.
func parseDriverArgs(t *testing.T, c *corev1.Container) driver.Options {
	t.Helper()
	fs := flag.NewFlagSet("csi-thin", flag.ContinueOnError)
	klog.InitFlags(fs)
	opts := driver.DefaultOptions()
	opts.AddFlags(fs)
	args := expand(t, c, map[string]string{"NODE_NAME": "node-a"})
	if err := fs.Parse(args); err != nil {
		t.Fatalf("csi-thin rejects its arguments %q: %v", args, err)
	}
	if fs.NArg() > 0 {
		t.Fatalf("csi-thin would refuse positional arguments %q", fs.Args())
	}
	if err := opts.Validate(); err != nil {
		t.Fatalf("csi-thin %q: %v", args, err)
	}
	// Explicit flags only: a default in the chart that silently differed
	// from the binary's would be hard to see.
	for _, name := range []string{"endpoint", "node-id", "state-dir", "pool-name", "block-size",
		"overprovision-ratio", "data-reserve-percent", "metadata-reserve-percent", "error-if-no-space", "max-volumes"} {
		if _, ok := flags(t, c)[name]; !ok {
			t.Errorf("csi-thin: --%s is not set explicitly", name)
		}
	}
	return opts
}

func TestChartLint(t *testing.T) {
	for _, v := range valueSets {
		t.Run(v.name, func(t *testing.T) {
			args := append([]string{"lint", "--strict", chartDir, "--namespace", namespace}, v.args()...)
			if out, err := runHelm(t, args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// TestRenderedObjects checks what each value set renders: every object
// decodes strictly (render fails otherwise), the kinds and counts, names
// unique, and namespaces where they belong.
func TestRenderedObjects(t *testing.T) {
	clusterScoped := map[string]bool{"Namespace": true, "CSIDriver": true, "StorageClass": true,
		"ClusterRole": true, "ClusterRoleBinding": true, "VolumeSnapshotClass": true, "VolumeGroupSnapshotClass": true,
		"SnapshotMetadataService": true}
	forEachValueSet(t, func(t *testing.T, _ valueSet, want expectation, objs []object) {
		counts := map[string]int{}
		seen := map[string]bool{}
		for _, o := range objs {
			counts[o.kind]++
			key := o.kind + "/" + o.namespace + "/" + o.name
			if seen[key] {
				t.Errorf("%v is rendered twice", o)
			}
			seen[key] = true
			switch {
			case clusterScoped[o.kind] && o.namespace != "":
				t.Errorf("%v is cluster-scoped but has namespace %q", o, o.namespace)
			case !clusterScoped[o.kind] && o.namespace != namespace:
				t.Errorf("%v is in namespace %q, not the release namespace %q", o, o.namespace, namespace)
			}
		}
		for kind, n := range want.counts {
			if counts[kind] != n {
				t.Errorf("%d %s objects, want %d", counts[kind], kind, n)
			}
		}
		for kind := range counts {
			if _, ok := want.counts[kind]; !ok {
				t.Errorf("unexpected kind %s", kind)
			}
		}
		var names []string
		for _, ds := range daemonSets(objs) {
			names = append(names, ds.Name)
		}
		if !slices.Equal(names, want.daemonSets) {
			t.Errorf("DaemonSets %v, want %v", names, want.daemonSets)
		}
	})
}

// TestStrictDecoding checks that decoding is strict: these documents must
// be refused.
func TestStrictDecoding(t *testing.T) {
	tests := []struct {
		name, doc string
		ok        bool
	}{
		{"valid", "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: a\nspec:\n  template:\n    spec:\n      nodeSelector: {a: b}\n", true},
		{"unknown field", "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: a\nspec:\n  template:\n    spec:\n      nodeSelectr: {a: b}\n", false},
		{"field in the wrong case", "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: a\nspec:\n  template:\n    spec:\n      NodeSelector: {a: b}\n", false},
		{"duplicate field", "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n  name: b\n", false},
		{"unknown kind", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n", false},
		{"misplaced field", "apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata:\n  name: a\nattachRequired: false\n", false},
		{"wrong type", "apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata:\n  name: a\nspec:\n  attachRequired: \"no\"\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeStrict([]byte(tt.doc))
			if (err == nil) != tt.ok {
				t.Errorf("decodeStrict: error %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestCSIDriver(t *testing.T) {
	forEachValueSet(t, func(t *testing.T, v valueSet, want expectation, objs []object) {
		d := one[storagev1.CSIDriver](t, objs)
		if d.Name != volcap.DriverName {
			t.Errorf("CSIDriver %q, want the driver's name %q", d.Name, volcap.DriverName)
		}
		if d.Spec.AttachRequired == nil || *d.Spec.AttachRequired {
			t.Errorf("attachRequired %v, want false: node-local volumes attach nowhere", deref(d.Spec.AttachRequired))
		}
		if d.Spec.PodInfoOnMount == nil || !*d.Spec.PodInfoOnMount {
			t.Errorf("podInfoOnMount %v, want true", deref(d.Spec.PodInfoOnMount))
		}
		if d.Spec.StorageCapacity == nil || *d.Spec.StorageCapacity != want.capacity {
			t.Errorf("storageCapacity %v, want %v", deref(d.Spec.StorageCapacity), want.capacity)
		}
		wantPolicy := storagev1.FileFSGroupPolicy
		if v.name == "full" {
			wantPolicy = storagev1.ReadWriteOnceWithFSTypeFSGroupPolicy
		}
		if d.Spec.FSGroupPolicy == nil || *d.Spec.FSGroupPolicy != wantPolicy {
			t.Errorf("fsGroupPolicy %v, want %s", deref(d.Spec.FSGroupPolicy), wantPolicy)
		}
		if !slices.Equal(d.Spec.VolumeLifecycleModes, []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent}) {
			t.Errorf("volumeLifecycleModes %v, want [Persistent]", d.Spec.VolumeLifecycleModes)
		}
	})
}

// TestDriverContainer checks the csi-thin container: the image's binary,
// arguments the binary accepts, privileged, the node name from the
// downward API, and its host paths.
func TestDriverContainer(t *testing.T) {
	forEachDaemonSet(t, func(t *testing.T, _ valueSet, want expectation, ds *appsv1.DaemonSet) {
		c := mustContainer(t, ds, "csi-thin")
		if !slices.Equal(c.Command, []string{driverPath}) {
			t.Errorf("command %q, want [%s], where the Dockerfile puts the binary", c.Command, driverPath)
		}
		if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
			t.Errorf("csi-thin is not privileged: it creates device-mapper and loop devices and mounts filesystems")
		}
		if got := fieldEnv(c)["NODE_NAME"]; got != "spec.nodeName" {
			t.Errorf("NODE_NAME from %q, want the downward API's spec.nodeName", got)
		}
		opts := parseDriverArgs(t, c)
		if opts.NodeID != "node-a" {
			t.Errorf("--node-id %q, want $(NODE_NAME)", opts.NodeID)
		}
		if opts.Endpoint != "unix://"+socketPath {
			t.Errorf("--endpoint %q, want unix://%s", opts.Endpoint, socketPath)
		}

		// Metrics on the port named "metrics", or none.
		var metricsPort int32
		for _, p := range c.Ports {
			if p.Name == "metrics" {
				metricsPort = p.ContainerPort
			}
		}
		wantAddr := ""
		if want.metricsPort != 0 {
			wantAddr = ":" + strconv.Itoa(int(want.metricsPort))
		}
		if opts.MetricsAddress != wantAddr || metricsPort != want.metricsPort {
			t.Errorf("--metrics-address %q and port metrics %d, want %q and %d", opts.MetricsAddress, metricsPort, wantAddr, want.metricsPort)
		}

		// The state directory: a hostPath at the same path.
		if opts.StateDir != want.stateDir {
			t.Errorf("--state-dir %q, want %q", opts.StateDir, want.stateDir)
		}
		if m := mount(c, "state-dir"); m == nil || m.MountPath != opts.StateDir {
			t.Errorf("state-dir mount %+v, want it at --state-dir %s", m, opts.StateDir)
		}
		if p, typ := hostPath(t, ds, "state-dir"); p != want.stateDir || typ != corev1.HostPathDirectoryOrCreate {
			t.Errorf("state-dir hostPath %q (%s), want %q (DirectoryOrCreate)", p, typ, want.stateDir)
		}

		// The kubelet directory, mounted at its host path, Bidirectional:
		// the stage and publish mounts csi-thin makes must reach the host.
		m := mount(c, "kubelet-dir")
		if m == nil || m.MountPath != want.kubeletDir {
			t.Fatalf("kubelet-dir mount %+v, want it at %s", m, want.kubeletDir)
		}
		if m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationBidirectional {
			t.Errorf("kubelet-dir mountPropagation %v, want Bidirectional", deref(m.MountPropagation))
		}
		if p, typ := hostPath(t, ds, "kubelet-dir"); p != want.kubeletDir || typ != corev1.HostPathDirectory {
			t.Errorf("kubelet-dir hostPath %q (%s), want %q (Directory)", p, typ, want.kubeletDir)
		}

		// The host's /dev: loop devices, /dev/mapper/control, thin devices.
		if m := mount(c, "dev"); m == nil || m.MountPath != "/dev" {
			t.Errorf("dev mount %+v, want /dev", m)
		}
		if p, _ := hostPath(t, ds, "dev"); p != "/dev" {
			t.Errorf("dev hostPath %q, want /dev", p)
		}

		// Bidirectional propagation is allowed only in privileged containers.
		for _, other := range ds.Spec.Template.Spec.Containers {
			privileged := other.SecurityContext != nil && other.SecurityContext.Privileged != nil && *other.SecurityContext.Privileged
			for _, m := range other.VolumeMounts {
				if m.MountPropagation != nil && *m.MountPropagation == corev1.MountPropagationBidirectional && !privileged {
					t.Errorf("container %s mounts %s Bidirectional without being privileged", other.Name, m.Name)
				}
			}
			if other.Name != "csi-thin" && privileged {
				t.Errorf("sidecar %s is privileged; only csi-thin needs to be", other.Name)
			}
		}

		// The liveness probe goes to the livenessprobe sidecar's port.
		lp := mustContainer(t, ds, "livenessprobe")
		_, port, err := net.SplitHostPort(flags(t, lp)["http-endpoint"])
		if err != nil {
			t.Fatalf("livenessprobe --http-endpoint: %v", err)
		}
		probe := c.LivenessProbe
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != "/healthz" {
			t.Fatalf("csi-thin livenessProbe %+v, want an HTTP GET of /healthz", probe)
		}
		var found bool
		for _, p := range c.Ports {
			if p.Name == probe.HTTPGet.Port.String() {
				found = true
				if strconv.Itoa(int(p.ContainerPort)) != port {
					t.Errorf("csi-thin probes port %s (%d), but livenessprobe listens on %s", p.Name, p.ContainerPort, port)
				}
			}
		}
		if !found {
			t.Errorf("csi-thin livenessProbe port %q is not one of its ports", probe.HTTPGet.Port.String())
		}
	})
}

// TestOneSocket checks that every container reaches csi-thin through one
// socket, /csi/csi.sock on the socket-dir volume, and that kubelet is told
// its host path.
func TestOneSocket(t *testing.T) {
	forEachDaemonSet(t, func(t *testing.T, _ valueSet, want expectation, ds *appsv1.DaemonSet) {
		socketDir := want.kubeletDir + "/plugins/" + volcap.DriverName
		if p, typ := hostPath(t, ds, "socket-dir"); p != socketDir || typ != corev1.HostPathDirectoryOrCreate {
			t.Errorf("socket-dir hostPath %q (%s), want %q (DirectoryOrCreate)", p, typ, socketDir)
		}
		for i := range ds.Spec.Template.Spec.Containers {
			c := &ds.Spec.Template.Spec.Containers[i]
			if m := mount(c, "socket-dir"); m == nil || m.MountPath != "/csi" {
				t.Errorf("container %s: socket-dir mount %+v, want /csi", c.Name, m)
			}
			if c.Name == "csi-thin" {
				if got := flags(t, c)["endpoint"]; got != "unix://"+socketPath {
					t.Errorf("csi-thin --endpoint %q, want unix://%s", got, socketPath)
				}
				continue
			}
			if got := flags(t, c)["csi-address"]; got != socketPath {
				t.Errorf("container %s: --csi-address %q, want %s", c.Name, got, socketPath)
			}
		}
		reg := mustContainer(t, ds, "node-driver-registrar")
		if got := flags(t, reg)["kubelet-registration-path"]; got != socketDir+"/csi.sock" {
			t.Errorf("--kubelet-registration-path %q, want %s/csi.sock", got, socketDir)
		}
		if m := mount(reg, "registration-dir"); m == nil || m.MountPath != "/registration" {
			t.Errorf("registration-dir mount %+v, want /registration", m)
		}
		if p, typ := hostPath(t, ds, "registration-dir"); p != want.kubeletDir+"/plugins_registry" || typ != corev1.HostPathDirectory {
			t.Errorf("registration-dir hostPath %q (%s), want %s/plugins_registry (Directory)", p, typ, want.kubeletDir)
		}
	})
}

// TestSidecarFlags checks each sidecar's flags and environment: distributed
// provisioning with capacity tracking, distributed snapshotting, one
// resizer by leader election, and the probes' endpoints.
func TestSidecarFlags(t *testing.T) {
	type sidecar struct {
		name    string
		present bool
		flags   map[string]string // flag -> value
		absent  []string          // flags that must not be set, and why
		env     map[string]string // name -> field path
	}
	forEachDaemonSet(t, func(t *testing.T, _ valueSet, want expectation, ds *appsv1.DaemonSet) {
		provisioner := map[string]string{
			"node-deployment": "true", "leader-election": "false",
			"node-deployment-immediate-binding": "false",
			"strict-topology":                   "true", "immediate-topology": "false",
			"extra-create-metadata": "true",
		}
		if want.capacity {
			provisioner["enable-capacity"] = "true"
			// The DaemonSet owns its nodes' CSIStorageCapacity objects.
			provisioner["capacity-ownerref-level"] = "1"
		}
		sidecars := []sidecar{
			{name: "node-driver-registrar", present: true},
			{
				name: "csi-provisioner", present: true, flags: provisioner,
				// --default-fstype would put an fsType in every request and
				// so override the StorageClass's fsType parameter.
				absent: []string{"default-fstype"},
				env:    map[string]string{"NODE_NAME": "spec.nodeName", "NAMESPACE": "metadata.namespace", "POD_NAME": "metadata.name"},
			},
			{
				name: "csi-snapshotter", present: want.snapshots && !want.clusterSnapshots,
				flags: map[string]string{"node-deployment": "true", "leader-election": "false"},
				env:   map[string]string{"NODE_NAME": "spec.nodeName"},
			},
			{
				name: "csi-resizer", present: want.expansion,
				flags: map[string]string{"leader-election": "true", "leader-election-namespace": "$(NAMESPACE)"},
				env:   map[string]string{"NAMESPACE": "metadata.namespace"},
			},
			{name: "livenessprobe", present: true},
		}
		var names []string
		for _, sc := range sidecars {
			c := container(ds, sc.name)
			if (c != nil) != sc.present {
				t.Errorf("sidecar %s present %v, want %v", sc.name, c != nil, sc.present)
			}
			if c == nil {
				continue
			}
			names = append(names, sc.name)
			got := flags(t, c)
			for f, v := range sc.flags {
				if got[f] != v {
					t.Errorf("%s --%s=%q, want %q", sc.name, f, got[f], v)
				}
			}
			for _, f := range sc.absent {
				if _, ok := got[f]; ok {
					t.Errorf("%s sets --%s", sc.name, f)
				}
			}
			env := fieldEnv(c)
			for name, path := range sc.env {
				if env[name] != path {
					t.Errorf("%s env %s from %q, want %q", sc.name, name, env[name], path)
				}
			}
			expand(t, c, map[string]string{"NODE_NAME": "node-a", "NAMESPACE": namespace, "POD_NAME": "pod-a"})
			if c.Image == "" || (!strings.Contains(c.Image, "@sha256:") && !regexp.MustCompile(`:v\d+\.\d+\.\d+$`).MatchString(c.Image)) {
				t.Errorf("%s image %q is not pinned to a release tag or digest", sc.name, c.Image)
			}
		}
		for _, c := range ds.Spec.Template.Spec.Containers {
			if c.Name != "csi-thin" && !slices.Contains(names, c.Name) {
				t.Errorf("unexpected container %s", c.Name)
			}
		}
	})
}

// TestImages checks the image references: the sidecars' default images
// are upstream releases, and digests win over tags.
func TestImages(t *testing.T) {
	upstream := regexp.MustCompile(`^registry\.k8s\.io/sig-storage/(csi-node-driver-registrar|csi-provisioner|csi-snapshotter|csi-resizer|livenessprobe):v\d+\.\d+\.\d+$`)
	forEachDaemonSet(t, func(t *testing.T, v valueSet, _ expectation, ds *appsv1.DaemonSet) {
		full := v.name == "full"
		for _, c := range ds.Spec.Template.Spec.Containers {
			switch {
			case c.Name == "csi-thin" && full:
				if want := "registry.example.com/storage/csi-thin@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"; c.Image != want {
					t.Errorf("csi-thin image %q, want %q", c.Image, want)
				}
			case c.Name == "csi-thin":
				if want := "ghcr.io/csi-thin/csi-thin:0.1.0"; c.Image != want {
					t.Errorf("csi-thin image %q, want %q (the chart's appVersion)", c.Image, want)
				}
			case full:
				if !strings.HasPrefix(c.Image, "registry.example.com/sig-storage/") {
					t.Errorf("%s image %q ignores the override", c.Name, c.Image)
				}
			case !upstream.MatchString(c.Image):
				t.Errorf("%s image %q is not a pinned upstream release", c.Name, c.Image)
			}
		}
	})
}

// nodeAffinity returns the DaemonSet's single node affinity term, or nil.
func nodeAffinity(t *testing.T, ds *appsv1.DaemonSet) []corev1.NodeSelectorRequirement {
	t.Helper()
	a := ds.Spec.Template.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) != 1 {
		t.Fatalf("%s: %d node selector terms, want 1", ds.Name, len(terms))
	}
	return terms[0].MatchExpressions
}

// selects reports whether a DaemonSet's node affinity admits a node with
// the given labels.
func selects(t *testing.T, ds *appsv1.DaemonSet, labels map[string]string) bool {
	for _, r := range nodeAffinity(t, ds) {
		v, has := labels[r.Key]
		switch r.Operator {
		case corev1.NodeSelectorOpIn:
			if !has || !slices.Contains(r.Values, v) {
				return false
			}
		case corev1.NodeSelectorOpNotIn:
			if has && slices.Contains(r.Values, v) {
				return false
			}
		default:
			t.Fatalf("%s: operator %s not expected", ds.Name, r.Operator)
		}
	}
	return true
}

// TestNodeGroups checks the per-node-group DaemonSets: their selectors are
// distinct, every node runs at most one csi-thin (exactly one unless only
// groups run it), and each group's pool overrides reach its arguments.
func TestNodeGroups(t *testing.T) {
	forEachValueSet(t, func(t *testing.T, v valueSet, _ expectation, objs []object) {
		dss := daemonSets(objs)
		groupLabel := "csi-thin.io/node-group"
		if v.name == "full" {
			groupLabel = "example.com/storage-tier"
		}
		seen := map[string]string{}
		for _, ds := range dss {
			sel := ds.Spec.Selector.MatchLabels
			for k, val := range sel {
				if ds.Spec.Template.Labels[k] != val {
					t.Errorf("%s: selector %s=%s does not match the pod template", ds.Name, k, val)
				}
			}
			group := sel["csi-thin.io/node-group"]
			if other, dup := seen[group]; dup || group == "" {
				t.Errorf("%s: selector group %q is not distinct (also %s)", ds.Name, group, other)
			}
			seen[group] = ds.Name
		}
		for _, value := range []string{"", "loopback", "test", "big", "storage", "other"} {
			labels := map[string]string{}
			if value != "" {
				labels[groupLabel] = value
			}
			var running []string
			for _, ds := range dss {
				if selects(t, ds, labels) {
					running = append(running, ds.Name)
				}
			}
			wantOne := v.name != "minimal" || value == "storage"
			if len(running) > 1 || (wantOne && len(running) != 1) {
				t.Errorf("a node labelled %s=%q runs %v", groupLabel, value, running)
			}
		}
		if v.name != "full" {
			return
		}
		// Each group's pool is the default pool with its overrides.
		tests := []struct {
			ds   string
			want map[string]string
			not  []string
		}{
			{"storage-thin-node", map[string]string{"pool-name": "thin-a", "data-device": "/dev/disk/by-id/nvme-data",
				"metadata-device": "/dev/disk/by-id/nvme-meta", "block-size": "128Ki", "overprovision-ratio": "2.5",
				"data-reserve-percent": "7.5", "metadata-reserve-percent": "12", "error-if-no-space": "false",
				"max-volumes": "1000000", "state-dir": "/srv/csi-thin", "v": "5"}, []string{"pool-size", "pool-max-size"}},
			{"storage-thin-node-loop", map[string]string{"pool-name": "thin-loop", "pool-size": "500Gi", "block-size": "128Ki",
				"error-if-no-space": "true", "max-volumes": "1000000",
				"pool-max-size": "2Ti", "pool-grow-percent": "10", "pool-fs-reserve-percent": "15"}, []string{"data-device", "metadata-device"}},
			{"storage-thin-node-big", map[string]string{"pool-name": "thin-a", "data-device": "/dev/disk/by-id/nvme-data",
				"block-size": "1Mi", "overprovision-ratio": "1", "max-volumes": "0", "error-if-no-space": "false"}, []string{"pool-size"}},
		}
		for _, tt := range tests {
			var ds *appsv1.DaemonSet
			for _, d := range dss {
				if d.Name == tt.ds {
					ds = d
				}
			}
			if ds == nil {
				t.Errorf("no DaemonSet %s", tt.ds)
				continue
			}
			got := flags(t, mustContainer(t, ds, "csi-thin"))
			for f, want := range tt.want {
				if got[f] != want {
					t.Errorf("%s: --%s=%q, want %q", tt.ds, f, got[f], want)
				}
			}
			for _, f := range tt.not {
				if _, ok := got[f]; ok {
					t.Errorf("%s: --%s is set", tt.ds, f)
				}
			}
		}
	})
}

func TestStorageClass(t *testing.T) {
	forEachValueSet(t, func(t *testing.T, v valueSet, want expectation, objs []object) {
		classes := ofKind[storagev1.StorageClass](objs)
		if want.counts["StorageClass"] == 0 {
			return
		}
		sc := classes[0]
		if sc.Provisioner != volcap.DriverName {
			t.Errorf("provisioner %q, want %q", sc.Provisioner, volcap.DriverName)
		}
		if sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
			t.Errorf("volumeBindingMode %v, want WaitForFirstConsumer", deref(sc.VolumeBindingMode))
		}
		if sc.AllowVolumeExpansion == nil || *sc.AllowVolumeExpansion != want.expansion {
			t.Errorf("allowVolumeExpansion %v, want %v", deref(sc.AllowVolumeExpansion), want.expansion)
		}
		// The driver must accept the class's parameters.
		ctx, err := volcap.Parameters(sc.Parameters)
		if err != nil {
			t.Errorf("csi-thin refuses the StorageClass parameters %v: %v", sc.Parameters, err)
		}
		wantFs, wantReclaim, wantDefault := "ext4", corev1.PersistentVolumeReclaimDelete, ""
		if v.name == "full" {
			wantFs, wantReclaim, wantDefault = "xfs", corev1.PersistentVolumeReclaimRetain, "true"
			if ctx[volcap.ParamBlockSize] != "4096" || ctx[volcap.ParamInodeSize] != "1024" || !slices.Equal(sc.MountOptions, []string{"noatime"}) {
				t.Errorf("parameters %v, mountOptions %v: overrides lost", ctx, sc.MountOptions)
			}
		}
		if ctx[volcap.ParamFsType] != wantFs {
			t.Errorf("fsType %q, want %q", ctx[volcap.ParamFsType], wantFs)
		}
		if sc.ReclaimPolicy == nil || *sc.ReclaimPolicy != wantReclaim {
			t.Errorf("reclaimPolicy %v, want %s", deref(sc.ReclaimPolicy), wantReclaim)
		}
		if got := sc.Annotations["storageclass.kubernetes.io/is-default-class"]; got != wantDefault {
			t.Errorf("is-default-class %q, want %q", got, wantDefault)
		}
	})
}

func TestVolumeSnapshotClass(t *testing.T) {
	forEachValueSet(t, func(t *testing.T, v valueSet, want expectation, objs []object) {
		if want.counts["VolumeSnapshotClass"] == 0 {
			return
		}
		c := one[snapshotv1.VolumeSnapshotClass](t, objs)
		if c.Driver != volcap.DriverName {
			t.Errorf("driver %q, want %q", c.Driver, volcap.DriverName)
		}
		if len(c.Parameters) > 0 {
			t.Errorf("parameters %v: csi-thin takes none", c.Parameters)
		}
		wantPolicy := snapshotv1.VolumeSnapshotContentDelete
		if v.name == "full" {
			wantPolicy = snapshotv1.VolumeSnapshotContentRetain
		}
		if c.DeletionPolicy != wantPolicy {
			t.Errorf("deletionPolicy %s, want %s", c.DeletionPolicy, wantPolicy)
		}
	})
}

// TestVolumeGroupSnapshotClass: the class exists only where group
// snapshots can be taken, beside the cluster's csi-snapshotter, for the
// driver, without parameters.
func TestVolumeGroupSnapshotClass(t *testing.T) {
	forEachValueSet(t, func(t *testing.T, v valueSet, want expectation, objs []object) {
		classes := ofKind[groupsnapshotv1.VolumeGroupSnapshotClass](objs)
		if (len(classes) == 1) != want.clusterSnapshots || len(classes) > 1 {
			t.Fatalf("%d VolumeGroupSnapshotClasses, want one only with snapshots in cluster placement (%v)", len(classes), want.clusterSnapshots)
		}
		if len(classes) == 0 {
			return
		}
		c := classes[0]
		if c.Driver != volcap.DriverName || len(c.Parameters) > 0 {
			t.Errorf("driver %q, parameters %v; want %q and none", c.Driver, c.Parameters, volcap.DriverName)
		}
		wantName, wantPolicy, wantDefault := "csi-thin", snapshotv1.VolumeSnapshotContentDelete, ""
		if v.name == "full" {
			wantName, wantPolicy, wantDefault = "thin-groups", snapshotv1.VolumeSnapshotContentRetain, "true"
		}
		if c.Name != wantName || c.DeletionPolicy != wantPolicy || c.Annotations["groupsnapshot.storage.kubernetes.io/is-default-class"] != wantDefault {
			t.Errorf("class %s, deletionPolicy %s, is-default-class %q; want %s, %s, %q", c.Name, c.DeletionPolicy,
				c.Annotations["groupsnapshot.storage.kubernetes.io/is-default-class"], wantName, wantPolicy, wantDefault)
		}
	})
}

// TestBadValues checks that values.schema.json and the templates refuse
// values the driver would refuse, or that would break the deployment.
func TestBadValues(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in helm's error
	}{
		{"misspelled key", []string{"--set", "pool.sise=1Gi"}, "sise"},
		{"data device alone", []string{"--set", "pool.dataDevice=/dev/sdb"}, "dataDevice"},
		{"metadata device alone in a group", []string{"--set", "nodeGroups[0].name=a", "--set", "nodeGroups[0].pool.metadataDevice=/dev/sdc"}, "dataDevice"},
		{"unsupported filesystem", []string{"--set", "storageClass.fsType=btrfs"}, "fsType"},
		{"raw mkfs arguments", []string{"--set", "storageClass.mkfsOptions=-d /var/lib/kubelet"}, "mkfsOptions"},
		{"unknown formatting parameter", []string{"--set", "storageClass.formatParameters.mkfsOptions=-K"}, "mkfsOptions"},
		{"formatting parameter with an argument", []string{"--set", "storageClass.formatParameters.blockSize=4096 -d /"}, "blockSize"},
		{"bigalloc not a bool", []string{"--set", "storageClass.formatParameters.ext4BigAlloc=yes"}, "ext4BigAlloc"},
		{"size unit", []string{"--set", "pool.size=100GB"}, "size"},
		{"block size unit", []string{"--set", "pool.blockSize=64KB"}, "blockSize"},
		{"overprovision below 1", []string{"--set-json", "pool.overprovisionRatio=0.5"}, "overprovisionRatio"},
		{"reserve of 100%", []string{"--set-json", "pool.dataReservePercent=100"}, "dataReservePercent"},
		{"max size unit", []string{"--set", "pool.maxSize=1TB"}, "maxSize"},
		{"grow step of 0", []string{"--set-json", "pool.growPercent=0"}, "growPercent"},
		{"no file system reserve", []string{"--set-json", "pool.fsReservePercent=0"}, "fsReservePercent"},
		{"max size on devices", []string{"--set", "pool.dataDevice=/dev/sdb", "--set", "pool.metadataDevice=/dev/sdc", "--set", "pool.maxSize=1Ti"}, "applies to loopback pools"},
		{"pool name", []string{"--set", "pool.name=Thin_Pool"}, "name"},
		{"relative kubelet dir", []string{"--set", "kubeletDir=var/lib/kubelet"}, "kubeletDir"},
		{"digest", []string{"--set", "sidecars.provisioner.image.digest=latest"}, "digest"},
		{"group named default", []string{"--set", "nodeGroups[0].name=default"}, "reserved"},
		{"group name twice", []string{"--set", "nodeGroups[0].name=a", "--set", "nodeGroups[1].name=a"}, "twice"},
		{"label value in two groups", []string{"--set", "nodeGroups[0].name=a", "--set", "nodeGroups[1].name=b", "--set", "nodeGroups[1].labelValues[0]=a"}, "both"},
		{"groups only without groups", []string{"--set", "nodeGroupsOnly=true"}, "no node"},
		{"metrics on the probe's port", []string{"--set", "metrics.port=9808"}, "metrics.port"},
		{"registrar on the probe's port", []string{"--set", "sidecars.nodeDriverRegistrar.healthPort=9808"}, "healthPort"},
		{"service account without a name", []string{"--set", "serviceAccount.create=false"}, "serviceAccount.name"},
		{"unknown snapshot placement", []string{"--set", "snapshots.placement=controller"}, "placement"},
		{"listener on the probe's port", []string{"--set", "snapshots.placement=cluster", "--set", "forwarder.nodePort=9808"}, "forwarder.nodePort"},
		{"the listener's port where it was", []string{"--set", "snapshotMetadata.nodePort=9443"}, "nodePort"},
		{"own certificates without their Secrets", []string{"--set", "snapshots.placement=cluster", "--set", "forwarder.tls.generate=false"}, "forwarder.tls.forwarderSecret"},
		{"own certificates without the CA", []string{"--set", "snapshotMetadata.enabled=true", "--set", "forwarder.tls.generate=false",
			"--set", "forwarder.tls.forwarderSecret=f", "--set", "forwarder.tls.nodeSecret=n"}, "forwarder.tls.caCert"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := template(t, tt.args...)
			if err == nil {
				t.Fatalf("helm template %v succeeded, want an error about %s:\n%.300s", tt.args, tt.want, out)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error does not mention %q: %v", tt.want, err)
			}
		})
	}
}

// TestNotes checks that the notes helm prints after an install say what
// the snapshot-controller needs in each placement: distributed
// snapshotting with csi-snapshotter on the nodes, nothing with it in the
// cluster, where group snapshots work.
func TestNotes(t *testing.T) {
	cases := []struct {
		placement string
		want, not []string
	}{
		{"node", []string{"--enable-distributed-snapshotting=true", `"nodes"`, "VolumeSnapshot CRDs", "VolumeSnapshotClass csi-thin",
			"VolumeGroupSnapshots need snapshots.placement=cluster"}, []string{"VolumeGroupSnapshotClass csi-thin"}},
		{"cluster", []string{"with or without distributed snapshotting", "Deployment csi-thin-forwarder", "VolumeSnapshot CRDs",
			"VolumeSnapshotClass csi-thin", "VolumeGroupSnapshot CRDs", "VolumeGroupSnapshotClass csi-thin", "on one node"},
			[]string{"--enable-distributed-snapshotting=true"}},
	}
	for _, c := range cases {
		t.Run(c.placement, func(t *testing.T) {
			out, err := runHelm(t, "install", releaseName, chartDir, "--namespace", namespace, "--dry-run=client", "--set", "snapshots.placement="+c.placement)
			if err != nil {
				t.Fatal(err)
			}
			_, notes, ok := strings.Cut(out, "NOTES:")
			if !ok {
				t.Fatalf("helm install --dry-run printed no notes:\n%s", out)
			}
			for _, want := range c.want {
				if !strings.Contains(notes, want) {
					t.Errorf("the notes do not mention %s:\n%s", want, notes)
				}
			}
			for _, not := range c.not {
				if strings.Contains(notes, not) {
					t.Errorf("the notes mention %s:\n%s", not, notes)
				}
			}
		})
	}
}

// TestDockerfile checks that the image holds what the chart runs: a static
// build of cmd/csi-thin at the command's path, and the tools csi-thin and
// mount-utils call, from the package list the cluster tests' image is built
// from too.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{
		"CGO_ENABLED=0", "./cmd/csi-thin", driverPath, `ENTRYPOINT ["` + driverPath + `"]`,
		"COPY deploy/image-packages.txt ", "/tmp/image-packages.txt",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile does not mention %q", want)
		}
	}
	b, err = os.ReadFile("image-packages.txt")
	if err != nil {
		t.Fatal(err)
	}
	var pkgs []string
	for _, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		pkgs = append(pkgs, strings.Fields(line)...)
	}
	for _, want := range []string{"e2fsprogs", "xfsprogs", "util-linux", "mount", "thin-provisioning-tools"} {
		if !slices.Contains(pkgs, want) {
			t.Errorf("deploy/image-packages.txt does not list %q", want)
		}
	}
	b, err = os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\n!deploy/image-packages.txt\n") {
		t.Errorf(".dockerignore keeps deploy/image-packages.txt out of the build context: add !deploy/image-packages.txt")
	}
	if n := strings.Count(df, "\nFROM "); n < 2 {
		t.Errorf("Dockerfile has %d stages, want a build stage and a runtime stage", n)
	}
}

// TestLivenessProbeIsTheCSIProbe checks that the one probe that can
// restart csi-thin is the driver's CSI Probe, by way of the livenessprobe
// sidecar on csi-thin's socket, and nothing that reads the pool (no exec
// probe, no readiness or startup probe): since Probe answers in every
// state of the pool (test/flows runs it on a really full pool), a full or
// damaged pool cannot get the plugin restarted.
func TestLivenessProbeIsTheCSIProbe(t *testing.T) {
	forEachDaemonSet(t, func(t *testing.T, _ valueSet, _ expectation, ds *appsv1.DaemonSet) {
		c := mustContainer(t, ds, "csi-thin")
		if c.ReadinessProbe != nil || c.StartupProbe != nil {
			t.Errorf("csi-thin has a readiness or startup probe (%+v, %+v): only the CSI Probe may judge it", c.ReadinessProbe, c.StartupProbe)
		}
		probe := c.LivenessProbe
		if probe == nil || probe.HTTPGet == nil || probe.Exec != nil || probe.GRPC != nil || probe.TCPSocket != nil {
			t.Fatalf("csi-thin livenessProbe %+v, want only an HTTP GET to the livenessprobe sidecar", probe)
		}
		var port int32
		for _, p := range c.Ports {
			if p.Name == probe.HTTPGet.Port.String() || strconv.Itoa(int(p.ContainerPort)) == probe.HTTPGet.Port.String() {
				port = p.ContainerPort
			}
		}
		lp := mustContainer(t, ds, "livenessprobe")
		f := flags(t, lp)
		if _, lport, err := net.SplitHostPort(f["http-endpoint"]); err != nil || lport != strconv.Itoa(int(port)) {
			t.Errorf("csi-thin's liveness probe goes to port %d, livenessprobe serves %q (%v)", port, f["http-endpoint"], err)
		}
		if want := strings.TrimPrefix(flags(t, c)["endpoint"], "unix://"); f["csi-address"] != want {
			t.Errorf("livenessprobe calls Probe on %q, csi-thin serves %q", f["csi-address"], want)
		}
		for _, o := range ds.Spec.Template.Spec.Containers {
			for _, p := range []*corev1.Probe{o.LivenessProbe, o.ReadinessProbe, o.StartupProbe} {
				if p != nil && p.Exec != nil {
					t.Errorf("container %s has an exec probe %q: probes go through the CSI Probe", o.Name, p.Exec.Command)
				}
			}
		}
	})
}
