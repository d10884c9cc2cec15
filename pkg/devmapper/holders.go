package devmapper

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// mountInfoPath lists the mounts of this process's mount namespace. A
// variable only so that unit tests can point it at a fake table.
var mountInfoPath = "/proc/self/mountinfo"

// Holders says what keeps the block device d open, as far as the kernel
// tells: the devices stacked on it (sysfs holders, such as a dm device
// that maps it) and the mount points of filesystems on it in this
// process's mount namespace. A process that opened the device node itself
// is not named anywhere; only the device's open count tells of it. Each
// entry reads as a phrase: "mounted at /var/lib/...", "held by dm-5
// (name pool-vol-1)".
func Holders(d Dev) ([]string, error) {
	stacked, err := stackedHolders(d)
	if err != nil {
		return nil, err
	}
	mounts, err := mountPointsOf(d)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range mounts {
		out = append(out, "mounted at "+m)
	}
	return append(out, stacked...), nil
}

// stackedHolders lists the devices in /sys/dev/block/MAJOR:MINOR/holders,
// with the dm name of a dm holder.
func stackedHolders(d Dev) ([]string, error) {
	dir := filepath.Join(blockSysRoot, "dev", "block", d.String(), "holders")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // gone meanwhile, or a kernel without holders
	}
	if err != nil {
		return nil, &Error{Op: "holders", Device: d.String(), Err: blockErrno(err)}
	}
	var out []string
	for _, e := range entries {
		h := "held by " + e.Name()
		if name, err := os.ReadFile(filepath.Join(dir, e.Name(), "dm", "name")); err == nil {
			h += " (dm device " + strings.TrimSpace(string(name)) + ")"
		}
		out = append(out, h)
	}
	return out, nil
}

// mountPointsOf lists where a filesystem on d is mounted, from
// mountinfo's third field (the device number of each mount).
func mountPointsOf(d Dev) ([]string, error) {
	data, err := os.ReadFile(mountInfoPath)
	if err != nil {
		return nil, &Error{Op: "read mountinfo", Device: mountInfoPath, Err: blockErrno(err)}
	}
	return parseMountPoints(data, d), nil
}

// parseMountPoints reads mountinfo lines ("36 35 98:0 /root /mnt opts
// ...") and returns the unescaped mount points of device d.
func parseMountPoints(data []byte, d Dev) []string {
	want := d.String()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[2] != want {
			continue
		}
		out = append(out, unescapeMountPath(f[4]))
	}
	return out
}

// unescapeMountPath undoes the kernel's octal escapes (\040 for a space,
// \011, \012, \134) in a mountinfo path.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
