package flows

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	driverName    = "csi-thin.io"
	storageClass  = "csi-thin"
	snapshotClass = "csi-thin"
	driverNS      = "csi-thin"
	busybox       = "docker.io/library/busybox:1.35.0"
	// How long a step may take on a slow node (a User-Mode Linux kernel on
	// a shared machine).
	stepTimeout = 5 * time.Minute
)

// cluster is what test/cluster/cluster started.
type cluster struct {
	kube  kubernetes.Interface
	snap  snapclient.Interface
	nodes []string // CLUSTER_NODES
	// exec[i] runs a shell command in node i (NODE_EXEC_<i+1>).
	exec    []string
	kubectl string
	config  string // the admin kubeconfig
}

var c *cluster

// clusterFromEnv reads the environment test/cluster/cluster sets; nil and
// why not when it is not there.
func clusterFromEnv() (*cluster, string) {
	cfgPath := os.Getenv("KUBECONFIG")
	nodes := strings.Fields(os.Getenv("CLUSTER_NODES"))
	if cfgPath == "" || len(nodes) == 0 || os.Getenv("KUBECTL") == "" {
		return nil, "KUBECONFIG, KUBECTL and CLUSTER_NODES are not set: run these tests with `make test-cluster` (test/cluster/cluster runs them against a real cluster)"
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", cfgPath)
	if err != nil {
		return nil, fmt.Sprintf("KUBECONFIG=%s: %v", cfgPath, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cl := &cluster{nodes: nodes, kubectl: os.Getenv("KUBECTL"), config: cfgPath}
	if cl.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err.Error()
	}
	if cl.snap, err = snapclient.NewForConfig(cfg); err != nil {
		return nil, err.Error()
	}
	for i := range nodes {
		e := os.Getenv("NODE_EXEC_" + strconv.Itoa(i+1))
		if e == "" {
			return nil, fmt.Sprintf("NODE_EXEC_%d is not set for node %s", i+1, nodes[i])
		}
		cl.exec = append(cl.exec, e)
	}
	return cl, ""
}

// nodeExec runs a shell command in node i and returns its output.
func nodeExec(t *testing.T, i int, script string) (string, error) {
	t.Helper()
	cmd := exec.Command(c.exec[i], script)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("in node %s: %q: %v: %s", c.nodes[i], script, err, errb.String())
	}
	return out.String(), nil
}

// kubectl runs the cluster's kubectl.
func kubectl(args ...string) (string, error) {
	return run(c.kubectl, append([]string{"--kubeconfig=" + c.config}, args...)...)
}

// run runs a command and returns its output, both streams.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// podSh runs a shell command in a pod's container.
func podSh(ns, pod, script string) (string, error) {
	return kubectl("-n", ns, "exec", pod, "--", "sh", "-c", script)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	t.Cleanup(cancel)
	return ctx
}

var namespaces = map[string]int{}

// namespace makes a namespace for one test (the second of a test gets a
// suffix); deleting it at the end deletes the test's pods, PVCs and
// snapshots (and with them the volumes).
func namespace(t *testing.T) string {
	t.Helper()
	name := "t-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 55 {
		name = name[:55]
	}
	name = strings.TrimRight(name, "-")
	if n := namespaces[name]; n > 0 {
		namespaces[name]++
		name = fmt.Sprintf("%s-%d", name, n+1)
	} else {
		namespaces[name] = 1
	}
	_, err := c.kube.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpNamespace(t, name)
		}
		deleteNamespace(t, name)
	})
	return name
}

