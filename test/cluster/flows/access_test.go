package flows

import (
	"strings"
	"testing"
)

// TestRawBlock: a block PVC is a device in the pod; what one pod writes
// the next reads back.
func TestRawBlock(t *testing.T) {
	needCluster(t)
	ns := namespace(t)
	createPVC(t, ns, claim{name: "dev", size: "64Mi", block: true})
	createPod(t, ns, workload{name: "w", pvc: "dev", block: true})
	waitRunning(t, ns, "w")
	out, err := podSh(ns, "w", `test -b /dev/xvda && dd if=/dev/urandom of=/tmp/d bs=1M count=4 2>/dev/null &&
dd if=/tmp/d of=/dev/xvda bs=1M conv=fsync 2>/dev/null && sha256sum < /tmp/d && blockdev --getsize64 /dev/xvda`)
	if err != nil {
		t.Fatalf("write the block device: %v", err)
	}
	f := strings.Fields(out)
	if len(f) < 3 || f[2] != "67108864" {
		t.Fatalf("pod w: %q; want the checksum and a 67108864-byte device", out)
	}
	deletePod(t, ns, "w")
	createPod(t, ns, workload{name: "r", pvc: "dev", block: true})
	waitRunning(t, ns, "r")
	got, err := podSh(ns, "r", "dd if=/dev/xvda bs=1M count=4 2>/dev/null | sha256sum")
	if err != nil {
		t.Fatalf("read the block device: %v", err)
	}
	if strings.Fields(got)[0] != f[0] {
		t.Fatalf("read back %s, wrote %s", strings.Fields(got)[0], f[0])
	}
}

// TestReadOnlyAndFSGroup: a pod that mounts its PVC read-only reads what
// another wrote and cannot write; fsGroup gives a non-root pod the volume.
func TestReadOnlyAndFSGroup(t *testing.T) {
	needCluster(t)
	ns := namespace(t)
	createPVC(t, ns, claim{name: "v", size: "64Mi"})
	createPod(t, ns, workload{name: "w", pvc: "v", script: "echo hello > /data/f && sync && sleep 3600"})
	waitRunning(t, ns, "w")
	waitFile(t, ns, "w", "/data/f")
	deletePod(t, ns, "w")

	createPod(t, ns, workload{name: "ro", pvc: "v", readOnly: true})
	waitRunning(t, ns, "ro")
	if out, err := podSh(ns, "ro", "cat /data/f"); err != nil || strings.TrimSpace(out) != "hello" {
		t.Fatalf("the read-only pod reads %q, %v", out, err)
	}
	if out, err := podSh(ns, "ro", "echo x > /data/g"); err == nil {
		t.Fatalf("a write to a read-only volume succeeded: %q", out)
	} else if !strings.Contains(err.Error(), "Read-only file system") {
		t.Errorf("a write to the read-only volume failed, but not as read-only: %v", err)
	}
	deletePod(t, ns, "ro")

	// fsGroup: csi-thin's CSIDriver has fsGroupPolicy File, so kubelet
	// gives the group the volume's files.
	gid, uid := int64(2345), int64(1234)
	createPod(t, ns, workload{name: "fsgroup", pvc: "v", fsGroup: &gid, runAsUser: &uid})
	waitRunning(t, ns, "fsgroup")
	out, err := podSh(ns, "fsgroup", "id -u; stat -c %g /data /data/f; echo mine > /data/mine && stat -c %g /data/mine")
	if err != nil {
		t.Fatalf("the fsGroup pod: %v", err)
	}
	if got := strings.Fields(out); strings.Join(got, " ") != "1234 2345 2345 2345" {
		t.Fatalf("the fsGroup pod: uid, groups of /data, /data/f and a new file: %q, want 1234 and 2345 thrice", got)
	}
}
