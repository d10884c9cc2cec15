package flows

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestTwoNodes: each node provisions only its own volumes and publishes
// its own capacity, and the scheduler puts a claim on the node that has
// room for it.
func TestTwoNodes(t *testing.T) {
	needCluster(t)
	if len(c.nodes) < 2 {
		t.Skip("one node: run test/cluster/cluster -n 2 (make test-cluster does)")
	}
	n1, n2 := c.nodes[0], c.nodes[1]
	ns := namespace(t)
	for i, n := range []string{n1, n2} {
		name := []string{"a", "b"}[i]
		createPVC(t, ns, claim{name: name, size: "64Mi"})
		createPod(t, ns, workload{name: name, pvc: name, node: n})
	}
	for i, n := range []string{n1, n2} {
		name := []string{"a", "b"}[i]
		waitRunning(t, ns, name)
		if got := pvNode(t, ns, name); got != n {
			t.Errorf("PVC %s's pod is on %s, its volume on %s", name, n, got)
		}
	}

	// Capacity is per node: a volume on n1 takes n1's, not n2's.
	c1, c2 := *capacityOf(t, n1), *capacityOf(t, n2)
	t.Logf("capacity: %s %s, %s %s", n1, c1.String(), n2, c2.String())
	// n1 keeps less room than the next claim needs; n2 has it.
	big := c1.DeepCopy()
	big.Sub(resource.MustParse("2Gi"))
	createPVC(t, ns, claim{name: "big", size: big.String()})
	createPod(t, ns, workload{name: "big", pvc: "big", node: n1})
	waitRunning(t, ns, "big")
	waitCapacity(t, n1, "down to 2Gi", func(q resource.Quantity) bool { return q.Cmp(resource.MustParse("2Gi")) == 0 })
	if q := capacityOf(t, n2); q == nil || q.Cmp(c2) != 0 {
		t.Errorf("a volume on %s changed %s's capacity: %v, was %s", n1, n2, q, c2.String())
	}
	createPVC(t, ns, claim{name: "roomy", size: "4Gi"})
	createPod(t, ns, workload{name: "roomy", pvc: "roomy"})
	if p := waitRunning(t, ns, "roomy"); p.Spec.NodeName != n2 {
		t.Errorf("the 4Gi claim's pod went to %s; only %s has room", p.Spec.NodeName, n2)
	}
}

// TestRestoreOnTwoNodes: a restore or a clone lives on its source's node,
// and the scheduler knows nothing of the source. When it puts the claim's
// first pod on the other node, csi-thin there refuses (ResourceExhausted:
// the provisioner gives the claim back to the scheduler, which may pick the
// same node again) with an event that says what to do: give the
// pod the nodeSelector topology.csi-thin.io/node of the source's node. The
// test does what the event says and the pod runs there with the data.
func TestRestoreOnTwoNodes(t *testing.T) {
	needCluster(t)
	if len(c.nodes) < 2 {
		t.Skip("one node: run test/cluster/cluster -n 2 (make test-cluster does)")
	}
	n1 := c.nodes[0]
	ns := namespace(t)
	createPVC(t, ns, claim{name: "src", size: "64Mi"})
	createPod(t, ns, workload{name: "src", pvc: "src", script: writer, node: n1})
	waitRunning(t, ns, "src")
	waitFile(t, ns, "src", "/data/ready")
	createSnapshot(t, ns, "snap", "src")
	waitSnapshotReady(t, ns, "snap")

	// Where the snapshot is, as the event tells a user to find out.
	out, err := kubectl("get", "volumesnapshotcontent", "-L", "snapshot.storage.kubernetes.io/managed-by")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl get volumesnapshotcontent -L snapshot.storage.kubernetes.io/managed-by:\n%s", out)
	if !strings.Contains(out, n1) {
		t.Errorf("the snapshot's content does not say it is on %s", n1)
	}

	for _, cl := range []claim{
		{name: "restore", size: "64Mi", source: snapshotSource("snap")},
		{name: "clone", size: "64Mi", source: pvcSource("src")},
	} {
		start := time.Now()
		createPVC(t, ns, cl)
		createPod(t, ns, workload{name: cl.name, pvc: cl.name})
		// Either the scheduler happens to pick the source's node, or the
		// claim's events say what to do.
		var advice string
		waitFor(t, "pod "+cl.name+" running, or its claim's event saying where to put it", stepTimeout, func() (bool, error) {
			p, err := c.kube.CoreV1().Pods(ns).Get(context.Background(), cl.name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if p.Status.Phase == corev1.PodRunning {
				return true, nil
			}
			for _, m := range events(t, ns, "PersistentVolumeClaim", cl.name) {
				if strings.HasPrefix(m, "ProvisioningFailed") && strings.Contains(m, "nodeSelector topology.csi-thin.io/node") {
					advice = m
					return true, nil
				}
			}
			return false, nil
		})
		if advice != "" {
			t.Logf("PVC %s, its pod put on the other node: %s", cl.name, advice)
			deletePod(t, ns, cl.name)
			createPod(t, ns, workload{name: cl.name, pvc: cl.name, selector: map[string]string{"topology.csi-thin.io/node": n1}})
		}
		p := waitRunning(t, ns, cl.name)
		if p.Spec.NodeName != n1 {
			t.Errorf("pod %s runs on %s, its source on %s", cl.name, p.Spec.NodeName, n1)
		}
		checkSeed(t, ns, cl.name)
		t.Logf("PVC %s: its pod ran on %s after %.0fs (told where first: %v)", cl.name, p.Spec.NodeName, time.Since(start).Seconds(), advice != "")
	}
}
