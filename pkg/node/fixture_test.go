package node

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	mount "k8s.io/mount-utils"

	"github.com/csi-thin/csi-thin/internal/fakepool"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
	"github.com/csi-thin/csi-thin/pkg/volcap"
)

const gib = 1 << 30

// nodeFixture is a node server as it runs on a node, over a fake pool, a
// fake mounter and a scripted exec, so that a handler's engine calls,
// mounts and commands are all seen. As on a node, a device is held open
// while its filesystem is mounted. Staging paths and targets live in a
// temporary directory.
type nodeFixture struct {
	t      *testing.T
	pool   *fakepool.Pool
	m      *mount.FakeMounter
	script *script
	s      *Server
	dir    string
	held   map[string]bool // the devices the mounts hold, by id
}

func newNodeFixture(t *testing.T) *nodeFixture { return newNodeFixtureOver(t, nil) }

// newNodeFixtureOver is newNodeFixture with the fake mounter wrapped, for
// a test whose mounts fail.
func newNodeFixtureOver(t *testing.T, wrap func(*mount.FakeMounter) mount.Interface) *nodeFixture {
	t.Helper()
	f := &nodeFixture{
		t:      t,
		pool:   fakepool.NewT(t, fakepool.Options{BudgetBytes: 10 * gib}),
		m:      mount.NewFakeMounter(nil),
		script: newScript(t),
		dir:    t.TempDir(),
		held:   map[string]bool{},
	}
	var m mount.Interface = f.m
	if wrap != nil {
		m = wrap(f.m)
	}
	m = holdingMounter{m, f}
	f.s = New(Options{Engine: f.pool, NodeID: "node-1", Mounter: mount.NewSafeFormatAndMount(m, f.script)})
	f.s.stat = f.stat
	return f
}

// volume creates a volume of 1 GiB and returns its id.
func (f *nodeFixture) volume(name string) string {
	f.t.Helper()
	v, err := f.pool.CreateVolume(context.Background(), thinpool.CreateRequest{Name: name, RequiredBytes: gib})
	if err != nil {
		f.t.Fatal(err)
	}
	return v.ID
}

func (f *nodeFixture) device(id string) string { return f.pool.NodePath(id) }

func (f *nodeFixture) stagingPath(id string) string { return filepath.Join(f.dir, "staging", id) }

func (f *nodeFixture) targetPath(pod string) string {
	return filepath.Join(f.dir, "pods", pod, "volumes", "mount")
}

// staged leaves a volume as a NodeStageVolume with the capability does,
// without running one: its device active in the mode the stage asks for
// and, for a mount volume, its filesystem mounted at the staging path.
func (f *nodeFixture) staged(id string, c *csi.VolumeCapability) {
	f.t.Helper()
	block := c.GetBlock() != nil
	if _, err := f.pool.ActivateDevice(context.Background(), id, block && volcap.ReadOnly(c)); err != nil {
		f.t.Fatal(err)
	}
	staging := f.stagingPath(id)
	if err := os.MkdirAll(staging, 0o750); err != nil {
		f.t.Fatal(err)
	}
	if !block {
		f.m.MountPoints = append(f.m.MountPoints, mount.MountPoint{Device: f.device(id), Path: staging, Type: volcap.FsType(c, nil)})
		f.syncHolds()
	}
}

// holdingMounter has the fake pool's devices held while their filesystem
// is mounted, as the kernel has them open: Deactivate then answers
// ErrInUse.
type holdingMounter struct {
	mount.Interface
	f *nodeFixture
}

func (h holdingMounter) Mount(source, target, fstype string, options []string) error {
	defer h.f.syncHolds()
	return h.Interface.Mount(source, target, fstype, options)
}

func (h holdingMounter) MountSensitive(source, target, fstype string, options, sensitive []string) error {
	defer h.f.syncHolds()
	return h.Interface.MountSensitive(source, target, fstype, options, sensitive)
}

func (h holdingMounter) Unmount(target string) error {
	defer h.f.syncHolds()
	return h.Interface.Unmount(target)
}

// syncHolds holds the device of every filesystem mounted at a directory,
// and releases the others. A device node bind-mounted onto a file, as a
// block volume is published, does not open the device.
func (f *nodeFixture) syncHolds() {
	f.t.Helper()
	mounted := map[string]bool{}
	mps, _ := f.m.List()
	for _, mp := range mps {
		if fi, err := os.Stat(mp.Path); err == nil && fi.IsDir() && f.isDevice(mp.Device) {
			mounted[strings.TrimPrefix(filepath.Base(mp.Device), "dm-")] = true
		}
	}
	for id := range mounted {
		if !f.held[id] {
			if err := f.pool.Hold(id); err != nil {
				f.t.Errorf("a filesystem is mounted from a device that is not active: %v", err)
				continue
			}
			f.held[id] = true
		}
	}
	for id := range f.held {
		if !mounted[id] {
			if err := f.pool.Release(id); err != nil {
				f.t.Error(err)
			}
			delete(f.held, id)
		}
	}
}

