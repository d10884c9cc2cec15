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

// TestGlibc checks the glibc-dns-testing stand-in has GNU dd, with its
// libraries, where busybox's would be, and a shell that runs it: the
// multiVolume specs write with oflag=nocache, which only GNU dd takes.
func TestGlibc(t *testing.T) {
	if _, err := hostBinary("busybox-static", "/bin/busybox"); err != nil {
		t.Skip(err)
	}
	dd, err := hostBinary("coreutils", "/bin/dd")
	if err != nil {
		t.Skip(err)
	}
	img, err := Glibc("registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1")
	if err != nil {
		t.Fatal(err)
	}
	if e := img.Layer.entries["/bin/dd"]; e == nil || e.source != dd {
		t.Errorf("/bin/dd is %+v, want the file %s", e, dd)
	}
	if e := img.Layer.entries["/bin/sh"]; e == nil || e.linkname != "dash" {
		t.Errorf("/bin/sh is %+v, want dash, which runs /bin/dd where busybox's sh runs its own", e)
	}
	if e := img.Layer.entries["/bin/sha256sum"]; e == nil || e.linkname != "busybox" {
		t.Errorf("/bin/sha256sum is %+v, want busybox's applet", e)
	}
	if isDynamicELF(dd) && !img.Layer.Has("/lib64/ld-linux-x86-64.so.2") && !img.Layer.Has("/lib/ld-linux-aarch64.so.1") {
		t.Error("the image has GNU dd without the dynamic loader it needs")
	}
}
