package node

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	mount "k8s.io/mount-utils"
)

func TestPublishMountOptions(t *testing.T) {
	tests := []struct {
		readOnly bool
		want     []string
	}{
		{false, []string{"bind"}},
		{true, []string{"bind", "ro"}},
	}
	for _, tt := range tests {
		if got := publishMountOptions(tt.readOnly); !slices.Equal(got, tt.want) {
			t.Errorf("read-only %t: options %q, want %q", tt.readOnly, got, tt.want)
		}
		// mount-utils bind-mounts first, then remounts with the rest.
		bind, bindOpts, remount := mount.MakeBindOpts(publishMountOptions(tt.readOnly))
		if !bind || !slices.Equal(bindOpts, []string{"bind"}) || slices.Contains(remount, "ro") != tt.readOnly {
			t.Errorf("read-only %t: bind %t %q, remount %q", tt.readOnly, bind, bindOpts, remount)
		}
	}
}

func TestSamePath(t *testing.T) {
	tests := []struct {
		ref, path string
		want      bool
	}{
		{"/var/lib/kubelet/pods/a/mount", "/var/lib/kubelet/pods/a/mount", true},
		{"/var/lib/kubelet/pods/a/mount/", "/var/lib/kubelet/pods/a/mount", true},
		{"/host/var/lib/kubelet/pods/a/mount", "/var/lib/kubelet/pods/a/mount", true},
		{"/var/lib/kubelet/pods/b/mount", "/var/lib/kubelet/pods/a/mount", false},
		{"/x/amount", "/mount", false},
		{"/x/mount", "mount", false},
	}
	for _, tt := range tests {
		if got := samePath(tt.ref, tt.path); got != tt.want {
			t.Errorf("samePath(%q, %q) = %t, want %t", tt.ref, tt.path, got, tt.want)
		}
	}
}

// publishFixture is a staged mount volume on a fake mounter.
type publishFixture struct {
	m       *mount.FakeMounter
	s       *Server
	staging string
	pods    string // a pods directory for targets
}

func newPublishFixture(t *testing.T, staged bool) *publishFixture {
	t.Helper()
	dir := t.TempDir()
	f := &publishFixture{staging: filepath.Join(dir, "globalmount"), pods: filepath.Join(dir, "pods")}
	if err := os.Mkdir(f.staging, 0o750); err != nil {
		t.Fatal(err)
	}
	var mps []mount.MountPoint
	if staged {
		mps = append(mps, mount.MountPoint{Device: device, Path: f.staging, Type: "ext4"})
	}
	f.m = mount.NewFakeMounter(mps)
	f.s = testServer(t, f.m)
	return f
}

func (f *publishFixture) pub(target string, readOnly, singleWriter bool) publication {
	return publication{id: "vol-1", staging: f.staging, target: target, readOnly: readOnly, singleWriter: singleWriter}
}

func (f *publishFixture) mountAt(path string) *mount.MountPoint {
	for i := len(f.m.MountPoints) - 1; i >= 0; i-- {
		if f.m.MountPoints[i].Path == path {
			return &f.m.MountPoints[i]
		}
	}
	return nil
}

func TestPublishMount(t *testing.T) {
	t.Run("not staged", func(t *testing.T) {
		f := newPublishFixture(t, false)
		wantCode(t, f.s.publishMount(f.pub(filepath.Join(f.pods, "a", "mount"), false, false)), codes.FailedPrecondition)
	})
	for _, ro := range []bool{false, true} {
		name := map[bool]string{false: "read-write", true: "read-only"}[ro]
		t.Run(name+" and idempotent", func(t *testing.T) {
			f := newPublishFixture(t, true)
			target := filepath.Join(f.pods, "a", "mount")
			for i := range 2 {
				wantCode(t, f.s.publishMount(f.pub(target, ro, false)), codes.OK)
				if n := len(f.m.GetLog()); n != 1 {
					t.Fatalf("call %d: %d mounter calls, want 1", i, n)
				}
			}
			if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
				t.Fatalf("target: %v %v", fi, err)
			}
			mp := f.mountAt(target)
			if mp == nil || mp.Device != device || readOnlyMount(mp) != ro || !slices.Contains(mp.Opts, "bind") {
				t.Fatalf("target mount %+v, want a bind of %s read-only %t", mp, device, ro)
			}
			// Asked again with the other read-only flag.
			wantCode(t, f.s.publishMount(f.pub(target, !ro, false)), codes.AlreadyExists)
		})
	}
	t.Run("another device at the target", func(t *testing.T) {
		f := newPublishFixture(t, true)
		target := filepath.Join(f.pods, "a", "mount")
		if err := os.MkdirAll(target, 0o750); err != nil {
			t.Fatal(err)
		}
		f.m.MountPoints = append(f.m.MountPoints, mount.MountPoint{Device: "/dev/dm-9", Path: target, Type: "ext4"})
		wantCode(t, f.s.publishMount(f.pub(target, false, false)), codes.AlreadyExists)
	})
	tests := []struct {
		name         string
		singleWriter bool
		otherPath    func(f *publishFixture) string // published already; "" for none
		want         codes.Code
	}{
		{"single writer, first target", true, nil, codes.OK},
		{"single writer, second target", true, func(f *publishFixture) string { return filepath.Join(f.pods, "b", "mount") }, codes.FailedPrecondition},
		{"single writer, same target seen under /host", true, func(f *publishFixture) string { return "/host" + filepath.Join(f.pods, "a", "mount") }, codes.OK},
		{"multi writer, second target", false, func(f *publishFixture) string { return filepath.Join(f.pods, "b", "mount") }, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newPublishFixture(t, true)
			if tt.otherPath != nil {
				f.m.MountPoints = append(f.m.MountPoints, mount.MountPoint{Device: device, Path: tt.otherPath(f), Type: "ext4"})
			}
			wantCode(t, f.s.publishMount(f.pub(filepath.Join(f.pods, "a", "mount"), false, tt.singleWriter)), tt.want)
		})
	}
}

