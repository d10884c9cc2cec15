package flows

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// createWith asks for a volume with a capacity range and StorageClass
// parameters, and returns the answer as it is.
func (d *driverProc) createWith(name string, r *csi.CapacityRange, c *csi.VolumeCapability, params map[string]string) (*csi.Volume, error) {
	resp, err := d.ctrl.CreateVolume(ctx(d.t), &csi.CreateVolumeRequest{
		Name: name, CapacityRange: r, VolumeCapabilities: []*csi.VolumeCapability{c}, Parameters: params,
	})
	return resp.GetVolume(), err
}

// stage stages a volume with a volume context, at its staging path.
func (d *driverProc) stage(v *csi.Volume, c *csi.VolumeCapability, vctx map[string]string) (string, error) {
	staging := filepath.Join(d.dir, "staging", v.VolumeId)
	_, err := d.node.NodeStageVolume(ctx(d.t), &csi.NodeStageVolumeRequest{
		VolumeId: v.VolumeId, StagingTargetPath: staging, VolumeCapability: c, VolumeContext: vctx,
	})
	return staging, err
}

func (d *driverProc) unstage(v *csi.Volume) {
	d.t.Helper()
	staging := filepath.Join(d.dir, "staging", v.VolumeId)
	if _, err := d.node.NodeUnstageVolume(ctx(d.t), &csi.NodeUnstageVolumeRequest{VolumeId: v.VolumeId, StagingTargetPath: staging}); err != nil {
		d.t.Fatalf("unstage %s: %v", v.VolumeId, err)
	}
}

func wantStatus(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if status.Code(err) != want {
		t.Fatalf("%s: %v, want %s", what, err, want)
	}
}

