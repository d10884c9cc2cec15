package flows

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// capacityOf is the capacity csi-thin's provisioner published for a node
// and the test StorageClass (nil if none).
func capacityOf(t *testing.T, node string) *resource.Quantity {
	t.Helper()
	l, err := c.kube.StorageV1().CSIStorageCapacities(driverNS).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list CSIStorageCapacities: %v", err)
	}
	for _, sc := range l.Items {
		if sc.StorageClassName != storageClass || sc.NodeTopology == nil {
			continue
		}
		if sc.NodeTopology.MatchLabels["topology.csi-thin.io/node"] == node {
			return sc.Capacity
		}
	}
	return nil
}

// waitCapacity waits until node's published capacity satisfies ok.
func waitCapacity(t *testing.T, node, what string, ok func(q resource.Quantity) bool) resource.Quantity {
	t.Helper()
	var last resource.Quantity
	waitFor(t, "capacity of "+node+" "+what, stepTimeout, func() (bool, error) {
		q := capacityOf(t, node)
		if q == nil {
			return false, nil
		}
		last = *q
		return ok(last), nil
	})
	return last
}

// TestCapacity: every node has a CSIStorageCapacity for the StorageClass,
// and it follows the pool: a volume's size comes off it and goes back when
// the volume is deleted. A PVC larger than any node can hold stays Pending,
// and its events say why: the scheduler's, from capacity tracking; and the
// driver's own, when the scheduler's view is stale (here: a claim placed on
// the node directly, as a stale CSIStorageCapacity would let it be).
func TestCapacity(t *testing.T) {
	needCluster(t)
	node := c.nodes[0]
	for _, n := range c.nodes {
		waitCapacity(t, n, "published", func(q resource.Quantity) bool { return q.Sign() > 0 })
	}
	start := *capacityOf(t, node)
	t.Logf("capacity of %s: %s", node, start.String())

	ns := namespace(t)
	createPVC(t, ns, claim{name: "v", size: "5Gi"})
	createPod(t, ns, workload{name: "p", pvc: "v", node: node})
	waitRunning(t, ns, "p")
	five := resource.MustParse("5Gi")
	after := waitCapacity(t, node, "5Gi less", func(q resource.Quantity) bool {
		d := start.DeepCopy()
		d.Sub(q)
		return d.Cmp(five) == 0
	})
	t.Logf("capacity of %s with a 5Gi volume: %s", node, after.String())

	// Larger than any node: the scheduler says so.
	createPVC(t, ns, claim{name: "huge", size: "10Ti"})
	createPod(t, ns, workload{name: "huge", pvc: "huge"})
	msg := waitEvent(t, ns, "Pod", "huge", "FailedScheduling", "did not have enough free storage")
	t.Logf("the scheduler: %s", msg)
	if p := getPVC(t, ns, "huge"); p.Status.Phase != corev1.ClaimPending {
		t.Errorf("PVC huge is %s, want Pending", p.Status.Phase)
	}

	// The driver's own answer, when a claim reaches the node anyway.
	createPVC(t, ns, claim{name: "placed", size: "10Ti",
		annotations: map[string]string{"volume.kubernetes.io/selected-node": node}})
	msg = waitEvent(t, ns, "PersistentVolumeClaim", "placed", "ProvisioningFailed", "ResourceExhausted")
	t.Logf("the driver: %s", msg)
	if p := getPVC(t, ns, "placed"); p.Status.Phase != corev1.ClaimPending {
		t.Errorf("PVC placed is %s, want Pending", p.Status.Phase)
	}

	deleteNamespace(t, ns)
	waitCapacity(t, node, "back to "+start.String(), func(q resource.Quantity) bool { return q.Cmp(start) == 0 })
}
