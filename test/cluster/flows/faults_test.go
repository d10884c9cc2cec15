package flows

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// storageClassWith makes a StorageClass of csi-thin as a user would, with
// parameters and mount options of the test's; deleted at the end.
func storageClassWith(t *testing.T, name string, params map[string]string, mountOptions []string) {
	t.Helper()
	wffc := storagev1.VolumeBindingWaitForFirstConsumer
	sc := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: name},
		Provisioner:       driverName,
		Parameters:        params,
		MountOptions:      mountOptions,
		VolumeBindingMode: &wffc,
	}
	if _, err := c.kube.StorageV1().StorageClasses().Create(context.Background(), sc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create StorageClass %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = c.kube.StorageV1().StorageClasses().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

// TestFailedStage: a volume whose mount fails leaves its pod in
// ContainerCreating with an event that says why, and is deleted cleanly
// afterwards (csi-thin undid the failed stage); a claim too small for its
// file system gets the file system's minimum.
func TestFailedStage(t *testing.T) {
	needCluster(t)
	ns := namespace(t)
	storageClassWith(t, "csi-thin-badmount", nil, []string{"no-such-mount-option"})
	createPVC(t, ns, claim{name: "v", size: "64Mi", class: "csi-thin-badmount"})
	createPod(t, ns, workload{name: "p", pvc: "v"})
	// The event names the option and says where it comes from.
	msg := waitEvent(t, ns, "Pod", "p", "FailedMount", "no-such-mount-option", "fix the StorageClass's mountOptions")
	t.Logf("the user sees: %s", msg)
	pod, err := c.kube.CoreV1().Pods(ns).Get(context.Background(), "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Status.Phase != corev1.PodPending {
		t.Errorf("pod p is %s, want Pending", pod.Status.Phase)
	}
	// Deleting the pod and the claim deletes the volume: nothing of the
	// failed stage holds it (deleteNamespace waits for the PV to go).
	deleteNamespace(t, ns)

	// A claim smaller than its file system's minimum gets a volume of
	// that minimum (a claim's size is the least it gets): xfs's 300 MiB.
	ns = namespace(t)
	storageClassWith(t, "csi-thin-xfs", map[string]string{"csi.storage.k8s.io/fstype": "xfs"}, nil)
	createPVC(t, ns, claim{name: "small", size: "100Mi", class: "csi-thin-xfs"})
	createPod(t, ns, workload{name: "small", pvc: "small"})
	waitRunning(t, ns, "small")
	q := getPVC(t, ns, "small").Status.Capacity[corev1.ResourceStorage]
	if q.Cmp(resource.MustParse("300Mi")) < 0 {
		t.Errorf("the 100Mi xfs claim got %s; xfs needs 300Mi", q.String())
	}
	out, err := podSh(ns, "small", "grep ' /data ' /proc/mounts")
	if err != nil || !strings.Contains(out, " xfs ") {
		t.Errorf("the xfs claim's mount: %q, %v", out, err)
	}
	t.Logf("a 100Mi xfs claim: capacity %s, %s", q.String(), strings.TrimSpace(out))
}

// TestFullPool: a pod fills the node's pool; its writes fail, the node's
// capacity drops to nothing, a new claim stays Pending with the scheduler's
// reason and one placed on the node anyway gets the driver's (what to do);
// deleting the volume that filled the pool frees it and the pending claim
// is provisioned.
func TestFullPool(t *testing.T) {
	needCluster(t)
	node := c.nodes[0]
	ns := namespace(t)
	// Larger than the pool's data space (values.yaml: 2Gi, no growth) and
	// within its overprovisioned budget.
	createPVC(t, ns, claim{name: "filler", size: "3Gi"})
	createPod(t, ns, workload{name: "filler", pvc: "filler", node: node,
		script: "dd if=/dev/zero of=/data/fill bs=1M oflag=direct; echo dd: $?; sleep 3600"})
	waitRunning(t, ns, "filler")
	waitCapacity(t, node, "0 (the pool is full)", func(q resource.Quantity) bool { return q.Sign() == 0 })
	waitFor(t, "the filler's dd to fail", stepTimeout, func() (bool, error) {
		out, err := kubectl("-n", ns, "logs", "filler")
		if err == nil && strings.Contains(out, "dd: ") {
			t.Logf("the filler's log: %s", strings.TrimSpace(out))
			return true, nil
		}
		return false, nil
	})

	createPVC(t, ns, claim{name: "after", size: "64Mi"})
	createPod(t, ns, workload{name: "after", pvc: "after", node: node})
	msg := waitEvent(t, ns, "Pod", "after", "FailedScheduling", "did not have enough free storage")
	t.Logf("the scheduler: %s", msg)
	createPVC(t, ns, claim{name: "placed", size: "64Mi",
		annotations: map[string]string{"volume.kubernetes.io/selected-node": node}})
	msg = waitEvent(t, ns, "PersistentVolumeClaim", "placed", "ProvisioningFailed", "ResourceExhausted")
	t.Logf("the driver: %s", msg)
	if !strings.Contains(msg, "delete") {
		t.Errorf("the driver's message does not say what to do (delete volumes or snapshots, grow the pool): %s", msg)
	}

	// Free the pool.
	deletePod(t, ns, "filler")
	pv := getPVC(t, ns, "filler").Spec.VolumeName
	if err := c.kube.CoreV1().PersistentVolumeClaims(ns).Delete(context.Background(), "filler", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the filler's PV deleted", stepTimeout, func() (bool, error) {
		_, err := c.kube.CoreV1().PersistentVolumes().Get(context.Background(), pv, metav1.GetOptions{})
		return err != nil, nil
	})
	waitCapacity(t, node, "back above 0", func(q resource.Quantity) bool { return q.Sign() > 0 })
	waitRunning(t, ns, "after")
	// The provisioner gave the claim the driver refused back to the
	// scheduler (it took its selected node away): its first pod places it.
	if n := getPVC(t, ns, "placed").Annotations["volume.kubernetes.io/selected-node"]; n != "" {
		t.Errorf("PVC placed still has selected-node %s after its provisioning failed", n)
	}
	createPod(t, ns, workload{name: "placed", pvc: "placed"})
	waitRunning(t, ns, "placed")
}
