// Command cluster-images builds the container images of the cluster tests
// without a container engine or a registry: OCI image archives for
// `ctr -n k8s.io images import`, one per image, named as the chart and the
// kubelet ask for them.
//
//	cluster-images -out DIR -csi-thin BIN -pause BIN [-agnhost BIN] [-static REF=BIN]...
//
// It writes DIR/<name>.tar for busybox, pause, csi-thin, agnhost (with
// -agnhost) and each -static image, and DIR/images.txt: a line
// "ARCHIVE REF..." per image.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/csi-thin/csi-thin/test/cluster/images"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	out := flag.String("out", "", "directory to write the archives to (created)")
	driver := flag.String("csi-thin", "", "the static csi-thin binary (CGO_ENABLED=0 go build ./cmd/csi-thin)")
	pkgList := flag.String("packages", "deploy/image-packages.txt", "the csi-thin image's Debian package list, the Dockerfile's")
	pause := flag.String("pause", "", "the static pause binary (go build ./images/pause in test/cluster)")
	agnhost := flag.String("agnhost", "", "the static agnhost binary of the e2e tests (build-e2e builds it); empty: no agnhost image")
	// In the UML node gzip layers import faster than plain ones (reading
	// the host's files through hostfs costs more than inflating them) and
	// take less of the node's memory.
	gz := flag.Bool("gzip", true, "compress the layers with gzip")
	var driverRefs, pauseRefs, busyboxRefs, glibcRefs, agnhostRefs, statics list
	flag.Var(&driverRefs, "csi-thin-ref", "name of the csi-thin image (repeatable; default ghcr.io/csi-thin/csi-thin:dev)")
	flag.Var(&pauseRefs, "pause-ref", "name of the pause image (repeatable; default registry.k8s.io/pause:3.10.1)")
	flag.Var(&busyboxRefs, "busybox-ref", "name of the busybox image (repeatable; default docker.io/library/busybox:1.35.0)")
	flag.Var(&glibcRefs, "glibc-ref", "name of the glibc test image, busybox with GNU dd (repeatable; none by default)")
	flag.Var(&agnhostRefs, "agnhost-ref", "name of the agnhost image (repeatable; default registry.k8s.io/e2e-test-images/agnhost:2.66.1, the e2e tests' v1.37.2)")
	flag.Var(&statics, "static", "REF=BIN: an image of one static binary at /<its name>, its entrypoint, as the CSI sidecar images are (repeatable)")
	flag.Parse()
	if *out == "" || *driver == "" || *pause == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: cluster-images -out DIR -csi-thin BIN -pause BIN [-packages FILE] [-agnhost BIN] [-static REF=BIN]...")
		os.Exit(2)
	}
	if len(driverRefs) == 0 {
		driverRefs = list{"ghcr.io/csi-thin/csi-thin:dev"}
	}
	if len(pauseRefs) == 0 {
		pauseRefs = list{"registry.k8s.io/pause:3.10.1"}
	}
	if len(busyboxRefs) == 0 {
		busyboxRefs = list{"docker.io/library/busybox:1.35.0"}
	}
	if len(agnhostRefs) == 0 {
		agnhostRefs = list{"registry.k8s.io/e2e-test-images/agnhost:2.66.1"}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(err)
	}

	type job struct {
		file  string
		build func() (images.Image, error)
	}
	jobs := []job{
		{"busybox", func() (images.Image, error) { return images.Busybox(busyboxRefs...) }},
		{"pause", func() (images.Image, error) { return images.Static(*pause, pauseRefs...) }},
		{"csi-thin", func() (images.Image, error) {
			pkgs, err := images.ReadPackageList(*pkgList)
			if err != nil {
				return images.Image{}, err
			}
			return images.CSIThin(*driver, pkgs, driverRefs...)
		}},
	}
	if len(glibcRefs) > 0 {
		jobs = append(jobs, job{"glibc", func() (images.Image, error) { return images.Glibc(glibcRefs...) }})
	}
	if *agnhost != "" {
		jobs = append(jobs, job{"agnhost", func() (images.Image, error) { return images.Agnhost(*agnhost, agnhostRefs...) }})
	}
	for _, s := range statics {
		ref, bin, ok := strings.Cut(s, "=")
		if !ok {
			fail(fmt.Errorf("-static %q: want REF=BIN", s))
		}
		jobs = append(jobs, job{filepath.Base(bin), func() (images.Image, error) { return images.Static(bin, ref) }})
	}

	var index strings.Builder
	for _, j := range jobs {
		start := time.Now()
		img, err := j.build()
		if err != nil {
			fail(fmt.Errorf("image %s: %w", j.file, err))
		}
		img.Gzip = *gz
		path := filepath.Join(*out, j.file+".tar")
		res, err := images.Write(path, img)
		if err != nil {
			fail(fmt.Errorf("image %s: %w", j.file, err))
		}
		fmt.Printf("%-40s %4d files  layer %6.1f MiB (%6.1f MiB unpacked)  archive %6.1f MiB  %5.2fs  %s\n",
			strings.Join(img.Refs, ","), res.Files, mib(res.LayerSize), mib(res.Uncompressed), mib(res.Size),
			time.Since(start).Seconds(), res.Manifest[:19])
		fmt.Fprintf(&index, "%s %s\n", filepath.Base(path), strings.Join(img.Refs, " "))
	}
	if err := os.WriteFile(filepath.Join(*out, "images.txt"), []byte(index.String()), 0o644); err != nil {
		fail(err)
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "cluster-images:", err)
	os.Exit(1)
}