// deleteNamespace deletes a namespace and waits until it and every PV its
// claims had are gone, so that the next test starts from an empty pool.
func deleteNamespace(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	pvs := map[string]bool{}
	if l, err := c.kube.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, p := range l.Items {
			if p.Spec.VolumeName != "" {
				pvs[p.Spec.VolumeName] = true
			}
		}
	}
	zero := int64(0)
	_ = c.kube.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
	if err := c.kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete namespace %s: %v", ns, err)
		return
	}
	waitFor(t, "namespace "+ns+" deleted", stepTimeout, func() (bool, error) {
		_, err := c.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	for pv := range pvs {
		waitFor(t, "PV "+pv+" deleted", stepTimeout, func() (bool, error) {
			_, err := c.kube.CoreV1().PersistentVolumes().Get(ctx, pv, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
	}
}

// dumpNamespace logs what a user would look at when something is stuck.
func dumpNamespace(t *testing.T, ns string) {
	for _, args := range [][]string{
		{"-n", ns, "get", "pods,pvc,volumesnapshots", "-o", "wide"},
		{"-n", ns, "get", "events", "--sort-by=.lastTimestamp"},
		{"get", "pv,volumesnapshotcontents,csistoragecapacities", "-A"},
	} {
		out, _ := kubectl(args...)
		t.Logf("kubectl %s:\n%s", strings.Join(args, " "), out)
	}
}

// waitFor polls cond every second until it is true, fails the test after
// timeout (or when cond returns an error).
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	start := time.Now()
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			t.Logf("%s after %.1fs", what, time.Since(start).Seconds())
			return
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not after %s", what, timeout)
		}
		time.Sleep(time.Second)
	}
}

// claim is a PVC of the test StorageClass.
type claim struct {
	name, size  string
	block       bool
	source      *corev1.TypedLocalObjectReference // a snapshot or a PVC
	class       string                            // default the chart's
	annotations map[string]string
	labels      map[string]string
}

func createPVC(t *testing.T, ns string, cl claim) *corev1.PersistentVolumeClaim {
	t.Helper()
	class := cl.class
	if class == "" {
		class = storageClass
	}
	mode := corev1.PersistentVolumeFilesystem
	if cl.block {
		mode = corev1.PersistentVolumeBlock
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: cl.name, Annotations: cl.annotations, Labels: cl.labels},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: &class,
			VolumeMode:       &mode,
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(cl.size)},
			},
			DataSource: cl.source,
		},
	}
	out, err := c.kube.CoreV1().PersistentVolumeClaims(ns).Create(context.Background(), pvc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create PVC %s: %v", cl.name, err)
	}
	return out
}

func snapshotSource(name string) *corev1.TypedLocalObjectReference {
	g := snapv1.GroupName
	return &corev1.TypedLocalObjectReference{APIGroup: &g, Kind: "VolumeSnapshot", Name: name}
}

func pvcSource(name string) *corev1.TypedLocalObjectReference {
	return &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: name}
}

// workload is a busybox pod using one PVC at /data (or /dev/xvda for a
// block PVC).
type workload struct {
	name, pvc string
	script    string // the container's sh -c; default sleep
	block     bool
	readOnly  bool
	node      string // kubernetes.io/hostname, when set
	fsGroup   *int64
	runAsUser *int64
	always    bool // restartPolicy Always (the default here is Never)
	selector  map[string]string
}

func createPod(t *testing.T, ns string, w workload) *corev1.Pod {
	t.Helper()
	script := w.script
	if script == "" {
		script = "sleep 3600"
	}
	zero := int64(0)
	policy := corev1.RestartPolicyNever
	if w.always {
		policy = corev1.RestartPolicyAlways
	}
	ctr := corev1.Container{
		Name: "w", Image: busybox, ImagePullPolicy: corev1.PullNever,
		Command: []string{"sh", "-c", script},
	}
	if w.block {
		ctr.VolumeDevices = []corev1.VolumeDevice{{Name: "v", DevicePath: "/dev/xvda"}}
	} else {
		ctr.VolumeMounts = []corev1.VolumeMount{{Name: "v", MountPath: "/data", ReadOnly: w.readOnly}}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: w.name},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{ctr},
			TerminationGracePeriodSeconds: &zero,
			RestartPolicy:                 policy,
			Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: w.pvc, ReadOnly: w.readOnly}}}},
			SecurityContext: &corev1.PodSecurityContext{FSGroup: w.fsGroup, RunAsUser: w.runAsUser},
		},
	}
	if w.node != "" {
		pod.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": w.node}
	}
	if w.selector != nil {
		pod.Spec.NodeSelector = w.selector
	}
	out, err := c.kube.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", w.name, err)
	}
	return out
}

