package flows

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
)

const mib = 1 << 20

func mountCap(fs string) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fs}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

func blockCap() *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

func fromSnapshot(id string) *csi.VolumeContentSource {
	return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: id}}}
}

func fromVolume(id string) *csi.VolumeContentSource {
	return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: id}}}
}

func (d *driverProc) create(name string, size int64, c *csi.VolumeCapability, src *csi.VolumeContentSource) *csi.Volume {
	d.t.Helper()
	resp, err := d.ctrl.CreateVolume(ctx(d.t), &csi.CreateVolumeRequest{
		Name: name, CapacityRange: &csi.CapacityRange{RequiredBytes: size},
		VolumeCapabilities: []*csi.VolumeCapability{c}, VolumeContentSource: src,
	})
	if err != nil {
		d.t.Fatalf("create volume %s: %v", name, err)
	}
	if resp.Volume.CapacityBytes < size {
		d.t.Fatalf("volume %s is %d bytes, asked %d", name, resp.Volume.CapacityBytes, size)
	}
	return resp.Volume
}

func (d *driverProc) snapshot(name, volumeID string) *csi.Snapshot {
	d.t.Helper()
	resp, err := d.ctrl.CreateSnapshot(ctx(d.t), &csi.CreateSnapshotRequest{Name: name, SourceVolumeId: volumeID})
	if err != nil {
		d.t.Fatalf("snapshot %s of %s: %v", name, volumeID, err)
	}
	if !resp.Snapshot.ReadyToUse {
		d.t.Fatalf("snapshot %s not ready", name)
	}
	return resp.Snapshot
}

// use stages and publishes a volume and returns the path a pod would see:
// a directory for a mount volume, a device file for a block volume.
func (d *driverProc) use(v *csi.Volume, c *csi.VolumeCapability) string {
	d.t.Helper()
	staging := filepath.Join(d.dir, "staging", v.VolumeId)
	target := filepath.Join(d.dir, "pods", v.VolumeId, "volume")
	if _, err := d.node.NodeStageVolume(ctx(d.t), &csi.NodeStageVolumeRequest{
		VolumeId: v.VolumeId, StagingTargetPath: staging, VolumeCapability: c, VolumeContext: v.VolumeContext,
	}); err != nil {
		d.t.Fatalf("stage %s: %v", v.VolumeId, err)
	}
	if _, err := d.node.NodePublishVolume(ctx(d.t), &csi.NodePublishVolumeRequest{
		VolumeId: v.VolumeId, StagingTargetPath: staging, TargetPath: target, VolumeCapability: c, VolumeContext: v.VolumeContext,
	}); err != nil {
		d.t.Fatalf("publish %s: %v", v.VolumeId, err)
	}
	return target
}

// release unpublishes and unstages a volume.
func (d *driverProc) release(v *csi.Volume) {
	d.t.Helper()
	target := filepath.Join(d.dir, "pods", v.VolumeId, "volume")
	if _, err := d.node.NodeUnpublishVolume(ctx(d.t), &csi.NodeUnpublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target}); err != nil {
		d.t.Fatalf("unpublish %s: %v", v.VolumeId, err)
	}
	staging := filepath.Join(d.dir, "staging", v.VolumeId)
	if _, err := d.node.NodeUnstageVolume(ctx(d.t), &csi.NodeUnstageVolumeRequest{VolumeId: v.VolumeId, StagingTargetPath: staging}); err != nil {
		d.t.Fatalf("unstage %s: %v", v.VolumeId, err)
	}
}

func content(i int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("file %d of csi-thin;", i)), 1000+i)
}

func writeFiles(t *testing.T, dir string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprint("f", i)))
		if err == nil {
			_, err = f.Write(content(i))
		}
		if err == nil {
			err = f.Sync()
		}
		if err == nil {
			err = f.Close()
		}
		if err != nil {
			t.Fatalf("write file %d in %s: %v", i, dir, err)
		}
	}
}

// checkFiles fails unless files [from, to) read back exactly and files
// [to, absentTo) do not exist.
func checkFiles(t *testing.T, dir string, from, to, absentTo int) {
	t.Helper()
	for i := from; i < to; i++ {
		got, err := os.ReadFile(filepath.Join(dir, fmt.Sprint("f", i)))
		if err != nil || !bytes.Equal(got, content(i)) {
			t.Fatalf("file %d in %s does not read back (%v)", i, dir, err)
		}
	}
	for i := to; i < absentTo; i++ {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprint("f", i))); !os.IsNotExist(err) {
			t.Fatalf("file %d should not be in %s (%v)", i, dir, err)
		}
	}
}

func fsBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * st.Bsize
}

