package deploy

import (
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestManifestsMatchChart fails when kubernetes/csi-thin.yaml is not what
// the chart renders: run `make manifests` after changing the chart.
func TestManifestsMatchChart(t *testing.T) {
	want, err := template(t, manifestsArgs...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(manifestsFile)
	if err != nil {
		t.Fatalf("%v: run `make manifests`", err)
	}
	got := string(b)
	if got == want {
		return
	}
	gotLines, wantLines := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(gotLines), len(wantLines)); i++ {
		var g, w string
		if i < len(gotLines) {
			g = gotLines[i]
		}
		if i < len(wantLines) {
			w = wantLines[i]
		}
		if g != w {
			t.Fatalf("deploy/%s has drifted from the chart: run `make manifests`.\nFirst difference, line %d:\n  file:  %q\n  chart: %q",
				manifestsFile, i+1, g, w)
		}
	}
}

// TestManifestsDecode decodes the committed manifests strictly, without
// helm: what kubectl applies must be valid on its own.
func TestManifestsDecode(t *testing.T) {
	b, err := os.ReadFile(manifestsFile)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeAll(string(b))
	if err != nil {
		t.Fatal(err)
	}
	ns := one[corev1.Namespace](t, objs)
	if ns.Name != namespace {
		t.Errorf("Namespace %q, want %q", ns.Name, namespace)
	}
	// The namespace must come first, so that kubectl creates it before
	// the objects in it.
	if objs[0].kind != "Namespace" {
		t.Errorf("first object is %v, want the Namespace", objs[0])
	}
	if ds := one[appsv1.DaemonSet](t, objs); ds.Namespace != namespace {
		t.Errorf("DaemonSet %s in namespace %q, want %q", ds.Name, ds.Namespace, namespace)
	}
}