// waitRunning waits until a pod runs and returns it.
func waitRunning(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	waitFor(t, "pod "+name+" running", stepTimeout, func() (bool, error) {
		p, err := c.kube.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
			return false, fmt.Errorf("pod %s ended: %s", name, p.Status.Phase)
		}
		pod = p
		return p.Status.Phase == corev1.PodRunning, nil
	})
	return pod
}

// deletePod deletes a pod and waits until it is gone (its volume unmounted).
func deletePod(t *testing.T, ns, name string) {
	t.Helper()
	zero := int64(0)
	if err := c.kube.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatalf("delete pod %s: %v", name, err)
	}
	waitFor(t, "pod "+name+" gone", stepTimeout, func() (bool, error) {
		_, err := c.kube.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

func getPVC(t *testing.T, ns, name string) *corev1.PersistentVolumeClaim {
	t.Helper()
	p, err := c.kube.CoreV1().PersistentVolumeClaims(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get PVC %s: %v", name, err)
	}
	return p
}

// pvNode is the node a bound PVC's volume lives on (its PV's node affinity).
func pvNode(t *testing.T, ns, pvc string) string {
	t.Helper()
	name := getPVC(t, ns, pvc).Spec.VolumeName
	pv, err := c.kube.CoreV1().PersistentVolumes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get PV %s: %v", name, err)
	}
	if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		t.Fatalf("PV %s has no node affinity", name)
	}
	for _, term := range pv.Spec.NodeAffinity.Required.NodeSelectorTerms {
		for _, e := range term.MatchExpressions {
			if e.Key == "topology.csi-thin.io/node" && len(e.Values) == 1 {
				return e.Values[0]
			}
		}
	}
	t.Fatalf("PV %s: no topology.csi-thin.io/node in its node affinity %v", name, pv.Spec.NodeAffinity.Required)
	return ""
}

func createSnapshot(t *testing.T, ns, name, pvc string) {
	t.Helper()
	class := snapshotClass
	_, err := c.snap.SnapshotV1().VolumeSnapshots(ns).Create(context.Background(), &snapv1.VolumeSnapshot{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: snapv1.VolumeSnapshotSpec{
			Source:                  snapv1.VolumeSnapshotSource{PersistentVolumeClaimName: &pvc},
			VolumeSnapshotClassName: &class,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create VolumeSnapshot %s: %v", name, err)
	}
}

func waitSnapshotReady(t *testing.T, ns, name string) *snapv1.VolumeSnapshot {
	t.Helper()
	var s *snapv1.VolumeSnapshot
	waitFor(t, "VolumeSnapshot "+name+" readyToUse", stepTimeout, func() (bool, error) {
		var err error
		s, err = c.snap.SnapshotV1().VolumeSnapshots(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if s.Status != nil && s.Status.Error != nil && s.Status.Error.Message != nil {
			t.Logf("VolumeSnapshot %s: %s", name, *s.Status.Error.Message)
		}
		return s.Status != nil && s.Status.ReadyToUse != nil && *s.Status.ReadyToUse, nil
	})
	return s
}

// events are the messages of the events about one object.
func events(t *testing.T, ns, kind, name string) []string {
	t.Helper()
	l, err := c.kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.kind=" + kind + ",involvedObject.name=" + name})
	if err != nil {
		t.Fatalf("events of %s %s: %v", kind, name, err)
	}
	var msgs []string
	for _, e := range l.Items {
		msgs = append(msgs, e.Reason+": "+e.Message)
	}
	return msgs
}

// waitEvent waits for an event about an object whose reason and message
// contain every one of want, and returns it.
func waitEvent(t *testing.T, ns, kind, name string, want ...string) string {
	t.Helper()
	var found string
	waitFor(t, fmt.Sprintf("an event on %s %s with %q", kind, name, want), stepTimeout, func() (bool, error) {
		for _, m := range events(t, ns, kind, name) {
			all := true
			for _, w := range want {
				all = all && strings.Contains(m, w)
			}
			if all {
				found = m
				return true, nil
			}
		}
		return false, nil
	})
	return found
}

// nodeIndex is the index of a node name in c.nodes.
func nodeIndex(t *testing.T, name string) int {
	t.Helper()
	for i, n := range c.nodes {
		if n == name {
			return i
		}
	}
	t.Fatalf("node %s is not one of %v", name, c.nodes)
	return -1
}
