package images

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Media types of the OCI image specification (v1).
const (
	mediaTypeIndex     = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest  = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig    = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer     = "application/vnd.oci.image.layer.v1.tar"
	mediaTypeLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"

	// annotationImageName is the name containerd's importer gives the
	// image of an index entry (ctr images import, without --base-name).
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"
)

// epoch is the time stamp of every entry: archives built from the same
// files are the same bytes.
var epoch = time.Unix(0, 0).UTC()

// Config is the part of an image's configuration a container runs with.
type Config struct {
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	Env        []string `json:"Env,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
}

// Image is an image to write: its names (full references such as
// registry.k8s.io/pause:3.10.1), its configuration and its layer.
type Image struct {
	Refs   []string
	Config Config
	Layer  *Layer
	// Gzip compresses the layer (fastest level). Off, the layer is a
	// plain tar.
	Gzip bool
}

// Result says what Write wrote.
type Result struct {
	Path         string // the archive
	Size         int64  // its size in bytes
	LayerSize    int64  // the layer blob's size
	Uncompressed int64  // the layer's uncompressed size
	Manifest     string // digest of the manifest
	Files        int    // entries in the layer
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// Write writes img as an OCI image layout in a tar archive at out.
func Write(out string, img Image) (Result, error) {
	res := Result{Path: out}
	if len(img.Refs) == 0 {
		return res, fmt.Errorf("image for %s has no name", out)
	}
	for _, r := range img.Refs {
		if err := checkRef(r); err != nil {
			return res, err
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".layer-*")
	if err != nil {
		return res, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	// The layer blob, hashed twice: its digest (what the manifest names)
	// and the digest of its uncompressed tar (the config's diff_id).
	blobHash := sha256.New()
	blobCount := &countWriter{}
	var layerW io.Writer = io.MultiWriter(tmp, blobHash, blobCount)
	var gz *gzip.Writer
	if img.Gzip {
		gz, _ = gzip.NewWriterLevel(layerW, gzip.BestSpeed)
		layerW = gz
	}
	diffHash := sha256.New()
	rawCount := &countWriter{}
	n, err := img.Layer.writeTar(io.MultiWriter(layerW, diffHash, rawCount))
	if err != nil {
		return res, err
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			return res, err
		}
	}
	res.Files, res.LayerSize, res.Uncompressed = n, blobCount.n, rawCount.n
	layerDigest, diffID := digestOf(blobHash), digestOf(diffHash)

	layerType := mediaTypeLayer
	if img.Gzip {
		layerType = mediaTypeLayerGzip
	}
	cfg, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       img.Config,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"history":      []map[string]string{{"created_by": "test/cluster/images", "comment": "files of the build machine"}},
	})
	if err != nil {
		return res, err
	}
	cfgDesc := descriptor{MediaType: mediaTypeConfig, Digest: digestBytes(cfg), Size: int64(len(cfg))}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaTypeManifest,
		"config":        cfgDesc,
		"layers":        []descriptor{{MediaType: layerType, Digest: layerDigest, Size: blobCount.n}},
	})
	if err != nil {
		return res, err
	}
	res.Manifest = digestBytes(manifest)
	var entries []descriptor
	for _, r := range img.Refs {
		entries = append(entries, descriptor{
			MediaType: mediaTypeManifest, Digest: res.Manifest, Size: int64(len(manifest)),
			Platform:    &platform{Architecture: runtime.GOARCH, OS: "linux"},
			Annotations: map[string]string{annotationImageName: r, annotationRefName: tagOf(r)},
		})
	}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediaTypeIndex, "manifests": entries})
	if err != nil {
		return res, err
	}

	f, err := os.Create(out + ".tmp")
	if err != nil {
		return res, err
	}
	defer os.Remove(out + ".tmp")
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/", Mode: 0o755, ModTime: epoch, Typeflag: tar.TypeDir}); err != nil {
		return res, err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/", Mode: 0o755, ModTime: epoch, Typeflag: tar.TypeDir}); err != nil {
		return res, err
	}
	if err := tw.WriteHeader(&tar.Header{Name: blobPath(layerDigest), Mode: 0o644, Size: blobCount.n, ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
		return res, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return res, err
	}
	if _, err := io.Copy(tw, tmp); err != nil {
		return res, err
	}
	for _, b := range []struct {
		name string
		data []byte
	}{
		{blobPath(cfgDesc.Digest), cfg},
		{blobPath(res.Manifest), manifest},
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
	} {
		if err := add(b.name, b.data); err != nil {
			return res, err
		}
	}
	if err := tw.Close(); err != nil {
		return res, err
	}
	if err := f.Close(); err != nil {
		return res, err
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		return res, err
	}
	fi, err := os.Stat(out)
	if err != nil {
		return res, err
	}
	res.Size = fi.Size()
	return res, nil
}

// writeTar writes the layer's entries, sorted by path. Host files that are
// hard links of each other are written once and linked.
func (l *Layer) writeTar(w io.Writer) (int, error) {
	tw := tar.NewWriter(w)
	written := map[[2]uint64]string{}
	paths := l.sortedPaths()
	for _, p := range paths {
		e := l.entries[p]
		name := strings.TrimPrefix(p, "/")
		h := &tar.Header{Name: name, Mode: int64(e.mode.Perm()), ModTime: epoch}
		var src *os.File
		switch {
		case e.mode.IsDir():
			h.Typeflag, h.Name = tar.TypeDir, name+"/"
			if e.mode&os.ModeSticky != 0 {
				h.Mode |= 0o1000
			}
		case e.mode&os.ModeSymlink != 0:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.linkname
		case e.source != "":
			f, err := os.Open(e.source)
			if err != nil {
				return 0, err
			}
			fi, err := f.Stat()
			if err != nil {
				f.Close()
				return 0, err
			}
			h.Typeflag, h.Size = tar.TypeReg, fi.Size()
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				key := [2]uint64{uint64(st.Dev), st.Ino}
				if first, ok := written[key]; ok {
					h.Typeflag, h.Size, h.Linkname = tar.TypeLink, 0, first
					f.Close()
					break
				}
				written[key] = name
			}
			src = f
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			if src != nil {
				src.Close()
			}
			return 0, fmt.Errorf("%s: %w", p, err)
		}
		switch {
		case src != nil:
			n, err := io.Copy(tw, src)
			src.Close()
			if err != nil {
				return 0, fmt.Errorf("%s: %w", p, err)
			}
			if n != h.Size {
				return 0, fmt.Errorf("%s changed while it was read", e.source)
			}
		case h.Typeflag == tar.TypeReg && e.data != nil:
			if _, err := tw.Write(e.data); err != nil {
				return 0, err
			}
		}
	}
	return len(paths), tw.Close()
}

// checkRef refuses a name containerd would not import as the same name
// Kubernetes asks for: it must be a full reference with a registry host
// and a tag.
func checkRef(r string) error {
	slash := strings.Index(r, "/")
	if slash < 0 || !strings.ContainsAny(r[:slash], ".:") && r[:slash] != "localhost" {
		return fmt.Errorf("image name %q has no registry host: write it in full, e.g. docker.io/library/busybox:1.35.0", r)
	}
	if tagOf(r) == "" {
		return fmt.Errorf("image name %q has no tag: give one (a pod's image without a tag means :latest, which kubelet always pulls)", r)
	}
	return nil
}

func tagOf(r string) string {
	last := r[strings.LastIndex(r, "/")+1:]
	if i := strings.LastIndex(last, ":"); i >= 0 {
		return last[i+1:]
	}
	return ""
}

func blobPath(digest string) string { return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:") }

func digestOf(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

func digestBytes(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