// TestFilesystemFlows walks a volume through what a user does with it, for
// each filesystem, with the driver restarted and killed between steps.
func TestFilesystemFlows(t *testing.T) {
	for _, fs := range []string{"ext4", "xfs"} {
		t.Run(fs, func(t *testing.T) {
			d := startDriver(t, "csi-thin-flow-"+fs)
			c := mountCap(fs)
			v := d.create("v", 512*mib, c, nil)
			d.restart()
			vt := d.use(v, c)
			writeFiles(t, vt, 0, 10)

			d.kill() // a crash while the volume is mounted: the volume stays up
			checkFiles(t, vt, 0, 10, 10)
			s := d.snapshot("s", v.VolumeId)
			writeFiles(t, vt, 10, 20)

			d.restart()
			// Restore into a larger volume beside its origin (for xfs,
			// a second filesystem with the same UUID on this node).
			r := d.create("r", 1024*mib, c, fromSnapshot(s.SnapshotId))
			rt := d.use(r, c)
			checkFiles(t, rt, 0, 10, 20)
			if got := fsBytes(t, rt); got < 900*mib {
				t.Fatalf("restore's filesystem is %d bytes: not grown to its 1 GiB device", got)
			}
			cl := d.create("c", 512*mib, c, fromVolume(v.VolumeId))
			ct := d.use(cl, c)
			checkFiles(t, ct, 0, 20, 21)

			// Online expansion while mounted and written.
			before := fsBytes(t, vt)
			if _, err := d.node.NodeExpandVolume(ctx(t), &csi.NodeExpandVolumeRequest{
				VolumeId: v.VolumeId, VolumePath: vt, CapacityRange: &csi.CapacityRange{RequiredBytes: 1024 * mib}, VolumeCapability: c,
			}); err != nil {
				t.Fatalf("expand while mounted: %v", err)
			}
			if after := fsBytes(t, vt); after < before+400*mib {
				t.Fatalf("filesystem %d bytes after expanding from %d", after, before)
			}
			writeFiles(t, vt, 20, 25)
			checkFiles(t, vt, 0, 25, 26)

			// Delete the source: its snapshot and clone live on.
			d.release(v)
			if _, err := d.ctrl.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: v.VolumeId}); err != nil {
				t.Fatalf("delete the source: %v", err)
			}
			d.kill()
			r2 := d.create("r2", 512*mib, c, fromSnapshot(s.SnapshotId))
			checkFiles(t, d.use(r2, c), 0, 10, 20)
			checkFiles(t, ct, 0, 20, 21)
			for _, vol := range []*csi.Volume{r, cl, r2} {
				d.release(vol)
				if _, err := d.ctrl.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: vol.VolumeId}); err != nil {
					t.Fatalf("delete %s: %v", vol.VolumeId, err)
				}
			}
			if _, err := d.ctrl.DeleteSnapshot(ctx(t), &csi.DeleteSnapshotRequest{SnapshotId: s.SnapshotId}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestBlockFlow: a raw block volume, written through the device file a pod
// sees, snapshotted, restored and read back.
func TestBlockFlow(t *testing.T) {
	d := startDriver(t, "csi-thin-flow-block")
	c := blockCap()
	b := d.create("b", 64*mib, c, nil)
	bt := d.use(b, c)
	data := bytes.Repeat([]byte("raw block data;"), 4*mib/15)
	if err := os.WriteFile(bt, data, 0); err != nil {
		t.Fatalf("write the block device: %v", err)
	}
	stats, err := d.node.NodeGetVolumeStats(ctx(t), &csi.NodeGetVolumeStatsRequest{VolumeId: b.VolumeId, VolumePath: bt})
	if err != nil || len(stats.Usage) != 1 || stats.Usage[0].Total != 64*mib || stats.Usage[0].Unit != csi.VolumeUsage_BYTES {
		t.Fatalf("block stats %v, %v", stats, err)
	}
	s := d.snapshot("bs", b.VolumeId)
	d.kill()
	r := d.create("br", 128*mib, c, fromSnapshot(s.SnapshotId))
	rt := d.use(r, c)
	got := make([]byte, len(data))
	f, err := os.Open(rt)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.ReadAt(got, 0)
	f.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restored block volume does not read back (%v)", err)
	}
	// A reader-only block volume refuses writes at the device.
	ro := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
	}
	rov := d.create("bro", 64*mib, ro, fromSnapshot(s.SnapshotId))
	rot := d.use(rov, ro)
	if err := os.WriteFile(rot, []byte("must not land"), 0); err == nil {
		t.Fatal("a write to a reader-only block volume succeeded")
	}
	for _, v := range []*csi.Volume{b, r, rov} {
		d.release(v)
		if _, err := d.ctrl.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: v.VolumeId}); err != nil {
			t.Fatalf("delete %s: %v", v.VolumeId, err)
		}
	}
}
