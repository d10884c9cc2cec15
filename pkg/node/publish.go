package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
	mount "k8s.io/mount-utils"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// NodePublishVolume bind-mounts a staged volume at the target path: a
// mount volume's staging mount onto a directory, a block volume's device
// node onto a file. Both are created, with their parents, if missing.
func (s *Server) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	id, target, staging, c := req.GetVolumeId(), req.GetTargetPath(), req.GetStagingTargetPath(), req.GetVolumeCapability()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume_id is missing")
	case target == "":
		return nil, status.Error(codes.InvalidArgument, "target_path is missing")
	case c == nil:
		return nil, status.Error(codes.InvalidArgument, "volume_capability is missing")
	}
	if err := volcap.Check(c); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if staging == "" {
		return nil, status.Error(codes.FailedPrecondition, "staging_target_path is missing: csi-thin stages volumes before publishing them")
	}

	p := publication{
		id:           id,
		staging:      staging,
		target:       target,
		readOnly:     req.GetReadonly() || volcap.ReadOnly(c),
		singleWriter: c.GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
	}
	block := c.GetBlock() != nil
	klog.V(2).InfoS("NodePublishVolume", "volumeID", id, "targetPath", target, "stagingTargetPath", staging,
		"block", block, "readOnly", p.readOnly)
	if _, err := s.engine.Get(id); err != nil {
		return nil, err
	}
	var err error
	if block {
		var device string
		if device, err = s.activeDevice(id); err == nil {
			err = s.publishBlock(p, device)
		}
	} else {
		err = s.publishMount(p)
	}
	if err != nil {
		return nil, err
	}
	klog.V(2).InfoS("Published volume", "volumeID", id, "targetPath", target)
	return &csi.NodePublishVolumeResponse{}, nil
}

// publication is what NodePublishVolume is asked to do.
type publication struct {
	id, staging, target string
	readOnly            bool
	singleWriter        bool // SINGLE_NODE_SINGLE_WRITER: one target at a time
}

// activeDevice is the device node of a staged (active) volume.
func (s *Server) activeDevice(id string) (string, error) {
	device, err := s.engine.DevicePath(id)
	if errors.Is(err, thinpool.ErrNotFound) {
		if _, gerr := s.engine.Get(id); gerr != nil {
			return "", gerr
		}
		return "", status.Errorf(codes.FailedPrecondition, "volume %s is not staged on this node: stage it first", id)
	}
	return device, err
}

// publishMountOptions are the options of a publishing bind mount.
// mount-utils bind-mounts, then remounts with the other options, so "ro"
// takes effect on the bind mount alone.
func publishMountOptions(readOnly bool) []string {
	if readOnly {
		return []string{"bind", "ro"}
	}
	return []string{"bind"}
}

func readOnlyMount(mp *mount.MountPoint) bool { return slices.Contains(mp.Opts, "ro") }

// publishMount bind-mounts the staging mount at the target directory.
func (s *Server) publishMount(p publication) (err error) {
	src, err := s.mountPointAt(p.staging)
	if err != nil {
		return err
	}
	if src == nil {
		return status.Errorf(codes.FailedPrecondition, "volume %s is not staged at %s: stage it first", p.id, p.staging)
	}
	created, err := makeTarget(p.target, true)
	if err != nil {
		return fmt.Errorf("create target path: %w", err)
	}
	defer removeIfFailed(p.target, created, &err)
	mp, err := s.mountPointAt(p.target)
	if err != nil {
		return err
	}
	if mp != nil {
		if !s.isDir(p.target) {
			return status.Errorf(codes.AlreadyExists, "target path %s is a file with %s mounted, as a block volume is published: "+
				"a mount volume is published onto a directory; unpublish what is mounted there first", p.target, mp.Device)
		}
		if !sameDevice(mp.Device, src.Device) {
			return status.Errorf(codes.AlreadyExists, "target path %s has %s mounted, not volume %s (%s)",
				p.target, mp.Device, p.id, src.Device)
		}
		return checkReadOnly(p, mp)
	}
	if p.singleWriter {
		refs, err := s.mounter.GetMountRefs(p.staging)
		if err != nil {
			return fmt.Errorf("find where %s is mounted: %w", p.staging, err)
		}
		if err := s.checkSingleWriter(p, refs); err != nil {
			return err
		}
	}
	opts := publishMountOptions(p.readOnly)
	klog.V(4).InfoS("Bind-mounting", "volumeID", p.id, "source", p.staging, "target", p.target, "options", opts)
	if err := s.mounter.Mount(p.staging, p.target, "", opts); err != nil {
		return fmt.Errorf("bind-mount %s at %s: %w", p.staging, p.target, err)
	}
	return nil
}

