package images

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestAgnhost checks the agnhost image has what the storage tests run in
// it: /agnhost as the entrypoint with pause by default, and the shell and
// nsenter of the host exec pod.
func TestAgnhost(t *testing.T) {
	if _, err := hostBinary("busybox-static", "/bin/busybox"); err != nil {
		t.Skip(err)
	}
	bin := filepath.Join(t.TempDir(), "agnhost")
	if err := os.WriteFile(bin, []byte("not a program"), 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := Agnhost(bin, "registry.k8s.io/e2e-test-images/agnhost:2.66.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/agnhost", "/agnhost-2", "/bin/sh", "/bin/nsenter", "/uploads"} {
		if !img.Layer.Has(p) {
			t.Errorf("the image has no %s", p)
		}
	}
	if e := img.Layer.entries["/agnhost"]; e == nil || e.source != bin {
		t.Errorf("/agnhost is %+v, want the file %s", e, bin)
	}
	if !slices.Equal(img.Config.Entrypoint, []string{"/agnhost"}) || !slices.Equal(img.Config.Cmd, []string{"pause"}) {
		t.Errorf("entrypoint %q, command %q: want [/agnhost] [pause]", img.Config.Entrypoint, img.Config.Cmd)
	}
}
