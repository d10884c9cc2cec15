package deploy

import (
	"fmt"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// A grant is a set of rules a ServiceAccount holds through one binding:
// cluster-wide (namespace "") or in one namespace.
type grant struct {
	namespace string
	binding   string
	rules     []rbacv1.PolicyRule
}

// grantsFor evaluates the rendered RBAC objects for a ServiceAccount, as
// the API server's RBAC authorizer would.
func grantsFor(t *testing.T, objs []object, saNamespace, saName string) []grant {
	t.Helper()
	clusterRoles := map[string][]rbacv1.PolicyRule{}
	for _, cr := range ofKind[rbacv1.ClusterRole](objs) {
		clusterRoles[cr.Name] = cr.Rules
	}
	roles := map[string][]rbacv1.PolicyRule{}
	for _, r := range ofKind[rbacv1.Role](objs) {
		roles[r.Namespace+"/"+r.Name] = r.Rules
	}
	bound := func(subjects []rbacv1.Subject) bool {
		return slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool {
			return s.Kind == rbacv1.ServiceAccountKind && s.Namespace == saNamespace && s.Name == saName
		})
	}
	var grants []grant
	for _, b := range ofKind[rbacv1.ClusterRoleBinding](objs) {
		if !bound(b.Subjects) {
			continue
		}
		rules, ok := clusterRoles[b.RoleRef.Name]
		if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.APIGroup != rbacv1.GroupName || !ok {
			t.Errorf("ClusterRoleBinding %s refers to %s %q, which the chart does not render", b.Name, b.RoleRef.Kind, b.RoleRef.Name)
			continue
		}
		grants = append(grants, grant{binding: "ClusterRoleBinding " + b.Name, rules: rules})
	}
	for _, b := range ofKind[rbacv1.RoleBinding](objs) {
		if !bound(b.Subjects) {
			continue
		}
		var rules []rbacv1.PolicyRule
		var ok bool
		switch b.RoleRef.Kind {
		case "Role":
			rules, ok = roles[b.Namespace+"/"+b.RoleRef.Name]
		case "ClusterRole":
			rules, ok = clusterRoles[b.RoleRef.Name]
		}
		if !ok || b.RoleRef.APIGroup != rbacv1.GroupName {
			t.Errorf("RoleBinding %s/%s refers to %s %q, which the chart does not render", b.Namespace, b.Name, b.RoleRef.Kind, b.RoleRef.Name)
			continue
		}
		grants = append(grants, grant{namespace: b.Namespace, binding: "RoleBinding " + b.Name, rules: rules})
	}
	return grants
}

func matches(list []string, s string) bool {
	return slices.Contains(list, s) || slices.Contains(list, rbacv1.ResourceAll)
}

// allowed reports whether the grants allow verb on group/resource: in any
// namespace when clusterWide (only cluster-wide grants count), else in ns.
func allowed(grants []grant, clusterWide bool, ns, group, resource, verb string) bool {
	for _, g := range grants {
		if g.namespace != "" && (clusterWide || g.namespace != ns) {
			continue
		}
		for _, r := range g.rules {
			if matches(r.APIGroups, group) && matches(r.Resources, resource) && matches(r.Verbs, verb) && len(r.ResourceNames) == 0 {
				return true
			}
		}
	}
	return false
}

// A need is access one sidecar needs: verbs on group/resource, in every
// namespace (clusterWide) or in the release namespace.
type need struct {
	clusterWide bool
	group       string
	resource    string
	verbs       []string
}

func (n need) String() string {
	scope := "in namespace " + namespace
	if n.clusterWide {
		scope = "cluster-wide"
	}
	return fmt.Sprintf("%v on %q %s %s", n.verbs, n.group, n.resource, scope)
}

type needs []need

// has reports whether the needs include verb on group/resource.
func (ns needs) has(group, resource, verb string) bool {
	return slices.ContainsFunc(ns, func(n need) bool {
		return n.group == group && n.resource == resource && slices.Contains(n.verbs, verb)
	})
}

