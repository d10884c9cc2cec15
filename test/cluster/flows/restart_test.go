package flows

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// driverPod is the csi-thin DaemonSet's pod on a node.
func driverPod(t *testing.T, node string) *corev1.Pod {
	t.Helper()
	l, err := c.kube.CoreV1().Pods(driverNS).List(context.Background(), metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		t.Fatalf("list csi-thin's pods: %v", err)
	}
	for i := range l.Items {
		if l.Items[i].DeletionTimestamp == nil && strings.HasPrefix(l.Items[i].Name, "csi-thin-node-") {
			return &l.Items[i]
		}
	}
	return nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func waitDriverReady(t *testing.T, node, old string) {
	t.Helper()
	waitFor(t, "csi-thin's pod on "+node+" ready", stepTimeout, func() (bool, error) {
		p := driverPod(t, node)
		return p != nil && p.Name != old && podReady(p), nil
	})
}

// logLines is how many lines the writer has appended to /data/log.
func logLines(t *testing.T, ns, pod string) int {
	t.Helper()
	out, err := podSh(ns, pod, "wc -l < /data/log")
	if err != nil {
		t.Fatalf("pod %s: %v", pod, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("pod %s: wc -l: %q", pod, out)
	}
	return n
}

// stillWriting checks the writer's volume still takes writes and has its
// data.
func stillWriting(t *testing.T, ns, pod string) {
	t.Helper()
	n := logLines(t, ns, pod)
	waitFor(t, "pod "+pod+" still writing", time.Minute, func() (bool, error) {
		return logLines(t, ns, pod) > n, nil
	})
	checkSeed(t, ns, pod)
}

func nodeReadySince(t *testing.T, node string, since time.Time) bool {
	n, err := c.kube.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get node %s: %v", node, err)
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue && cond.LastHeartbeatTime.After(since)
		}
	}
	return false
}

// blockSeed writes a marked block of random data to the pod's device unless
// it is there already, and keeps the checksum of what the device holds in
// /sum.
const blockSeed = `if [ "$(dd if=/dev/xvda bs=4 count=1 2>/dev/null)" != SEED ]; then
  { printf SEED; dd if=/dev/urandom bs=1M count=2 2>/dev/null; } > /tmp/seed
  dd if=/tmp/seed of=/dev/xvda bs=1M conv=fsync 2>/dev/null
fi
dd if=/dev/xvda bs=1M count=2 2>/dev/null | sha256sum > /sum
sleep 3600`

// TestRestarts: the workloads keep their data and mounts while csi-thin's
// pod is replaced and while kubelet restarts, and csi-thin serves new
// volumes after each; after a reboot of the node (the kernel restarted on
// the same disks) every volume comes back with its data.
func TestRestarts(t *testing.T) {
	needCluster(t)
	node := c.nodes[0]
	ni := nodeIndex(t, node)
	ns := namespace(t)
	createPVC(t, ns, claim{name: "v", size: "256Mi"})
	createPod(t, ns, workload{name: "writer", pvc: "v", script: writer, node: node, always: true})
	waitRunning(t, ns, "writer")
	waitFile(t, ns, "writer", "/data/ready")
	createPVC(t, ns, claim{name: "blk", size: "64Mi", block: true})
	createPod(t, ns, workload{name: "blk", pvc: "blk", block: true, node: node, always: true,
		script: blockSeed})
	waitRunning(t, ns, "blk")
	waitFor(t, "pod blk wrote its device", time.Minute, func() (bool, error) {
		_, err := podSh(ns, "blk", "test -s /sum")
		return err == nil, nil
	})
	blkSum, _ := podSh(ns, "blk", "cat /sum")

	// csi-thin's pod replaced (its logs go with it: check them first).
	checkForbidden(t)
	old := driverPod(t, node)
	zero := int64(0)
	if err := c.kube.CoreV1().Pods(driverNS).Delete(context.Background(), old.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatalf("delete csi-thin's pod: %v", err)
	}
	waitDriverReady(t, node, old.Name)
	stillWriting(t, ns, "writer")
	createPVC(t, ns, claim{name: "after-driver", size: "64Mi"})
	createPod(t, ns, workload{name: "after-driver", pvc: "after-driver", node: node})
	waitRunning(t, ns, "after-driver")

	// kubelet restarted.
	restarted := time.Now()
	if _, err := nodeExec(t, ni, "kubelet-restart"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node "+node+" Ready again after kubelet's restart", stepTimeout, func() (bool, error) {
		return nodeReadySince(t, node, restarted), nil
	})
	stillWriting(t, ns, "writer")
	createPVC(t, ns, claim{name: "after-kubelet", size: "64Mi"})
	createPod(t, ns, workload{name: "after-kubelet", pvc: "after-kubelet", node: node})
	waitRunning(t, ns, "after-kubelet")

	// The node rebooted: the kernel starts again with the same disks; the
	// pods' containers start again, their volumes staged and published
	// anew by a new csi-thin container.
	if _, err := podSh(ns, "writer", "sync"); err != nil {
		t.Fatal(err)
	}
	lines := logLines(t, ns, "writer")
	checkForbidden(t)
	rebooted := time.Now()
	// The command never returns: the node goes away under it.
	_, _ = nodeExec(t, ni, "sync; reboot -f")
	waitFor(t, "node "+node+" Ready after its reboot", 2*stepTimeout, func() (bool, error) {
		return nodeReadySince(t, node, rebooted.Add(20*time.Second)), nil
	})
	for _, p := range []string{"writer", "blk"} {
		waitFor(t, "pod "+p+"'s container started again", stepTimeout, func() (bool, error) {
			pod, err := c.kube.CoreV1().Pods(ns).Get(context.Background(), p, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, s := range pod.Status.ContainerStatuses {
				if s.RestartCount > 0 && s.State.Running != nil && s.State.Running.StartedAt.After(rebooted) {
					return true, nil
				}
			}
			return false, nil
		})
	}
	waitFile(t, ns, "writer", "/data/ready")
	if n := logLines(t, ns, "writer"); n < lines {
		t.Errorf("after the reboot the log has %d lines; %d were synced before it", n, lines)
	}
	stillWriting(t, ns, "writer")
	// The block pod's device has what it wrote before the reboot.
	got, err := podSh(ns, "blk", "cat /sum")
	if err != nil {
		t.Fatal(err)
	}
	if got != blkSum {
		t.Errorf("the block device after the reboot: %q; before it: %q", got, blkSum)
	}
	createPVC(t, ns, claim{name: "after-reboot", size: "64Mi"})
	createPod(t, ns, workload{name: "after-reboot", pvc: "after-reboot", node: node})
	waitRunning(t, ns, "after-reboot")
}
