package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
	mount "k8s.io/mount-utils"

	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// NodeStageVolume activates the volume's thin device and, for a mount
// volume, mounts its filesystem at the staging path: a blank device is
// formatted first, and a filesystem smaller than its device (a restore or
// clone larger than its source, or a volume expanded while unstaged) is
// grown to fill it.
//
// A stage that fails takes back what it did (see stageUndo): kubelet does
// not unstage after a failed stage.
func (s *Server) NodeStageVolume(ctx context.Context, req *csi.NodeStageVolumeRequest) (_ *csi.NodeStageVolumeResponse, err error) {
	id, staging, c := req.GetVolumeId(), req.GetStagingTargetPath(), req.GetVolumeCapability()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume_id is missing")
	case staging == "":
		return nil, status.Error(codes.InvalidArgument, "staging_target_path is missing")
	case c == nil:
		return nil, status.Error(codes.InvalidArgument, "volume_capability is missing")
	}
	if err := volcap.Check(c); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	format, legacy, err := volcap.StageFormat(c, req.GetVolumeContext())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "volume %s: %v", id, err)
	}

	block := c.GetBlock() != nil
	klog.V(2).InfoS("NodeStageVolume", "volumeID", id, "stagingTargetPath", staging, "block", block)
	undo, err := s.newStageUndo(id, staging)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.undoStage(undo, err)
		}
	}()
	// A reader-only block volume gets a read-only device: a read-only bind
	// mount of a device node does not stop writes through it.
	a, err := s.engine.ActivateDevice(ctx, id, block && volcap.ReadOnly(c))
	if err != nil {
		return nil, err
	}
	device := a.Path
	undo.device = device
	if a.Activated {
		// The undo runs for a request that ended too: it takes back
		// what the stage did.
		undo.deactivate = func() error { return s.engine.Deactivate(context.WithoutCancel(ctx), id) }
	}
	if block {
		// A block volume is published straight from its device node.
		if legacy != "" {
			klog.InfoS("Ignoring mkfsOptions in the volume context: a block volume is not formatted", "volumeID", id, "mkfsOptions", legacy)
		}
		if err := s.checkBlockStaging(id, staging); err != nil {
			return nil, err
		}
		klog.V(2).InfoS("Staged block volume", "volumeID", id, "device", device)
		return &csi.NodeStageVolumeResponse{}, nil
	}
	if legacy != "" {
		if err := s.checkLegacyMkfsOptions(id, device, legacy); err != nil {
			return nil, err
		}
	}
	fsType := format.FsType
	err = s.stageFilesystem(id, device, staging, fsType, stageMountOptions(c, fsType), format.MkfsArgs())
	if err != nil {
		return nil, err
	}
	klog.V(2).InfoS("Staged volume", "volumeID", id, "device", device, "stagingTargetPath", staging, "fsType", fsType)
	return &csi.NodeStageVolumeResponse{}, nil
}

// stageMountOptions are the options a mount volume's filesystem is
// mounted with at its staging path: the capability's mount flags and, for
// xfs, nouuid. A volume restored or cloned from another carries the same
// filesystem UUID, and xfs refuses to mount a second filesystem with a
// UUID already mounted; nouuid lets both be staged on the same node.
func stageMountOptions(c *csi.VolumeCapability, fsType string) []string {
	opts := slices.Clone(c.GetMount().GetMountFlags())
	if fsType == "xfs" && !slices.Contains(opts, "nouuid") {
		opts = append(opts, "nouuid")
	}
	return opts
}

// checkBlockStaging refuses to stage a block volume whose staging path is
// a mount point, as it is after the volume was staged as a filesystem.
func (s *Server) checkBlockStaging(id, staging string) error {
	mp, err := s.mountPointAt(staging)
	if err != nil {
		return err
	}
	if mp != nil {
		return status.Errorf(codes.AlreadyExists, "staging path %s of volume %s is mounted (%s): "+
			"the volume is staged as a filesystem, not as a block volume; unstage it first", staging, id, mp.Device)
	}
	return nil
}

