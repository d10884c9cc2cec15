package flows

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// dmInfo is what the kernel says of a volume's thin device on this node.
func (d *driverProc) dmInfo(volumeID string) dm.Info {
	d.t.Helper()
	ctl, err := dm.Open()
	if err != nil {
		d.t.Fatalf("open device-mapper control: %v", err)
	}
	defer ctl.Close()
	info, err := ctl.Info(d.pool + "-" + volumeID)
	if err != nil {
		d.t.Fatalf("dm info of %s: %v", volumeID, err)
	}
	return info
}

func codeOf(err error) codes.Code { return status.Code(err) }

// A stage that fails after the device was activated (mkfs refuses the
// device, or the mount refuses its options) leaves no active device and
// no staging path behind, so that DeleteVolume then succeeds: kubelet
// does not unstage after a failed stage.
func TestFailedStageLeavesNothing(t *testing.T) {
	d := startDriver(t, "csi-thin-flow-failstage")
	tests := []struct {
		name string
		cap  *csi.VolumeCapability
	}{
		// mkfs.xfs refuses filesystems under 300 MB.
		{"mkfs fails", mountCap("xfs")},
		{"mount fails", func() *csi.VolumeCapability {
			c := mountCap("ext4")
			c.GetMount().MountFlags = []string{"no_such_mount_option"}
			return c
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := d.create(strings.ReplaceAll(tt.name, " ", "-"), 64*mib, mountCap("ext4"), nil)
			staging := filepath.Join(d.dir, "staging", v.VolumeId)
			_, err := d.node.NodeStageVolume(ctx(t), &csi.NodeStageVolumeRequest{
				VolumeId: v.VolumeId, StagingTargetPath: staging, VolumeCapability: tt.cap, VolumeContext: v.VolumeContext,
			})
			if err == nil {
				t.Fatal("the stage succeeded")
			}
			t.Logf("stage failed as it should: %v", err)
			if info := d.dmInfo(v.VolumeId); info.Exists {
				t.Errorf("the failed stage left the device active: %+v", info)
			}
			if _, err := os.Stat(staging); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the failed stage left its staging path %s (%v)", staging, err)
			}
			if _, err := d.ctrl.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: v.VolumeId}); err != nil {
				t.Fatalf("delete after the failed stage: %v", err)
			}
		})
	}
}

// DeleteVolume deactivates a device that is active but not open, and
// refuses one that is open with FailedPrecondition naming the mount.
func TestDeleteActiveVolume(t *testing.T) {
	d := startDriver(t, "csi-thin-flow-delactive")

	// Staged as a block volume and never unstaged: active, nothing holds it.
	b := d.create("left-active", 16*mib, blockCap(), nil)
	if _, err := d.node.NodeStageVolume(ctx(t), &csi.NodeStageVolumeRequest{
		VolumeId: b.VolumeId, StagingTargetPath: filepath.Join(d.dir, "staging", b.VolumeId), VolumeCapability: blockCap(),
	}); err != nil {
		t.Fatal(err)
	}
	if info := d.dmInfo(b.VolumeId); !info.Exists || info.OpenCount != 0 {
		t.Fatalf("staged block volume: %+v, want active and not open", info)
	}
	if _, err := d.ctrl.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: b.VolumeId}); err != nil {
		t.Fatalf("delete of a volume active and not open: %v", err)
	}
	if info := d.dmInfo(b.VolumeId); info.Exists {
		t.Fatalf("deleted volume's device still active: %+v", info)
	}

	// Mounted: refused, and the message says where.
	c := mountCap("ext4")
	m := d.create("mounted", 64*mib, c, nil)
	target := d.use(m, c)
	writeFiles(t, target, 0, 3)
	_, err := d.ctrl.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: m.VolumeId})
	staging := filepath.Join(d.dir, "staging", m.VolumeId)
	if codeOf(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "mounted at "+staging) {
		t.Fatalf("delete of a mounted volume: %v, want FailedPrecondition naming %s", err, staging)
	}
	t.Logf("delete of a mounted volume: %v", err)
	checkFiles(t, target, 0, 3, 3)
	d.release(m)
	if _, err := d.ctrl.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: m.VolumeId}); err != nil {
		t.Fatalf("delete once unstaged: %v", err)
	}
}

// A reader-only block volume stays read-only when NodeExpandVolume grows
// its device: the kernel refuses writes and reports the device read-only.
func TestReaderOnlyBlockStaysReadOnlyAfterExpand(t *testing.T) {
	d := startDriver(t, "csi-thin-flow-roexpand")
	ro := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
	}
	v := d.create("ro", 16*mib, ro, nil)
	target := d.use(v, ro)
	checkReadOnly := func(when string, size uint64) {
		t.Helper()
		if got, err := dm.BlockDeviceSize(target); err != nil || got != size {
			t.Fatalf("%s: device is %d bytes (%v), want %d", when, got, err, size)
		}
		if info := d.dmInfo(v.VolumeId); !info.ReadOnly {
			t.Fatalf("%s: the kernel has the device read-write: %+v", when, info)
		}
		out, err := exec.Command("blockdev", "--getro", target).Output()
		if err != nil || strings.TrimSpace(string(out)) != "1" {
			t.Fatalf("%s: blockdev --getro %s: %q %v, want 1", when, target, out, err)
		}
		f, err := os.OpenFile(target, os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteAt([]byte("must not land"), 0)
			f.Close()
		}
		if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EROFS) {
			t.Fatalf("%s: a write to the reader-only device: %v, want EPERM or EROFS", when, err)
		}
	}
	checkReadOnly("staged", 16*mib)
	resp, err := d.node.NodeExpandVolume(ctx(t), &csi.NodeExpandVolumeRequest{
		VolumeId: v.VolumeId, VolumePath: target, StagingTargetPath: filepath.Join(d.dir, "staging", v.VolumeId),
		CapacityRange: &csi.CapacityRange{RequiredBytes: 32 * mib}, VolumeCapability: ro,
	})
	if err != nil || resp.CapacityBytes != 32*mib {
		t.Fatalf("expand: %v %v", resp, err)
	}
	checkReadOnly("expanded", 32*mib)
	d.release(v)
	if _, err := d.ctrl.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: v.VolumeId}); err != nil {
		t.Fatal(err)
	}
}
