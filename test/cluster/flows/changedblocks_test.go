package flows

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The backup client (cmd/cbt-client; test/cluster/cluster builds its image).
const backupImage = "csi-thin.test/cbt-client:dev"

const mi = int64(1) << 20

// span is a byte range [off, off+len).
type span struct{ off, len int64 }

func (s span) String() string { return fmt.Sprintf("[%dMi,%dMi)", s.off/mi, (s.off+s.len)/mi) }

// TestChangedBlocks: a backup tool reads a snapshot's allocated blocks, and
// the blocks changed between two snapshots, through the chart's
// SnapshotMetadata service: the external-snapshot-metadata sidecar
// authenticates the client's token, csi-thin's forwarder finds the node
// that holds the snapshots and relays that node's answer. On each node, so
// that the forwarder has to find both.
func TestChangedBlocks(t *testing.T) {
	needCluster(t)
	ns := namespace(t)
	backupClient(t, ns)
	for i, node := range c.nodes {
		dev := fmt.Sprintf("dev-%d", i+1)
		createPVC(t, ns, claim{name: dev, size: "64Mi", block: true})
		createPod(t, ns, workload{name: dev, pvc: dev, block: true, node: node})
		waitRunning(t, ns, dev)
		// Only what dd writes is allocated: a block volume has no
		// filesystem to write metadata.
		write := func(spans ...span) {
			t.Helper()
			var cmds []string
			for _, s := range spans {
				cmds = append(cmds, fmt.Sprintf("dd if=/dev/urandom of=/dev/xvda bs=1M seek=%d count=%d conv=fsync,notrunc 2>/dev/null", s.off/mi, s.len/mi))
			}
			if out, err := podSh(ns, dev, strings.Join(cmds, " && ")); err != nil {
				t.Fatalf("write %v to %s: %v: %s", spans, dev, err, out)
			}
		}
		write(span{0, 2 * mi}, span{16 * mi, mi})
		a, b := dev+"-a", dev+"-b"
		createSnapshot(t, ns, a, dev)
		waitSnapshotReady(t, ns, a)
		write(span{16 * mi, mi}, span{32 * mi, mi})
		createSnapshot(t, ns, b, dev)
		waitSnapshotReady(t, ns, b)

		if got, want := listBlocks(t, ns, "alloc-"+dev, "-snapshot", a), []span{{0, 2 * mi}, {16 * mi, mi}}; !slices.Equal(got, want) {
			t.Errorf("%s on %s: allocated %v, want %v", a, node, got, want)
		}
		if got, want := listBlocks(t, ns, "delta-"+dev, "-snapshot", b, "-previous-snapshot", a), []span{{16 * mi, mi}, {32 * mi, mi}}; !slices.Equal(got, want) {
			t.Errorf("%s on %s: changed since %s %v, want %v", b, node, a, got, want)
		}
		// A page of one range at a time, from an offset, as a client
		// resumes an interrupted stream.
		if got, want := listBlocks(t, ns, "resume-"+dev, "-snapshot", b, "-starting-offset", fmt.Sprint(mi), "-max-results", "1"), []span{{mi, mi}, {16 * mi, mi}, {32 * mi, mi}}; !slices.Equal(got, want) {
			t.Errorf("%s on %s: allocated from 1Mi %v, want %v", b, node, got, want)
		}
	}
	checkForbidden(t)
}

// backupClient gives the namespace's default ServiceAccount what a backup
// tool needs (external-snapshot-metadata's client RBAC): find the
// SnapshotMetadataService, read the snapshots, and get a token for the
// service's audience.
func backupClient(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	name := ns + "-backup"
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"cbt.storage.k8s.io"}, Resources: []string{"snapshotmetadataservices"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{"snapshot.storage.k8s.io"}, Resources: []string{"volumesnapshots", "volumesnapshotcontents"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create", "get"}},
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get"}},
		},
	}
	if _, err := c.kube.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create ClusterRole %s: %v", name, err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "default", Namespace: ns}},
	}
	if _, err := c.kube.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create ClusterRoleBinding %s: %v", name, err)
	}
	t.Cleanup(func() {
		c.kube.RbacV1().ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		c.kube.RbacV1().ClusterRoles().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

// listerRecord is one record of cbt-client's output (that of
// snapshot-metadata-lister -o json): one message of the stream.
type listerRecord struct {
	Type          int   `json:"block_metadata_type"`
	CapacityBytes int64 `json:"volume_capacity_bytes"`
	Blocks        []struct {
		Offset int64 `json:"byte_offset"`
		Size   int64 `json:"size_bytes"`
	} `json:"block_metadata"`
}

// listBlocks runs the backup client in a pod of the namespace with args
// and returns the ranges it printed, adjacent ones merged.
func listBlocks(t *testing.T, ns, pod string, args ...string) []span {
	t.Helper()
	zero := int64(0)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: pod},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &zero,
			Containers: []corev1.Container{{
				Name: "backup", Image: backupImage, ImagePullPolicy: corev1.PullNever,
				Args: args,
			}},
		},
	}
	if _, err := c.kube.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", pod, err)
	}
	waitFor(t, "pod "+pod+" done", stepTimeout, func() (bool, error) {
		got, err := c.kube.CoreV1().Pods(ns).Get(context.Background(), pod, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return got.Status.Phase == corev1.PodSucceeded || got.Status.Phase == corev1.PodFailed, nil
	})
	out, err := kubectl("-n", ns, "logs", pod)
	if err != nil {
		t.Fatalf("logs of %s: %v", pod, err)
	}
	got, _ := c.kube.CoreV1().Pods(ns).Get(context.Background(), pod, metav1.GetOptions{})
	if got.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("cbt-client %s failed:\n%s", strings.Join(args, " "), out)
	}
	// The JSON is the one line that starts a list; errors go before it.
	var records []listerRecord
	found := false
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "[") {
			if err := json.Unmarshal([]byte(l), &records); err != nil {
				t.Fatalf("cbt-client %s: %v in %q", strings.Join(args, " "), err, l)
			}
			found = true
		}
	}
	if !found {
		t.Fatalf("cbt-client %s printed no JSON list:\n%s", strings.Join(args, " "), out)
	}
	var spans []span
	for _, r := range records {
		if r.CapacityBytes != 64*mi {
			t.Errorf("a record says the volume has %d bytes, want %d", r.CapacityBytes, 64*mi)
		}
		for _, b := range r.Blocks {
			if n := len(spans); n > 0 && spans[n-1].off+spans[n-1].len == b.Offset {
				spans[n-1].len += b.Size
				continue
			}
			spans = append(spans, span{b.Offset, b.Size})
		}
	}
	t.Logf("cbt-client %s: %d records, %v", strings.Join(args, " "), len(records), spans)
	return spans
}
