package flows

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	groupv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumegroupsnapshot/v1"
	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// groupClass is the chart's VolumeGroupSnapshotClass (its full name), which
// it creates in cluster placement.
const groupClass = "csi-thin"

// placement switches the chart's snapshots.placement with helm upgrade and
// waits until the node pods and the forwarder run it; at the end of the
// test it switches back to what install set (node). The cleanups of what
// the test made run before, in the placement they were made in.
func placement(t *testing.T, to string) {
	t.Helper()
	upgrade := func(p string) error {
		chart, helm := os.Getenv("CLUSTER_CHART"), os.Getenv("HELM")
		if chart == "" || helm == "" {
			t.Fatal("CLUSTER_CHART and HELM are not set: run with test/cluster/cluster")
		}
		out, err := run(helm, "upgrade", "csi-thin", chart, "--namespace", driverNS, "--kubeconfig", c.config,
			"--reuse-values", "--set", "snapshots.placement="+p)
		if err != nil {
			return err
		}
		t.Logf("snapshots.placement=%s: %s", p, strings.TrimSpace(firstLine(out)))
		for _, obj := range []string{"daemonset/csi-thin-node", "deployment/csi-thin-forwarder"} {
			if _, err := kubectl("-n", driverNS, "rollout", "status", obj, "--timeout=5m"); err != nil {
				return err
			}
		}
		return nil
	}
	checkForbidden(t) // the node pods' logs go with the rollout
	if err := upgrade(to); err != nil {
		t.Fatalf("switch to snapshots.placement=%s: %v", to, err)
	}
	t.Cleanup(func() {
		checkForbidden(t)
		if err := upgrade("node"); err != nil {
			t.Errorf("switch back to snapshots.placement=node: %v", err)
		}
	})
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func createGroupSnapshot(t *testing.T, ns, name, app string) {
	t.Helper()
	class := groupClass
	_, err := c.snap.GroupsnapshotV1().VolumeGroupSnapshots(ns).Create(context.Background(), &groupv1.VolumeGroupSnapshot{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: groupv1.VolumeGroupSnapshotSpec{
			VolumeGroupSnapshotClassName: &class,
			Source:                       groupv1.VolumeGroupSnapshotSource{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create VolumeGroupSnapshot %s: %v", name, err)
	}
}

// members are the VolumeSnapshots the snapshot controller made for a
// group snapshot's members, by name.
func members(t *testing.T, ns, group string) []snapv1.VolumeSnapshot {
	t.Helper()
	l, err := c.snap.SnapshotV1().VolumeSnapshots(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list VolumeSnapshots: %v", err)
	}
	var out []snapv1.VolumeSnapshot
	for _, s := range l.Items {
		if s.Status != nil && s.Status.VolumeGroupSnapshotName != nil && *s.Status.VolumeGroupSnapshotName == group {
			out = append(out, s)
		}
	}
	return out
}

// TestVolumeGroupSnapshot: a VolumeGroupSnapshot through the snapshot
// controller, in the placement that supports it (csi-snapshotter once in
// the cluster, csi-thin's forwarder relaying to the volumes' node): one
// point in time for the group's volumes, each member restorable alone,
// the members deleted with the group; a group across two nodes refused,
// saying why; and an ordinary VolumeSnapshot in that placement.
func TestVolumeGroupSnapshot(t *testing.T) {
	needCluster(t)
	placement(t, "cluster")
	ns := namespace(t)
	node := c.nodes[0]
	for _, name := range []string{"data", "log"} {
		createPVC(t, ns, claim{name: name, size: "64Mi", labels: map[string]string{"app": "db"}})
		createPod(t, ns, workload{name: name, pvc: name, node: node})
	}
	for _, name := range []string{"data", "log"} {
		waitRunning(t, ns, name)
		if out, err := podSh(ns, name, "echo "+name+"-1 > /data/f && sync"); err != nil {
			t.Fatalf("write %s: %v: %s", name, err, out)
		}
	}

	createGroupSnapshot(t, ns, "db", "db")
	waitFor(t, "VolumeGroupSnapshot db readyToUse", stepTimeout, func() (bool, error) {
		g, err := c.snap.GroupsnapshotV1().VolumeGroupSnapshots(ns).Get(context.Background(), "db", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if g.Status != nil && g.Status.Error != nil && g.Status.Error.Message != nil {
			t.Logf("VolumeGroupSnapshot db: %s", *g.Status.Error.Message)
		}
		return g.Status != nil && g.Status.ReadyToUse != nil && *g.Status.ReadyToUse, nil
	})
	// After the group's point in time.
	for _, name := range []string{"data", "log"} {
		if out, err := podSh(ns, name, "echo "+name+"-2 > /data/f && sync"); err != nil {
			t.Fatalf("write %s: %v: %s", name, err, out)
		}
	}
	var snaps []string
	waitFor(t, "the group's two member VolumeSnapshots ready", stepTimeout, func() (bool, error) {
		snaps = nil
		for _, s := range members(t, ns, "db") {
			if s.Status.ReadyToUse != nil && *s.Status.ReadyToUse {
				snaps = append(snaps, s.Name)
			}
		}
		return len(snaps) == 2, nil
	})

	// Each member restores alone, to what its volume held at the group's
	// point in time.
	var got []string
	for i, s := range snaps {
		name := []string{"r1", "r2"}[i]
		createPVC(t, ns, claim{name: name, size: "64Mi", source: snapshotSource(s)})
		createPod(t, ns, workload{name: name, pvc: name, node: node})
		waitRunning(t, ns, name)
		out, err := podSh(ns, name, "cat /data/f")
		if err != nil {
			t.Fatalf("read the restore of %s: %v: %s", s, err, out)
		}
		got = append(got, strings.TrimSpace(out))
	}
	slices.Sort(got)
	if want := []string{"data-1", "log-1"}; !slices.Equal(got, want) {
		t.Errorf("the group's members restored %v, want %v: both volumes as they were at the group's point in time", got, want)
	}

	// An ordinary snapshot, through the same csi-snapshotter.
	createSnapshot(t, ns, "data-snap", "data")
	waitSnapshotReady(t, ns, "data-snap")

	if len(c.nodes) > 1 {
		// A group's volumes on two nodes: no kernel can stop their I/O
		// together.
		for i, n := range c.nodes[:2] {
			name := []string{"x1", "x2"}[i]
			createPVC(t, ns, claim{name: name, size: "64Mi", labels: map[string]string{"app": "spread"}})
			createPod(t, ns, workload{name: name, pvc: name, node: n})
		}
		waitRunning(t, ns, "x1")
		waitRunning(t, ns, "x2")
		createGroupSnapshot(t, ns, "spread", "spread")
		var msg string
		waitFor(t, "VolumeGroupSnapshot spread refused", stepTimeout, func() (bool, error) {
			g, err := c.snap.GroupsnapshotV1().VolumeGroupSnapshots(ns).Get(context.Background(), "spread", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if g.Status != nil && g.Status.ReadyToUse != nil && *g.Status.ReadyToUse {
				t.Fatal("a group of volumes on two nodes was taken")
			}
			if g.Status != nil && g.Status.Error != nil && g.Status.Error.Message != nil {
				msg = *g.Status.Error.Message
			}
			return strings.Contains(msg, "nodes"), nil
		})
		t.Logf("VolumeGroupSnapshot spread: %s", msg)
		for _, n := range c.nodes[:2] {
			if !strings.Contains(msg, n) {
				t.Errorf("the refusal %q does not name node %s", msg, n)
			}
		}
		if err := c.snap.GroupsnapshotV1().VolumeGroupSnapshots(ns).Delete(context.Background(), "spread", metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete VolumeGroupSnapshot spread: %v", err)
		}
	}

	// Deleting the group deletes its members and their contents.
	var contents []string
	for _, s := range members(t, ns, "db") {
		if s.Status.BoundVolumeSnapshotContentName != nil {
			contents = append(contents, *s.Status.BoundVolumeSnapshotContentName)
		}
	}
	if len(contents) != 2 {
		t.Fatalf("the group's members name %d contents, want 2", len(contents))
	}
	// The restores hold no reference to their sources: delete them first
	// only so that the pool is back to the group's volumes.
	for _, name := range []string{"r1", "r2"} {
		deletePod(t, ns, name)
	}
	if err := c.snap.GroupsnapshotV1().VolumeGroupSnapshots(ns).Delete(context.Background(), "db", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete VolumeGroupSnapshot db: %v", err)
	}
	waitFor(t, "the group's members and their contents gone", stepTimeout, func() (bool, error) {
		if len(members(t, ns, "db")) > 0 {
			return false, nil
		}
		for _, name := range contents {
			_, err := c.snap.SnapshotV1().VolumeSnapshotContents().Get(context.Background(), name, metav1.GetOptions{})
			if !apierrors.IsNotFound(err) {
				return false, err
			}
		}
		return true, nil
	})
	// The ordinary snapshot is deleted here too, while csi-snapshotter
	// runs in the cluster: its content is not labelled for a node's.
	if err := c.snap.SnapshotV1().VolumeSnapshots(ns).Delete(context.Background(), "data-snap", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete VolumeSnapshot data-snap: %v", err)
	}
	waitFor(t, "VolumeSnapshot data-snap gone", stepTimeout, func() (bool, error) {
		_, err := c.snap.SnapshotV1().VolumeSnapshots(ns).Get(context.Background(), "data-snap", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	checkForbidden(t)
}