// What each sidecar needs, after each project's deploy/kubernetes RBAC
// (external-provisioner rbac.yaml, external-snapshotter
// rbac-csi-snapshotter.yaml, external-resizer rbac.yaml) for the way the
// chart runs it. node-driver-registrar and livenessprobe need nothing.
var (
	provisionerNeeds = needs{
		{true, "", "persistentvolumes", []string{"get", "list", "watch", "create", "patch", "delete"}},
		{true, "", "persistentvolumeclaims", []string{"get", "list", "watch", "update"}},
		{true, "storage.k8s.io", "storageclasses", []string{"get", "list", "watch"}},
		{true, "", "events", []string{"list", "watch", "create", "update", "patch"}},
		// watch and update: the finalizer that protects a snapshot being
		// restored (its log says "forbidden" on every resync without them).
		{true, "snapshot.storage.k8s.io", "volumesnapshots", []string{"get", "list", "watch", "update"}},
		{true, "snapshot.storage.k8s.io", "volumesnapshotcontents", []string{"get", "list"}},
		{true, "storage.k8s.io", "csinodes", []string{"get", "list", "watch"}},
		{true, "", "nodes", []string{"get", "list", "watch"}},
		{true, "storage.k8s.io", "volumeattributesclasses", []string{"get", "list", "watch"}},
	}
	// With --enable-capacity: CSIStorageCapacity objects in its own
	// namespace, and its own pod to find the DaemonSet that owns them.
	capacityNeeds = needs{
		{false, "storage.k8s.io", "csistoragecapacities", []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{false, "", "pods", []string{"get"}},
	}
	snapshotterNeeds = needs{
		{true, "", "events", []string{"list", "watch", "create", "update", "patch"}},
		{true, "snapshot.storage.k8s.io", "volumesnapshotclasses", []string{"get", "list", "watch"}},
		{true, "snapshot.storage.k8s.io", "volumesnapshotcontents", []string{"create", "get", "list", "watch", "update", "delete", "patch"}},
		{true, "snapshot.storage.k8s.io", "volumesnapshotcontents/status", []string{"update", "patch"}},
		{true, "groupsnapshot.storage.k8s.io", "volumegroupsnapshotclasses", []string{"get", "list", "watch"}},
		{true, "groupsnapshot.storage.k8s.io", "volumegroupsnapshotcontents", []string{"get", "list", "watch", "update", "patch"}},
		{true, "groupsnapshot.storage.k8s.io", "volumegroupsnapshotcontents/status", []string{"update", "patch"}},
	}
	// Not per node: the same, and its leader election.
	clusterSnapshotterNeeds = append(slices.Clip(snapshotterNeeds),
		need{false, "coordination.k8s.io", "leases", []string{"get", "watch", "list", "delete", "update", "create"}})
	// The external-snapshot-metadata sidecar, after its deploy/ RBAC.
	snapshotMetadataNeeds = needs{
		{true, "cbt.storage.k8s.io", "snapshotmetadataservices", []string{"get", "list", "watch"}},
		{true, "authentication.k8s.io", "tokenreviews", []string{"create"}},
		{true, "authorization.k8s.io", "subjectaccessreviews", []string{"create"}},
		{true, "snapshot.storage.k8s.io", "volumesnapshots", []string{"get", "list"}},
		{true, "snapshot.storage.k8s.io", "volumesnapshotcontents", []string{"get", "list"}},
		{true, "snapshot.storage.k8s.io", "volumesnapshotclasses", []string{"get", "list"}},
	}
	resizerNeeds = needs{
		{true, "", "persistentvolumes", []string{"get", "list", "watch", "patch"}},
		{true, "", "persistentvolumeclaims", []string{"get", "list", "watch"}},
		{true, "", "persistentvolumeclaims/status", []string{"patch"}},
		{true, "", "pods", []string{"get", "list", "watch"}},
		{true, "", "events", []string{"list", "watch", "create", "update", "patch"}},
		{true, "storage.k8s.io", "volumeattributesclasses", []string{"get", "list", "watch"}},
		// Leader election.
		{false, "coordination.k8s.io", "leases", []string{"get", "watch", "list", "delete", "update", "create"}},
	}
)

// TestRBAC checks that the node ServiceAccount holds what each sidecar in
// the DaemonSet needs, that a sidecar left out leaves its special rights
// out too, and that nothing grants secrets or wildcards.
func TestRBAC(t *testing.T) {
	for _, v := range valueSets {
		t.Run(v.name, func(t *testing.T) {
			objs := render(t, v)
			for _, ds := range daemonSets(objs) {
				sa := ds.Spec.Template.Spec.ServiceAccountName
				grants := grantsFor(t, objs, ds.Namespace, sa)
				if sas := ofKind[corev1.ServiceAccount](objs); len(sas) > 0 && !slices.ContainsFunc(sas, func(s *corev1.ServiceAccount) bool {
					return s.Name == sa && s.Namespace == ds.Namespace
				}) {
					t.Errorf("DaemonSet %s runs as ServiceAccount %q, which the chart does not render", ds.Name, sa)
				}
				// check checks that the grants allow (want) or do not allow
				// the needs; for "not allowed", access the provisioner,
				// which is always there, needs itself is skipped.
				check := func(who string, ns needs, want bool) {
					for _, n := range ns {
						for _, verb := range n.verbs {
							if !want && provisionerNeeds.has(n.group, n.resource, verb) {
								continue
							}
							if got := allowed(grants, n.clusterWide, ds.Namespace, n.group, n.resource, verb); got != want {
								t.Errorf("%s: ServiceAccount %s: %s allowed = %v, want %v (%s)", ds.Name, sa, who, got, want, need{n.clusterWide, n.group, n.resource, []string{verb}})
							}
						}
					}
				}
				provisioner := container(ds, "csi-provisioner")
				if provisioner == nil {
					t.Fatalf("%s has no csi-provisioner", ds.Name)
				}
				check("csi-provisioner", provisionerNeeds, true)
				check("csi-provisioner with --enable-capacity", capacityNeeds[:1], flags(t, provisioner)["enable-capacity"] == "true")
				if flags(t, provisioner)["enable-capacity"] == "true" {
					check("csi-provisioner with --enable-capacity", capacityNeeds, true)
				}
				check("csi-snapshotter", snapshotterNeeds, container(ds, "csi-snapshotter") != nil)
				check("csi-resizer", resizerNeeds, container(ds, "csi-resizer") != nil)
				for _, g := range grants {
					for _, r := range g.rules {
						if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "*") ||
							slices.Contains(r.Verbs, "*") || slices.Contains(r.APIGroups, "*") {
							t.Errorf("%s grants %v: csi-thin needs no secrets and no wildcards", g.binding, r)
						}
					}
				}
			}
		})
	}
}