// command runs a program and returns its output, failing the test if it fails.
func command(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// field is the number after label in mkfs tools' output, or -1.
func field(out, label string) int64 {
	m := regexp.MustCompile(regexp.QuoteMeta(label) + `\s*(\d+)`).FindStringSubmatch(out)
	if m == nil {
		return -1
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// TestXFSMinimum: a 256 MiB xfs volume, which mkfs.xfs cannot format, is
// created at the xfs minimum, reports it, answers a retry with the same
// volume, and stages and mounts; a limit below the minimum is OutOfRange.
func TestXFSMinimum(t *testing.T) {
	d := startDriver(t, "csi-thin-flow-xfsmin")
	c := mountCap("xfs")
	r := &csi.CapacityRange{RequiredBytes: 256 * mib}
	v, err := d.createWith("small", r, c, nil)
	if err != nil {
		t.Fatalf("create a 256 MiB xfs volume: %v", err)
	}
	if v.CapacityBytes != 300*mib {
		t.Fatalf("capacity %d, want the xfs minimum %d", v.CapacityBytes, 300*mib)
	}
	again, err := d.createWith("small", r, c, nil)
	if err != nil || again.VolumeId != v.VolumeId || again.CapacityBytes != v.CapacityBytes {
		t.Fatalf("retried create: %v, %v; want %s of %d bytes", again, err, v.VolumeId, v.CapacityBytes)
	}
	target := d.use(v, c)
	if got := fsBytes(t, target); got < 200*mib {
		t.Fatalf("filesystem of %d bytes", got)
	}
	writeFiles(t, target, 0, 3)
	d.release(v)

	_, err = d.createWith("limited", &csi.CapacityRange{RequiredBytes: 256 * mib, LimitBytes: 256 * mib}, c, nil)
	wantStatus(t, "create with a limit under the xfs minimum", err, codes.OutOfRange)
	_, err = d.createWith("limited-alone", &csi.CapacityRange{LimitBytes: 200 * mib}, c, nil)
	wantStatus(t, "create with only a limit under the xfs minimum", err, codes.OutOfRange)
	// The same limit suits ext4, and a block volume has no minimum.
	e, err := d.createWith("ext4-small", &csi.CapacityRange{RequiredBytes: 1, LimitBytes: 256 * mib}, mountCap("ext4"), nil)
	if err != nil || e.CapacityBytes != 256<<10 {
		t.Fatalf("create a tiny ext4 volume: %v, %v; want 256 KiB", e, err)
	}
	d.use(e, mountCap("ext4"))
	d.release(e)
	if v, err := d.createWith("block-small", &csi.CapacityRange{RequiredBytes: 1}, blockCap(), nil); err != nil || v.CapacityBytes != 64<<10 {
		t.Fatalf("create a one-block block volume: %v, %v; want 64 KiB", v, err)
	}
}

// TestFormatParameters: each formatting parameter reaches mkfs and shows
// in the filesystem made, on a volume of the smallest size csi-thin
// allows for it.
func TestFormatParameters(t *testing.T) {
	d := startDriver(t, "csi-thin-flow-format")
	tests := []struct {
		name   string
		fs     string
		params map[string]string
		want   map[string]int64 // label in dumpe2fs -h or xfs_info: value
	}{
		{"ext4 block and inode size", "ext4", map[string]string{"blockSize": "2048", "inodeSize": "512"},
			map[string]int64{"Block size:": 2048, "Inode size:": 512}},
		{"ext4 bytes per inode", "ext4", map[string]string{"blockSize": "4096", "bytesPerInode": "65536"},
			map[string]int64{"Block size:": 4096}},
		{"ext4 number of inodes", "ext4", map[string]string{"numberOfInodes": "20000", "inodeSize": "256"},
			map[string]int64{"Inode size:": 256}},
		{"ext4 bigalloc", "ext4", map[string]string{"blockSize": "4096", "ext4BigAlloc": "true", "ext4ClusterSize": "65536"},
			map[string]int64{"Block size:": 4096, "Cluster size:": 65536}},
		{"xfs block and inode size", "xfs", map[string]string{"fsType": "xfs", "blockSize": "2048", "inodeSize": "1024"},
			map[string]int64{"bsize=": 2048, "isize=": 1024}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := d.t
			d.t = t
			t.Cleanup(func() { d.t = parent })
			c := mountCap("")
			v, err := d.createWith("fmt-"+strconv.Itoa(i), &csi.CapacityRange{RequiredBytes: 1}, c, tt.params)
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			t.Logf("created at the minimum for %v: %d bytes", tt.params, v.CapacityBytes)
			staging, err := d.stage(v, c, v.VolumeContext)
			if err != nil {
				t.Fatalf("stage at %d bytes: %v", v.CapacityBytes, err)
			}
			var out string
			if tt.fs == "xfs" {
				out = command(t, "xfs_info", staging)
			} else {
				dev := strings.TrimSpace(command(t, "findmnt", "-n", "-o", "SOURCE", "--mountpoint", staging))
				out = command(t, "dumpe2fs", "-h", dev)
			}
			for label, want := range tt.want {
				if got := field(out, label); got != want {
					t.Errorf("%s %d, want %d:\n%s", label, got, want, out)
				}
			}
			if n, ok := tt.params["numberOfInodes"]; ok {
				// mke2fs fills whole inode table blocks: within 1%.
				want, _ := strconv.ParseInt(n, 10, 64)
				if got := field(out, "Inode count:"); got < want*99/100 || got > want*101/100 {
					t.Errorf("Inode count %d, want about %d", got, want)
				}
			}
			if n, ok := tt.params["bytesPerInode"]; ok {
				ratio, _ := strconv.ParseInt(n, 10, 64)
				if got, most := field(out, "Inode count:"), v.CapacityBytes/ratio+field(out, "Inodes per group:"); got > most {
					t.Errorf("Inode count %d, want about %d for %d bytes per inode", got, most, ratio)
				}
			}
			d.unstage(v)
		})
	}
}

// TestHostileFormatting: raw mkfs arguments that would copy a host
// directory into a new volume are refused at CreateVolume and at stage,
// and a legacy mkfsOptions in the context of a formatted volume is
// ignored with a warning.
func TestHostileFormatting(t *testing.T) {
	d := startDriver(t, "csi-thin-flow-hostile")
	secret := t.TempDir()
	if err := os.WriteFile(filepath.Join(secret, "secret"), []byte("host data"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mountCap("ext4")
	for _, params := range []map[string]string{
		{"mkfsOptions": "-d " + secret},
		{"blockSize": "4096 -d " + secret},
		{"fsType": "xfs", "inodeSize": "512 -p " + filepath.Join(secret, "secret")},
	} {
		_, err := d.createWith("hostile", &csi.CapacityRange{RequiredBytes: 64 * mib}, c, params)
		wantStatus(t, "create with "+strings.Join(mapValues(params), " "), err, codes.InvalidArgument)
	}

	v, err := d.createWith("plain", &csi.CapacityRange{RequiredBytes: 64 * mib}, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, vctx := range []map[string]string{
		{"mkfsOptions": "-d " + secret},       // a volume context from an older release, on a blank device
		{"mkfsArgs": "-d " + secret},          // a key csi-thin never had
		{"blockSize": "1024 -d " + secret},    // an argument inside a value
		{"bytesPerInode": "4096 -d" + secret}, // likewise
	} {
		_, err := d.stage(v, c, vctx)
		wantStatus(t, "stage with "+strings.Join(mapValues(vctx), " "), err, codes.InvalidArgument)
	}
	// Nothing was formatted with them.
	staging, err := d.stage(v, c, v.VolumeContext)
	if err != nil {
		t.Fatalf("stage with the volume's own context: %v", err)
	}
	if _, err := os.Stat(filepath.Join(staging, "secret")); !os.IsNotExist(err) {
		t.Fatalf("the host file is in the volume (%v)", err)
	}
	if err := os.WriteFile(filepath.Join(staging, "kept"), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.unstage(v)

	// A formatted volume whose context still has mkfsOptions, as volumes
	// made by older releases do, stages and keeps its data.
	legacy := map[string]string{"mkfsOptions": "-E nodiscard"}
	staging, err = d.stage(v, c, legacy)
	if err != nil {
		t.Fatalf("stage a formatted volume with a legacy mkfsOptions: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(staging, "kept")); err != nil || string(got) != "data" {
		t.Fatalf("data after staging with a legacy mkfsOptions: %q, %v", got, err)
	}
	d.unstage(v)
	log, err := os.ReadFile(filepath.Join(d.dir, "driver-1.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "ignoring mkfsOptions") {
		t.Errorf("no warning about the ignored mkfsOptions in the driver's log")
	}
}

func mapValues(m map[string]string) []string {
	var s []string
	for k, v := range m {
		s = append(s, k+"="+v)
	}
	return s
}