// stageFilesystem mounts device at staging as fsType, formatting it first
// if it is blank, and grows the filesystem to the device. A staging path
// that already has the device mounted is left as it is, then grown.
func (s *Server) stageFilesystem(id, device, staging, fsType string, opts, mkfsOpts []string) error {
	if err := os.MkdirAll(staging, 0o750); err != nil {
		return fmt.Errorf("create staging path: %w", err)
	}
	mp, err := s.mountPointAt(staging)
	if err != nil {
		return err
	}
	switch {
	case mp == nil:
		klog.V(4).InfoS("Mounting", "volumeID", id, "device", device, "stagingTargetPath", staging,
			"fsType", fsType, "options", opts, "mkfsOptions", mkfsOpts)
		err := s.mounter.FormatAndMountSensitiveWithFormatOptions(device, staging, fsType, opts, nil, mkfsOpts)
		if err != nil {
			return fmt.Errorf("format and mount %s (%s) at %s: %w%s", device, fsType, staging, err, mountHint(err, opts))
		}
	case !sameDevice(mp.Device, device):
		return status.Errorf(codes.FailedPrecondition, "staging path %s has %s mounted, not volume %s's device %s: unmount it",
			staging, mp.Device, id, device)
	case mp.Type != "" && mp.Type != fsType:
		return status.Errorf(codes.AlreadyExists, "volume %s is staged at %s with filesystem %s, not %s",
			id, staging, mp.Type, fsType)
	default:
		klog.V(4).InfoS("Already staged", "volumeID", id, "device", device, "stagingTargetPath", staging)
	}
	return s.growFilesystem(device, staging)
}

// mountHint says what to check when the mount itself failed (not the
// format) with mount options: they come from the volume's StorageClass
// (the PersistentVolume keeps a copy), and the kernel names the option it
// refused only in its log.
func mountHint(err error, opts []string) string {
	var me mount.MountError
	if len(opts) == 0 || !errors.As(err, &me) || me.Type != mount.UnknownMountError {
		return ""
	}
	return fmt.Sprintf("; the mount options were %s: if one is wrong, fix the StorageClass's mountOptions and create the "+
		"PersistentVolumeClaim again (its PersistentVolume keeps the options it was created with); the node's kernel log "+
		"(dmesg) names the option the filesystem refused", strings.Join(opts, ","))
}

// growFilesystem grows the filesystem of device, mounted at mountPath, to
// the size of the device. resize2fs and xfs_growfs do nothing when it
// already fills the device.
func (s *Server) growFilesystem(device, mountPath string) error {
	need, err := s.resizer.NeedResize(device, mountPath)
	if err != nil {
		return fmt.Errorf("check whether the filesystem on %s needs to grow: %w", device, err)
	}
	if !need {
		return nil
	}
	if _, err := s.resizer.Resize(device, mountPath); err != nil {
		return fmt.Errorf("grow the filesystem on %s mounted at %s: %w", device, mountPath, err)
	}
	klog.V(4).InfoS("Filesystem fills its device", "device", device, "mountPath", mountPath)
	return nil
}

// NodeUnstageVolume unmounts and removes the staging path, then
// deactivates the volume's thin device. Either done already is not an
// error.
func (s *Server) NodeUnstageVolume(ctx context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	id, staging := req.GetVolumeId(), req.GetStagingTargetPath()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume_id is missing")
	case staging == "":
		return nil, status.Error(codes.InvalidArgument, "staging_target_path is missing")
	}

	klog.V(2).InfoS("NodeUnstageVolume", "volumeID", id, "stagingTargetPath", staging)
	if err := s.cleanup(staging); err != nil {
		return nil, err
	}
	if err := s.engine.Deactivate(ctx, id); err != nil {
		return nil, err
	}
	klog.V(2).InfoS("Unstaged volume", "volumeID", id)
	return &csi.NodeUnstageVolumeResponse{}, nil
}

// cleanup unmounts path if it is a mount point and removes it.
func (s *Server) cleanup(path string) error {
	if err := mount.CleanupMountPoint(path, s.mounter, true); err != nil {
		return fmt.Errorf("unmount and remove %s: %w", path, err)
	}
	return nil
}
