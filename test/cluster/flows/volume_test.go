package flows

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// writer fills /data/seed with 8 MiB of random data and its checksum, then
// appends a line to /data/log every 0.1 s until it is stopped.
const writer = `set -e
dd if=/dev/urandom of=/data/seed bs=1M count=8 2>/dev/null
sha256sum /data/seed > /data/seed.sha
sync
touch /data/ready
i=0; while true; do i=$((i+1)); echo "line $i" >> /data/log; sleep 0.1; done`

// checkSeed checks, in a pod, that /data/seed is the data the writer wrote.
func checkSeed(t *testing.T, ns, pod string) {
	t.Helper()
	out, err := podSh(ns, pod, "cd /data && sha256sum -c seed.sha && wc -l < log")
	if err != nil {
		t.Fatalf("pod %s does not have the writer's data: %v", pod, err)
	}
	t.Logf("pod %s: %s", pod, strings.Join(strings.Fields(out), " "))
}

// dataKiB is the size of the file system on /data in a pod, in KiB.
func dataKiB(t *testing.T, ns, pod string) int64 {
	t.Helper()
	out, err := podSh(ns, pod, "df -k /data | tail -n 1")
	if err != nil {
		t.Fatalf("df in pod %s: %v", pod, err)
	}
	f := strings.Fields(out)
	if len(f) < 2 {
		t.Fatalf("df in pod %s: %q", pod, out)
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatalf("df in pod %s: %q: %v", pod, out, err)
	}
	return n
}

func waitFile(t *testing.T, ns, pod, path string) {
	t.Helper()
	waitFor(t, "pod "+pod+" wrote "+path, stepTimeout, func() (bool, error) {
		_, err := podSh(ns, pod, "test -e "+path)
		return err == nil, nil
	})
}

// TestVolumeLifecycle is what a user does with a volume: a PVC bound when
// its first pod is scheduled, written; a snapshot taken while the pod
// writes; a restore into a larger PVC and a clone, each read by its own pod
// with the exact data; the source grown online by editing its PVC; the
// source deleted while its snapshot and its clone live on, and restored
// again from the snapshot.
func TestVolumeLifecycle(t *testing.T) {
	needCluster(t)
	ns := namespace(t)
	ctx := ctxT(t)

	createPVC(t, ns, claim{name: "src", size: "1Gi"})
	// WaitForFirstConsumer: no volume until a pod needs it.
	if p := getPVC(t, ns, "src"); p.Status.Phase != corev1.ClaimPending {
		t.Fatalf("PVC src is %s before any pod uses it; the StorageClass is WaitForFirstConsumer", p.Status.Phase)
	}
	createPod(t, ns, workload{name: "writer", pvc: "src", script: writer})
	pod := waitRunning(t, ns, "writer")
	waitFile(t, ns, "writer", "/data/ready")
	if n := pvNode(t, ns, "src"); n != pod.Spec.NodeName {
		t.Fatalf("the volume is on %s, its pod on %s", n, pod.Spec.NodeName)
	}

	// A snapshot while the pod writes.
	createSnapshot(t, ns, "snap", "src")
	snap := waitSnapshotReady(t, ns, "snap")
	if snap.Status.RestoreSize == nil || snap.Status.RestoreSize.Cmp(resource.MustParse("1Gi")) != 0 {
		t.Errorf("snapshot restoreSize %v, want 1Gi", snap.Status.RestoreSize)
	}

	// Restore into a larger PVC, and clone the source; each read by a pod.
	createPVC(t, ns, claim{name: "restored", size: "2Gi", source: snapshotSource("snap")})
	createPVC(t, ns, claim{name: "clone", size: "1Gi", source: pvcSource("src")})
	// On the source's node, as the README says to (TestRestoreOnTwoNodes
	// shows what happens otherwise).
	onSource := map[string]string{"topology.csi-thin.io/node": pod.Spec.NodeName}
	createPod(t, ns, workload{name: "restored", pvc: "restored", selector: onSource})
	createPod(t, ns, workload{name: "clone", pvc: "clone", selector: onSource})
	waitRunning(t, ns, "restored")
	waitRunning(t, ns, "clone")
	checkSeed(t, ns, "restored")
	checkSeed(t, ns, "clone")
	// The restored file system has the larger PVC's size, not the snapshot's.
	if kib := dataKiB(t, ns, "restored"); kib < 1800*1024 {
		t.Errorf("the 2Gi PVC restored from a 1Gi snapshot has a %d KiB file system", kib)
	}

	// Online expansion: edit the PVC; csi-resizer, then kubelet's
	// NodeExpandVolume; the pod sees it without a restart.
	before := dataKiB(t, ns, "writer")
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"resources": map[string]any{"requests": map[string]string{"storage": "3Gi"}}}})
	if _, err := c.kube.CoreV1().PersistentVolumeClaims(ns).Patch(ctx, "src", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("expand PVC src: %v", err)
	}
	waitFor(t, "PVC src's capacity 3Gi", stepTimeout, func() (bool, error) {
		p := getPVC(t, ns, "src")
		q := p.Status.Capacity[corev1.ResourceStorage]
		return q.Cmp(resource.MustParse("3Gi")) == 0, nil
	})
	waitFor(t, "the writer's file system grown", stepTimeout, func() (bool, error) {
		return dataKiB(t, ns, "writer") > 2800*1024, nil
	})
	t.Logf("the writer's file system: %d KiB, then %d KiB", before, dataKiB(t, ns, "writer"))
	checkSeed(t, ns, "writer")

	// Delete the source; its snapshot and clone live on.
	deletePod(t, ns, "writer")
	srcPV := getPVC(t, ns, "src").Spec.VolumeName
	if err := c.kube.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "src", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete PVC src: %v", err)
	}
	waitFor(t, "the source's PV deleted", stepTimeout, func() (bool, error) {
		_, err := c.kube.CoreV1().PersistentVolumes().Get(ctx, srcPV, metav1.GetOptions{})
		return err != nil, nil
	})
	checkSeed(t, ns, "clone")
	createPVC(t, ns, claim{name: "restored2", size: "1Gi", source: snapshotSource("snap")})
	createPod(t, ns, workload{name: "restored2", pvc: "restored2", selector: onSource})
	waitRunning(t, ns, "restored2")
	checkSeed(t, ns, "restored2")
}