// TestForwarderRBAC checks that the forwarder's ServiceAccount holds what
// its sidecars need, the cluster's csi-snapshotter's leases included, and
// nothing when they are not there (the forwarder itself needs no
// Kubernetes API), and that nothing grants secrets or wildcards.
func TestForwarderRBAC(t *testing.T) {
	forEachValueSet(t, func(t *testing.T, _ valueSet, want expectation, objs []object) {
		for _, d := range ofKind[appsv1.Deployment](objs) {
			sa := d.Spec.Template.Spec.ServiceAccountName
			if !slices.ContainsFunc(ofKind[corev1.ServiceAccount](objs), func(s *corev1.ServiceAccount) bool {
				return s.Name == sa && s.Namespace == d.Namespace
			}) {
				t.Errorf("Deployment %s runs as ServiceAccount %q, which the chart does not render", d.Name, sa)
			}
			grants := grantsFor(t, objs, d.Namespace, sa)
			snapshotter := deploymentContainer(d, "csi-snapshotter") != nil
			sidecar := deploymentContainer(d, "csi-snapshot-metadata") != nil
			// check checks that the grants allow (want) or do not allow the
			// needs; for "not allowed", access the other sidecar there
			// needs itself is skipped.
			check := func(who string, ns needs, want bool) {
				for _, n := range ns {
					for _, verb := range n.verbs {
						if !want && ((snapshotter && clusterSnapshotterNeeds.has(n.group, n.resource, verb)) ||
							(sidecar && snapshotMetadataNeeds.has(n.group, n.resource, verb))) {
							continue
						}
						if got := allowed(grants, n.clusterWide, d.Namespace, n.group, n.resource, verb); got != want {
							t.Errorf("%s: ServiceAccount %s: %s allowed = %v, want %v (%s)", d.Name, sa, who, got, want, need{n.clusterWide, n.group, n.resource, []string{verb}})
						}
					}
				}
			}
			if snapshotter != want.clusterSnapshots || sidecar != want.snapshotMetadata {
				t.Errorf("%s: csi-snapshotter %v, csi-snapshot-metadata %v; want %v and %v", d.Name, snapshotter, sidecar, want.clusterSnapshots, want.snapshotMetadata)
			}
			if snapshotter {
				check("csi-snapshotter", clusterSnapshotterNeeds, true)
			} else {
				check("no csi-snapshotter", clusterSnapshotterNeeds, false)
			}
			if sidecar {
				check("csi-snapshot-metadata", snapshotMetadataNeeds, true)
			} else {
				check("no csi-snapshot-metadata", snapshotMetadataNeeds, false)
			}
			for _, g := range grants {
				for _, r := range g.rules {
					if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "*") ||
						slices.Contains(r.Verbs, "*") || slices.Contains(r.APIGroups, "*") {
						t.Errorf("%s grants %v: the forwarder needs no secrets and no wildcards", g.binding, r)
					}
				}
			}
		}
	})
}

// TestRBACEvaluator checks the evaluator the RBAC test relies on.
func TestRBACEvaluator(t *testing.T) {
	grants := []grant{
		{rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}}}},
		{namespace: "ns", rules: []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"*"}}}},
		{rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{"one"}}}},
	}
	tests := []struct {
		clusterWide          bool
		ns, group, res, verb string
		want                 bool
	}{
		{true, "", "", "nodes", "get", true},
		{true, "", "", "nodes", "list", false},
		{false, "ns", "", "nodes", "get", true},
		{false, "ns", "coordination.k8s.io", "leases", "update", true},
		{false, "other", "coordination.k8s.io", "leases", "update", false},
		{true, "", "coordination.k8s.io", "leases", "update", false},
		{true, "", "", "secrets", "get", false},
	}
	for _, tt := range tests {
		if got := allowed(grants, tt.clusterWide, tt.ns, tt.group, tt.res, tt.verb); got != tt.want {
			t.Errorf("allowed(clusterWide=%v, %q, %q, %q, %q) = %v, want %v", tt.clusterWide, tt.ns, tt.group, tt.res, tt.verb, got, tt.want)
		}
	}
}
