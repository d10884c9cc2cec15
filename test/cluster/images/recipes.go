package images

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path"
	"strings"
)

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Busybox is Debian's busybox-static as /bin/busybox with a link for each
// of its applets in /bin, so `sh`, `cat`, `sleep` and the rest work as in
// the upstream busybox image.
func Busybox(refs ...string) (Image, error) {
	l, err := busyboxLayer()
	if err != nil {
		return Image{}, err
	}
	return Image{Refs: refs, Layer: l, Config: Config{Cmd: []string{"sh"}, Env: []string{defaultPath}}}, nil
}

// busyboxLayer is the busybox image's layer: /bin/busybox and its applets.
func busyboxLayer() (*Layer, error) {
	const bin = "/bin/busybox"
	l := NewLayer()
	real, err := hostBinary("busybox-static", bin)
	if err != nil {
		return nil, err
	}
	if err := l.File(bin, real); err != nil {
		return nil, err
	}
	out, err := exec.Command(real, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", real, err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" && !strings.Contains(applet, "/") {
			l.Symlink("/bin/"+applet, "busybox")
		}
	}
	return l, nil
}

// Glibc stands in for Kubernetes' glibc-dns-testing test image, which is
// Debian with glibc and GNU coreutils: the busybox layer with Debian's
// dash as /bin/sh and GNU dd in place of busybox's. The multiVolume specs
// write a block volume with dd oflag=nocache, which busybox's dd refuses;
// busybox's sh would run its own dd whatever /bin/dd is.
func Glibc(refs ...string) (Image, error) {
	l, err := busyboxLayer()
	if err != nil {
		return Image{}, err
	}
	for _, b := range []struct{ pkg, path string }{{"coreutils", "/bin/dd"}, {"dash", "/bin/dash"}} {
		host, err := hostBinary(b.pkg, b.path)
		if err != nil {
			return Image{}, err
		}
		if err := l.File(b.path, host); err != nil {
			return Image{}, err
		}
		if err := l.libraries(host); err != nil {
			return Image{}, err
		}
	}
	l.Symlink("/bin/sh", "dash")
	return Image{Refs: refs, Layer: l, Config: Config{Cmd: []string{"sh"}, Env: []string{defaultPath}}}, nil
}

// Agnhost is Kubernetes' e2e test program agnhost (a static build of
// k8s.io/kubernetes/test/images/agnhost) at /agnhost, its entrypoint, with
// `pause` as the default command, as in its upstream image. Upstream's
// image is Alpine with a shell and util-linux; here the busybox layer gives
// the programs the storage tests run in it: sh, and nsenter for the host
// exec pod (`nsenter --mount=/rootfs/proc/1/ns/mnt -- sh -c ...`).
func Agnhost(bin string, refs ...string) (Image, error) {
	if err := checkStatic(bin); err != nil {
		return Image{}, err
	}
	l, err := busyboxLayer()
	if err != nil {
		return Image{}, err
	}
	if err := l.File("/agnhost", bin); err != nil {
		return Image{}, err
	}
	l.Symlink("/agnhost-2", "agnhost")
	l.Dir("/uploads", 0o755)
	return Image{Refs: refs, Layer: l, Config: Config{
		Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}, Env: []string{defaultPath},
	}}, nil
}

// hostBinary finds the file of a package installed on the host whose path
// ends like want (e.g. /bin/busybox), and says how to install it if not.
func hostBinary(pkg, want string) (string, error) {
	out, err := exec.Command("dpkg-query", "-L", pkg).Output()
	if err == nil {
		for _, f := range strings.Split(string(out), "\n") {
			if strings.HasSuffix(f, want) {
				if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() {
					return f, nil
				}
			}
		}
	}
	return "", fmt.Errorf("%s of package %s not found: apt-get install -y --no-install-recommends %s", want, pkg, pkg)
}

// Static is one static binary at /<its name>, run as the entrypoint: the
// layout of the Kubernetes CSI sidecar images (e.g. /csi-provisioner) and
// of the pause image (/pause).
func Static(bin string, refs ...string) (Image, error) {
	if err := checkStatic(bin); err != nil {
		return Image{}, err
	}
	l := NewLayer()
	p := "/" + path.Base(bin)
	if err := l.File(p, bin); err != nil {
		return Image{}, err
	}
	return Image{Refs: refs, Layer: l, Config: Config{Entrypoint: []string{p}, Env: []string{defaultPath}}}, nil
}

// checkStatic refuses a dynamically linked program in an image without
// its libraries.
func checkStatic(bin string) error {
	out, err := exec.Command("file", "-L", bin).Output()
	if err != nil {
		// Without file(1), ldd says it too.
		if out, err := exec.Command("ldd", bin).CombinedOutput(); err == nil && !strings.Contains(string(out), "statically linked") {
			return fmt.Errorf("%s is dynamically linked: build it with CGO_ENABLED=0", bin)
		}
		return nil
	}
	if strings.Contains(string(out), "dynamically linked") {
		return fmt.Errorf("%s is dynamically linked: build it with CGO_ENABLED=0", bin)
	}
	return nil
}

// DriverPath is where the csi-thin binary lives in its image, as in the
// Dockerfile.
const DriverPath = "/usr/local/bin/csi-thin"

// DriverTools are the programs csi-thin and k8s.io/mount-utils run: the
// image must have each of them, whatever package provides it.
var DriverTools = []string{
	"mkfs.ext4", "resize2fs", "e2fsck", "mkfs.xfs", "xfs_growfs", "xfs_repair",
	"blkid", "mount", "umount", "thin_check",
}

// CSIThin is the csi-thin image: the static driver binary at DriverPath and
// the files of the Debian packages the Dockerfile installs, taken from this
// machine with the libraries they load.
func CSIThin(driver string, packages []string, refs ...string) (Image, error) {
	if err := checkStatic(driver); err != nil {
		return Image{}, err
	}
	l := NewLayer()
	if err := l.Packages(packages...); err != nil {
		return Image{}, err
	}
	if err := l.File(DriverPath, driver); err != nil {
		return Image{}, err
	}
	var missing []string
	for _, t := range DriverTools {
		if l.Find(t, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin") == "" {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return Image{}, fmt.Errorf("the packages %s give no %s: the driver runs them; add the package that has them to the package list", strings.Join(packages, " "), strings.Join(missing, ", "))
	}
	return Image{Refs: refs, Layer: l, Config: Config{Entrypoint: []string{DriverPath}, Env: []string{defaultPath}}}, nil
}

// ReadPackageList reads a list of Debian package names: one or more a
// line, '#' starts a comment.
func ReadPackageList(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		names = append(names, strings.Fields(line)...)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s names no package", file)
	}
	return names, nil
}