func (f *nodeFixture) stage(ctx context.Context, id string, c *csi.VolumeCapability, vctx map[string]string) error {
	_, err := f.s.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{
		VolumeId: id, StagingTargetPath: f.stagingPath(id), VolumeCapability: c, VolumeContext: vctx,
	})
	return err
}

func (f *nodeFixture) unstage(id string) error {
	_, err := f.s.NodeUnstageVolume(context.Background(), &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: f.stagingPath(id)})
	return err
}

func (f *nodeFixture) publish(id, target string, c *csi.VolumeCapability, readOnly bool) error {
	_, err := f.s.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{
		VolumeId: id, StagingTargetPath: f.stagingPath(id), TargetPath: target, VolumeCapability: c, Readonly: readOnly,
	})
	return err
}

func (f *nodeFixture) unpublish(id, target string) error {
	_, err := f.s.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
	return err
}

// mountAt is the mount on top at path, or nil.
func (f *nodeFixture) mountAt(path string) *mount.MountPoint {
	mps, _ := f.m.List()
	for i := len(mps) - 1; i >= 0; i-- {
		if mps[i].Path == resolve(path) {
			return &mps[i]
		}
	}
	return nil
}

// mounts counts the mounts the server made.
func (f *nodeFixture) mounts() int {
	n := 0
	for _, a := range f.m.GetLog() {
		if a.Action == mount.FakeActionMount {
			n++
		}
	}
	return n
}

// wantActive checks whether a volume's device is active, and in which
// mode.
func (f *nodeFixture) wantActive(id string, active, readOnly bool) {
	f.t.Helper()
	if a, ro := f.pool.Active(id); a != active || ro != readOnly {
		f.t.Errorf("device of %s: active %t read-only %t, want %t %t", id, a, ro, active, readOnly)
	}
}

// wantPath checks whether path exists.
func (f *nodeFixture) wantPath(path string, exists bool) {
	f.t.Helper()
	if _, err := os.Lstat(path); (err == nil) != exists {
		f.t.Errorf("%s exists: %t (%v), want %t", path, err == nil, err, exists)
	}
}

// stat is os.Stat, but a device node of the fake pool, and a file one is
// bind-mounted onto, are block devices, as they are on a node.
func (f *nodeFixture) stat(path string) (fs.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil || fi.IsDir() {
		return fi, err
	}
	if f.isDevice(path) {
		return blockDevice{fi}, nil
	}
	if mp := f.mountAt(path); mp != nil && f.isDevice(mp.Device) {
		return blockDevice{fi}, nil
	}
	return fi, nil
}

func (f *nodeFixture) isDevice(path string) bool {
	return filepath.Dir(resolve(path)) == filepath.Dir(f.pool.NodePath("x"))
}

// blockDevice is a file that stats as a block device.
type blockDevice struct{ fs.FileInfo }

func (b blockDevice) Mode() fs.FileMode { return b.FileInfo.Mode().Perm() | fs.ModeDevice }

// formatRuns are the commands staging a blank device as fsType runs:
// blkid finds nothing, mkfs formats it with the formatting arguments
// before the mounter's own, and the filesystem is grown.
func formatRuns(device, staging, fsType string, mkfsArgs ...string) []run {
	mkfs := append([]string{"mkfs." + fsType}, mkfsArgs...)
	if fsType == "xfs" {
		mkfs = append(mkfs, "-f", device)
	} else {
		mkfs = append(mkfs, "-F", "-m0", device)
	}
	return append([]run{{argv: blkidArgv(device), err: exitStatus(2)}, {argv: mkfs}}, growRuns(device, staging, fsType)...)
}

// mountRuns are the commands staging a device formatted as fsType runs:
// blkid finds the filesystem, fsck checks it, and it is grown.
func mountRuns(device, staging, fsType string) []run {
	return append([]run{
		{argv: blkidArgv(device), out: "TYPE=" + fsType + "\n"},
		{argv: []string{"fsck", "-a", device}},
	}, growRuns(device, staging, fsType)...)
}

func activate(f *nodeFixture, id string, readOnly bool) {
	f.t.Helper()
	if _, err := f.pool.ActivateDevice(context.Background(), id, readOnly); err != nil {
		f.t.Fatal(err)
	}
}

func hold(f *nodeFixture, id string) {
	f.t.Helper()
	if err := f.pool.Hold(id); err != nil {
		f.t.Fatal(err)
	}
}

func mkdirAll(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o750); err != nil {
		t.Fatal(err)
	}
}

// wantMessage checks that err says what.
func wantMessage(t *testing.T, err error, what string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), what) {
		t.Errorf("error %v does not say %q", err, what)
	}
}
