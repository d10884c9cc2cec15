// Package images builds container images without a container engine or a
// registry: one layer of files taken from this machine, written as an OCI
// image layout in a tar archive that `ctr images import` reads.
//
// The files come from the host (Debian packages by name, binaries and the
// shared libraries ldd says they load), so an image holds the same programs
// the host runs. Archives are reproducible: entries are sorted and carry no
// time stamps or owners other than root.
package images

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// entry is one file system object of a layer, keyed by its path in the
// image (absolute, cleaned).
type entry struct {
	mode     fs.FileMode // permission bits and type
	source   string      // host file a regular file's contents come from
	data     []byte      // contents when source is empty
	linkname string      // symlink target
}

// Layer is the content of an image's only layer.
type Layer struct {
	entries map[string]*entry
	libsOf  map[string]bool // host files whose libraries were added
}

// NewLayer returns a layer with the directories every container expects
// (runc mounts /proc, /sys and /dev over them; /tmp is world-writable).
func NewLayer() *Layer {
	l := &Layer{entries: map[string]*entry{}, libsOf: map[string]bool{}}
	for _, d := range []string{"/dev", "/proc", "/sys", "/etc", "/run", "/var", "/root"} {
		l.Dir(d, 0o755)
	}
	l.Dir("/tmp", fs.ModeSticky|0o777)
	return l
}

// Dir adds a directory, and its parents with mode 0755.
func (l *Layer) Dir(p string, mode fs.FileMode) {
	p = path.Clean(p)
	if p == "/" {
		return
	}
	l.Dir(path.Dir(p), 0o755)
	if e, ok := l.entries[p]; ok && e.mode.IsDir() {
		return
	}
	l.entries[p] = &entry{mode: fs.ModeDir | mode.Perm() | (mode & fs.ModeSticky)}
}

// Symlink adds a symbolic link at p pointing to target.
func (l *Layer) Symlink(p, target string) {
	p = path.Clean(p)
	l.Dir(path.Dir(p), 0o755)
	l.entries[p] = &entry{mode: fs.ModeSymlink | 0o777, linkname: target}
}

// Data adds a regular file with the given contents.
func (l *Layer) Data(p string, data []byte, mode fs.FileMode) {
	p = path.Clean(p)
	l.Dir(path.Dir(p), 0o755)
	l.entries[p] = &entry{mode: mode.Perm(), data: data}
}

// File adds the host's regular file src at p in the image (not following
// the host's symlinks on the way: see HostPath for that).
func (l *Layer) File(p, src string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	p = path.Clean(p)
	l.Dir(path.Dir(p), 0o755)
	l.entries[p] = &entry{mode: fi.Mode().Perm(), source: src}
	return nil
}

// HostPath adds the host's p at the same path in the image, as the host
// resolves it: every symlink on the way is added as a symlink and its
// target followed (so /sbin/mkfs.ext4 on a merged-/usr host gives the link
// /sbin -> usr/sbin and the file /usr/sbin/mkfs.ext4). Directories are added
// empty; device nodes, sockets and pipes are skipped. It returns the
// resolved path.
func (l *Layer) HostPath(p string) (string, error) {
	return l.hostPath(path.Clean(p), 0)
}

func (l *Layer) hostPath(p string, depth int) (string, error) {
	if depth > 40 {
		return "", fmt.Errorf("%s: too many levels of symbolic links", p)
	}
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%s is not an absolute path", p)
	}
	if p == "/" {
		return p, nil
	}
	parts := strings.Split(p[1:], "/")
	cur := "/"
	for i, part := range parts {
		next := path.Join(cur, part)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", err
		}
		last := i == len(parts)-1
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(next)
			if err != nil {
				return "", err
			}
			l.Symlink(next, target)
			abs := target
			if !path.IsAbs(abs) {
				abs = path.Join(cur, target)
			}
			return l.hostPath(path.Join(append([]string{abs}, parts[i+1:]...)...), depth+1)
		case fi.IsDir():
			l.Dir(next, fi.Mode())
		case !last:
			return "", fmt.Errorf("%s: not a directory", next)
		case fi.Mode().IsRegular():
			if err := l.File(next, next); err != nil {
				return "", err
			}
		}
		cur = next
	}
	return cur, nil
}