// publishBlock bind-mounts the device node onto the target file.
func (s *Server) publishBlock(p publication, device string) error {
	if err := os.MkdirAll(filepath.Dir(p.target), 0o750); err != nil {
		return fmt.Errorf("create the directory of target path: %w", err)
	}
	mp, err := s.mountPointAt(p.target)
	if err != nil {
		return err
	}
	if mp != nil {
		// A mount volume's publication, a directory, has the same device
		// mounted: it is told by its kind.
		if s.isDir(p.target) {
			return status.Errorf(codes.AlreadyExists, "target path %s is a directory with %s mounted, as a mount volume is published: "+
				"a block volume is published onto a file; unpublish what is mounted there first", p.target, mp.Device)
		}
		// The bind-mounted target is the device node itself; /proc/mounts
		// names the filesystem /dev is on, so the node is compared too.
		if !sameDevice(p.target, device) && !sameDevice(mp.Device, device) {
			return status.Errorf(codes.AlreadyExists, "target path %s has %s mounted, not volume %s's device %s",
				p.target, mp.Device, p.id, device)
		}
		return checkReadOnly(p, mp)
	}
	if p.singleWriter {
		refs, err := s.devicePublications(device)
		if err != nil {
			return err
		}
		if err := s.checkSingleWriter(p, refs); err != nil {
			return err
		}
	}
	if err := createFile(p.target); err != nil {
		return err
	}
	opts := publishMountOptions(p.readOnly)
	klog.V(4).InfoS("Bind-mounting", "volumeID", p.id, "source", device, "target", p.target, "options", opts)
	if err := s.mounter.Mount(device, p.target, "", opts); err != nil {
		return fmt.Errorf("bind-mount %s at %s: %w", device, p.target, err)
	}
	return nil
}

// isDir reports whether path is a directory.
func (s *Server) isDir(path string) bool {
	fi, err := s.stat(path)
	return err == nil && fi.IsDir()
}

// createFile creates the file a block volume is bind-mounted onto.
func createFile(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o640)
	if err != nil {
		return fmt.Errorf("create target file for a block volume: %w", err)
	}
	return f.Close()
}

// checkReadOnly accepts a publication already in place when it is as
// read-only as asked.
func checkReadOnly(p publication, mp *mount.MountPoint) error {
	if ro := readOnlyMount(mp); ro != p.readOnly {
		return status.Errorf(codes.AlreadyExists, "volume %s is published at %s with read-only %t, not %t",
			p.id, p.target, ro, p.readOnly)
	}
	klog.V(4).InfoS("Already published", "volumeID", p.id, "targetPath", p.target)
	return nil
}

// checkSingleWriter refuses a second target for a SINGLE_NODE_SINGLE_WRITER
// volume: it must not be published anywhere but at the target path. A
// path that ends with the staging or target path is the same mount seen
// through another view of the host's tree (a container's /host, say), not
// another publication.
func (s *Server) checkSingleWriter(p publication, refs []string) error {
	for _, r := range refs {
		if samePath(r, p.staging) || samePath(r, p.target) {
			continue
		}
		return status.Errorf(codes.FailedPrecondition, "volume %s has access mode SINGLE_NODE_SINGLE_WRITER and is already published at %s",
			p.id, r)
	}
	return nil
}

// devicePublications lists where a device node is bind-mounted. Such a
// mount shows the filesystem /dev is on, so the mount points of devtmpfs
// and tmpfs are looked at and matched by device number; only those, as
// looking at another filesystem's mount point (NFS, say) may hang.
func (s *Server) devicePublications(device string) ([]string, error) {
	mps, err := s.mounter.List()
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	var refs []string
	for _, mp := range mps {
		switch {
		case mp.Device == device:
		case (mp.Type == "devtmpfs" || mp.Type == "tmpfs") && sameDevice(mp.Path, device):
		default:
			continue
		}
		if !samePath(mp.Path, device) {
			refs = append(refs, mp.Path)
		}
	}
	return refs, nil
}

// samePath reports whether mount point r is path p, or p under another root.
func samePath(r, p string) bool {
	r, p = filepath.Clean(r), filepath.Clean(p)
	return r == p || (filepath.IsAbs(p) && strings.HasSuffix(r, p))
}

// NodeUnpublishVolume unmounts the target path and removes it, a
// directory or a block volume's file. A target already gone is not an
// error.
func (s *Server) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume_id is missing")
	case target == "":
		return nil, status.Error(codes.InvalidArgument, "target_path is missing")
	}

	klog.V(2).InfoS("NodeUnpublishVolume", "volumeID", id, "targetPath", target)
	if err := s.cleanup(target); err != nil {
		return nil, err
	}
	klog.V(2).InfoS("Unpublished volume", "volumeID", id, "targetPath", target)
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// makeTarget creates a target directory (or, for a block volume, the file
// the device is bound onto) and reports whether it had to.
func makeTarget(path string, dir bool) (bool, error) {
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	}
	if dir {
		return true, os.MkdirAll(path, 0o750)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return false, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return false, err
	}
	return true, f.Close()
}

// removeIfFailed removes a target this call created when the call fails,
// so that a refused publish leaves nothing behind.
func removeIfFailed(path string, created bool, err *error) {
	if created && *err != nil {
		if rmErr := os.Remove(path); rmErr != nil {
			klog.ErrorS(rmErr, "Could not remove the target path of a failed publish", "path", path)
		}
	}
}
