package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	groupsnapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumegroupsnapshot/v1"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// The chart, and how the manifests in kubernetes/ are rendered from it.
// `make manifests` runs the same helm template command.
const (
	chartDir      = "helm/csi-thin"
	releaseName   = "csi-thin"
	namespace     = "csi-thin"
	manifestsFile = "kubernetes/csi-thin.yaml"
)

var manifestsArgs = []string{"--set", "namespace.create=true"}

// A valueSet is one way to render the chart.
type valueSet struct {
	name string
	file string   // a values file, relative to this directory
	set  []string // further helm arguments
}

func (v valueSet) args() []string {
	var a []string
	if v.file != "" {
		a = append(a, "--values", v.file)
	}
	return append(a, v.set...)
}

// valueSets: the defaults, a file that sets every value (snapshots in
// cluster placement and snapshot metadata among them, so one forwarder for
// both), one that turns every optional part off, and each feature of the
// forwarder alone.
var valueSets = []valueSet{
	{name: "default"},
	{name: "full", file: "testdata/values-full.yaml"},
	{name: "minimal", file: "testdata/values-minimal.yaml"},
	{name: "manifests", set: manifestsArgs},
	{name: "snapshot-metadata", set: []string{"--set", "snapshotMetadata.enabled=true"}},
	{name: "cluster-snapshots", set: []string{"--set", "snapshots.placement=cluster"}},
}

// helmBinary finds helm: $HELM, then the pinned one that `make test-chart`
// installs in the repository's bin/, then PATH. Without one the test skips.
func helmBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HELM"); p != "" {
		return p
	}
	if p, err := filepath.Abs(filepath.Join("..", "bin", "helm")); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	t.Skip("helm not found: set HELM, or run `make test-chart`, which installs the pinned helm into bin/")
	return ""
}

// runHelm runs helm in this directory and returns its standard output; the
// error holds its standard error.
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// template renders the chart.
func template(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runHelm(t, append([]string{"template", releaseName, chartDir, "--namespace", namespace}, args...)...)
}

// An object is one rendered document, decoded.
type object struct {
	kind, name, namespace string
	source                string // helm's "# Source:" template, for messages
	obj                   any    // a pointer to the API type
}

func (o object) String() string { return fmt.Sprintf("%s %s (%s)", o.kind, o.name, o.source) }

// newObject maps apiVersion/kind to the Go type a document decodes into.
var newObject = map[string]func() any{
	"v1/Namespace":                                             func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                                        func() any { return &corev1.ServiceAccount{} },
	"apps/v1/DaemonSet":                                        func() any { return &appsv1.DaemonSet{} },
	"storage.k8s.io/v1/CSIDriver":                              func() any { return &storagev1.CSIDriver{} },
	"storage.k8s.io/v1/StorageClass":                           func() any { return &storagev1.StorageClass{} },
	"rbac.authorization.k8s.io/v1/ClusterRole":                 func() any { return &rbacv1.ClusterRole{} },
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding":          func() any { return &rbacv1.ClusterRoleBinding{} },
	"rbac.authorization.k8s.io/v1/Role":                        func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding":                 func() any { return &rbacv1.RoleBinding{} },
	"snapshot.storage.k8s.io/v1/VolumeSnapshotClass":           func() any { return &snapshotv1.VolumeSnapshotClass{} },
	"groupsnapshot.storage.k8s.io/v1/VolumeGroupSnapshotClass": func() any { return &groupsnapshotv1.VolumeGroupSnapshotClass{} },
	"v1/Secret":          func() any { return &corev1.Secret{} },
	"v1/Service":         func() any { return &corev1.Service{} },
	"apps/v1/Deployment": func() any { return &appsv1.Deployment{} },
	"cbt.storage.k8s.io/v1beta1/SnapshotMetadataService": func() any { return &SnapshotMetadataService{} },
}

// SnapshotMetadataService is cbt.storage.k8s.io/v1beta1's object, as
// kubernetes-csi/external-snapshot-metadata's CRD has it; its Go client is
// not a dependency of the module.
type SnapshotMetadataService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Address  string `json:"address"`
		CACert   []byte `json:"caCert"`
		Audience string `json:"audience"`
	} `json:"spec"`
}

// decodeStrict decodes one YAML document into its API type as the API
// server's strict field validation would: an unknown or duplicate field, a
// field in the wrong case, or a kind with no known type is an error.
func decodeStrict(doc []byte) (any, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	var tm metav1.TypeMeta
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(j, &tm); err != nil {
		return nil, err
	}
	mk, ok := newObject[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("no Go type for apiVersion %q kind %q: add it to newObject", tm.APIVersion, tm.Kind)
	}
	obj := mk()
	strictErrs, err := sigsjson.UnmarshalStrict(j, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return nil, err
	}
	if len(strictErrs) > 0 {
		return nil, errors.Join(strictErrs...)
	}
	return obj, nil
}

// decodeAll splits a YAML stream into documents and decodes each strictly.
// Documents that hold only comments are skipped.
func decodeAll(stream string) ([]object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	var objs []object
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		source, empty := "", true
		for _, line := range strings.Split(string(doc), "\n") {
			trimmed := strings.TrimSpace(line)
			if s, ok := strings.CutPrefix(trimmed, "# Source: "); ok && source == "" {
				source = s
			}
			if trimmed != "" && trimmed != "---" && !strings.HasPrefix(trimmed, "#") {
				empty = false
			}
		}
		if empty {
			continue
		}
		obj, err := decodeStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		m := obj.(metav1.Object)
		kind := strings.TrimPrefix(fmt.Sprintf("%T", obj), "*")
		kind = kind[strings.LastIndex(kind, ".")+1:]
		objs = append(objs, object{kind: kind, name: m.GetName(), namespace: m.GetNamespace(), source: source, obj: obj})
	}
}

var rendered sync.Map // valueSet name -> []object

// render renders the chart with a value set and decodes every object
// strictly, failing the test on any error.
func render(t *testing.T, v valueSet) []object {
	t.Helper()
	if objs, ok := rendered.Load(v.name); ok {
		return objs.([]object)
	}
	out, err := template(t, v.args()...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeAll(out)
	if err != nil {
		t.Fatalf("values %s: %v", v.name, err)
	}
	rendered.Store(v.name, objs)
	return objs
}

// ofKind returns the objects of one kind, as their Go type.
func ofKind[T any](objs []object) []*T {
	var r []*T
	for _, o := range objs {
		if p, ok := o.obj.(*T); ok {
			r = append(r, p)
		}
	}
	return r
}

// one returns the single object of a kind, failing when there is not
// exactly one.
func one[T any](t *testing.T, objs []object) *T {
	t.Helper()
	all := ofKind[T](objs)
	if len(all) != 1 {
		var zero T
		t.Fatalf("want one %T, have %d", zero, len(all))
	}
	return all[0]
}