// Binary adds the host's file p (see HostPath) and, if it is a dynamically
// linked ELF file, every shared library ldd says it loads.
func (l *Layer) Binary(p string) error {
	real, err := l.HostPath(p)
	if err != nil {
		return err
	}
	return l.libraries(real)
}

var lddLine = regexp.MustCompile(`^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)`)

func (l *Layer) libraries(p string) error {
	if l.libsOf[p] {
		return nil
	}
	l.libsOf[p] = true
	if !isDynamicELF(p) {
		return nil
	}
	out, err := exec.Command("ldd", p).Output()
	if err != nil {
		// ldd refuses files it cannot run (another architecture, a
		// broken ELF): such a file is not a program the image runs.
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "=> not found") {
			return fmt.Errorf("%s needs a library this machine does not have: %s", p, strings.TrimSpace(line))
		}
		m := lddLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if _, err := l.HostPath(m[1]); err != nil {
			return fmt.Errorf("library of %s: %w", p, err)
		}
	}
	return sc.Err()
}

// isDynamicELF says whether p is an ELF file with a program interpreter or
// a dynamic section (a shared library), by its first bytes.
func isDynamicELF(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	if _, err := f.Read(magic[:]); err != nil || string(magic[:]) != "\x7fELF" {
		return false
	}
	return true
}

// excludedPackagePaths are package files a container never reads:
// documentation, manual pages and translations.
var excludedPackagePaths = []string{
	"/usr/share/doc/", "/usr/share/man/", "/usr/share/info/", "/usr/share/locale/",
	"/usr/share/lintian/", "/usr/share/bug/",
}

// Packages adds the files of the named Debian packages as installed on
// this machine (dpkg -L), except documentation, and every library their
// programs load. A package that is not installed is an error that names
// the apt-get command to run.
func (l *Layer) Packages(names ...string) error {
	var missing []string
	for _, name := range names {
		out, err := exec.Command("dpkg-query", "-L", name).Output()
		if err != nil {
			missing = append(missing, name)
			continue
		}
		files := strings.Split(strings.TrimSpace(string(out)), "\n")
		for _, f := range files {
			if f == "" || f == "/." || excluded(f) {
				continue
			}
			fi, err := os.Lstat(f)
			if err != nil {
				// dpkg -L also lists files an admin removed or that a
				// diversion moved; the image holds what the host has.
				continue
			}
			if fi.IsDir() {
				continue // added with the files under it
			}
			if err := l.Binary(f); err != nil {
				return fmt.Errorf("package %s: %w", name, err)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("packages not installed on this machine: %s; install them with: apt-get install -y --no-install-recommends %s",
			strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	return nil
}

func excluded(p string) bool {
	for _, e := range excludedPackagePaths {
		if strings.HasPrefix(p, e) || p+"/" == e {
			return true
		}
	}
	return false
}

// Has says whether the image has p, following the image's own symlinks.
func (l *Layer) Has(p string) bool {
	p = path.Clean(p)
	for depth := 0; depth < 40; depth++ {
		resolved, ok := l.resolve(p)
		if !ok {
			return false
		}
		if resolved == p {
			_, ok := l.entries[p]
			return ok
		}
		p = resolved
	}
	return false
}

// resolve resolves the first symlink on p's path in the image.
func (l *Layer) resolve(p string) (string, bool) {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/"
	for i, part := range parts {
		next := path.Join(cur, part)
		e, ok := l.entries[next]
		if !ok {
			return "", false
		}
		if e.mode&fs.ModeSymlink != 0 {
			t := e.linkname
			if !path.IsAbs(t) {
				t = path.Join(cur, t)
			}
			return path.Join(append([]string{t}, parts[i+1:]...)...), true
		}
		cur = next
	}
	return cur, true
}

// Find returns the path of name in the first of dirs that has it, or "".
func (l *Layer) Find(name string, dirs ...string) string {
	for _, d := range dirs {
		if p := filepath.Join(d, name); l.Has(p) {
			return p
		}
	}
	return ""
}

func (l *Layer) sortedPaths() []string {
	ps := make([]string, 0, len(l.entries))
	for p := range l.entries {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}
