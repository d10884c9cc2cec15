package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// readArchive returns the files of an image archive by name.
func readArchive(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = b
	}
}

func sha(b []byte) string { s := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(s[:]) }

// TestWrite checks the archive is an OCI image layout whose digests hold,
// whose index names the image as containerd's importer reads it, and whose
// layer has the files, links and hard links given.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "prog")
	if err := os.WriteFile(src, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(src, filepath.Join(dir, "prog2")); err != nil {
		t.Fatal(err)
	}
	for _, gz := range []bool{false, true} {
		l := NewLayer()
		if err := l.File("/usr/bin/prog", src); err != nil {
			t.Fatal(err)
		}
		if err := l.File("/usr/bin/another", filepath.Join(dir, "prog2")); err != nil {
			t.Fatal(err)
		}
		l.Symlink("/bin", "usr/bin")
		l.Data("/etc/motd", []byte("hello\n"), 0o644)
		if !l.Has("/bin/prog") || l.Has("/bin/nothing") {
			t.Fatalf("Has does not follow the image's symlinks")
		}
		out := filepath.Join(dir, "img.tar")
		ref := "example.com/test/prog:v1"
		res, err := Write(out, Image{Refs: []string{ref}, Layer: l, Gzip: gz, Config: Config{Entrypoint: []string{"/bin/prog"}}})
		if err != nil {
			t.Fatal(err)
		}
		files := readArchive(t, out)
		var index struct {
			Manifests []descriptor `json:"manifests"`
		}
		if err := json.Unmarshal(files["index.json"], &index); err != nil {
			t.Fatal(err)
		}
		if len(index.Manifests) != 1 || index.Manifests[0].Annotations[annotationImageName] != ref || index.Manifests[0].Digest != res.Manifest {
			t.Fatalf("index %+v, want one manifest %s named %s", index.Manifests, res.Manifest, ref)
		}
		blob := func(d string) []byte {
			b, ok := files[blobPath(d)]
			if !ok {
				t.Fatalf("blob %s missing", d)
			}
			if sha(b) != d {
				t.Fatalf("blob %s has digest %s", d, sha(b))
			}
			return b
		}
		var m struct {
			Config descriptor   `json:"config"`
			Layers []descriptor `json:"layers"`
		}
		if err := json.Unmarshal(blob(res.Manifest), &m); err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Config Config `json:"config"`
			RootFS struct {
				DiffIDs []string `json:"diff_ids"`
			} `json:"rootfs"`
		}
		if err := json.Unmarshal(blob(m.Config.Digest), &cfg); err != nil {
			t.Fatal(err)
		}
		layer := blob(m.Layers[0].Digest)
		raw := layer
		if gz {
			raw = gunzip(t, layer)
		}
		if len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != sha(raw) {
			t.Fatalf("diff_ids %v, want the uncompressed layer's %s", cfg.RootFS.DiffIDs, sha(raw))
		}
		if cfg.Config.Entrypoint[0] != "/bin/prog" {
			t.Fatalf("entrypoint %v", cfg.Config.Entrypoint)
		}
		got := map[string]*tar.Header{}
		tr := tar.NewReader(bytes.NewReader(raw))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got[h.Name] = h
		}
		if h := got["bin"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "usr/bin" {
			t.Errorf("bin: %+v, want a symlink to usr/bin", h)
		}
		if h := got["usr/bin/another"]; h == nil || h.Typeflag != tar.TypeReg || h.Mode != 0o755 {
			t.Errorf("usr/bin/another: %+v, want the file with mode 0755", h)
		}
		if h := got["usr/bin/prog"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "usr/bin/another" {
			t.Errorf("usr/bin/prog: %+v, want a hard link to the first copy", h)
		}
		if h := got["tmp/"]; h == nil || h.Mode != 0o1777 {
			t.Errorf("tmp/: %+v, want mode 1777", h)
		}
	}
}

func TestCheckRef(t *testing.T) {
	for ref, ok := range map[string]bool{
		"registry.k8s.io/pause:3.10.1":    true,
		"localhost/x:1":                   true,
		"localhost:5000/x:1":              true,
		"busybox:1.35.0":                  false,
		"library/busybox:1.35.0":          false,
		"docker.io/library/busybox":       false,
		"ghcr.io/csi-thin/csi-thin:dev-1": true,
	} {
		if err := checkRef(ref); (err == nil) != ok {
			t.Errorf("checkRef(%q) = %v, want ok %v", ref, err, ok)
		}
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