func TestPublishBlock(t *testing.T) {
	for _, ro := range []bool{false, true} {
		name := map[bool]string{false: "read-write", true: "read-only"}[ro]
		t.Run(name+" and idempotent", func(t *testing.T) {
			f := newPublishFixture(t, false)
			target := filepath.Join(f.pods, "a", "volumeDevices", "pv-1")
			for i := range 2 {
				wantCode(t, f.s.publishBlock(f.pub(target, ro, false), device), codes.OK)
				if n := len(f.m.GetLog()); n != 1 {
					t.Fatalf("call %d: %d mounter calls, want 1", i, n)
				}
			}
			if fi, err := os.Stat(target); err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("target: %v %v, want a file", fi, err)
			}
			mp := f.mountAt(target)
			if mp == nil || mp.Device != device || readOnlyMount(mp) != ro {
				t.Fatalf("target mount %+v, want a bind of %s read-only %t", mp, device, ro)
			}
			wantCode(t, f.s.publishBlock(f.pub(target, !ro, false), device), codes.AlreadyExists)
			wantCode(t, f.s.publishBlock(f.pub(target, ro, false), "/dev/dm-9"), codes.AlreadyExists)
		})
	}
	t.Run("single writer, second target", func(t *testing.T) {
		f := newPublishFixture(t, false)
		wantCode(t, f.s.publishBlock(f.pub(filepath.Join(f.pods, "a", "dev"), false, true), device), codes.OK)
		wantCode(t, f.s.publishBlock(f.pub(filepath.Join(f.pods, "b", "dev"), false, true), device), codes.FailedPrecondition)
		wantCode(t, f.s.publishBlock(f.pub(filepath.Join(f.pods, "c", "dev"), false, false), device), codes.OK)
	})
	t.Run("target is a directory", func(t *testing.T) {
		f := newPublishFixture(t, false)
		target := filepath.Join(f.pods, "a", "dev")
		if err := os.MkdirAll(target, 0o750); err != nil {
			t.Fatal(err)
		}
		wantPlain(t, f.s.publishBlock(f.pub(target, false, false), device))
	})
}

// TestNodeUnpublishVolume needs no engine: it unmounts and removes the
// target, a directory or a block volume's file, and is idempotent.
func TestNodeUnpublishVolume(t *testing.T) {
	tests := []struct {
		name    string
		publish func(f *publishFixture, target string) error
	}{
		{"mount", func(f *publishFixture, target string) error { return f.s.publishMount(f.pub(target, false, false)) }},
		{"block", func(f *publishFixture, target string) error {
			return f.s.publishBlock(f.pub(target, false, false), device)
		}},
		{"never published", func(*publishFixture, string) error { return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newPublishFixture(t, true)
			target := filepath.Join(f.pods, "a", "target")
			if err := tt.publish(f, target); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				_, err := f.s.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: "vol-1", TargetPath: target})
				if err != nil {
					t.Fatalf("unpublish %d: %v", i, err)
				}
			}
			if _, err := os.Stat(target); !os.IsNotExist(err) {
				t.Errorf("target still there: %v", err)
			}
			if f.mountAt(target) != nil {
				t.Errorf("target still mounted: %+v", f.m.MountPoints)
			}
			if f.mountAt(f.staging) == nil {
				t.Error("the staging mount went too")
			}
		})
	}
}
