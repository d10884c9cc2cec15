package node

import (
	"errors"
	"io/fs"
	"os"

	"k8s.io/klog/v2"
)

// stageUndo is what a failed NodeStageVolume takes back. kubelet does not
// call NodeUnstageVolume after a stage that failed, so whatever the stage
// left would stay: an active device that DeleteVolume would have to
// clean up, a mount nobody unmounts. Only what this call did is undone: a
// staging path that was there, or mounted, before it is left as it was,
// and so is a device that was active before it (staged already, or
// staged by a call that succeeded).
type stageUndo struct {
	id, staging string
	dirExisted  bool // the staging path existed before this call
	wasMounted  bool // the staging path was a mount point before this call
	// device is the volume's device once activated, and deactivate is
	// set when this call activated it.
	device     string
	deactivate func() error
}

// newStageUndo notes the staging path's state before a stage changes it.
func (s *Server) newStageUndo(id, staging string) (*stageUndo, error) {
	u := &stageUndo{id: id, staging: staging}
	_, err := os.Lstat(staging)
	switch {
	case err == nil:
		u.dirExisted = true
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	mp, err := s.mountPointAt(staging)
	if err != nil {
		return nil, err
	}
	u.wasMounted = mp != nil
	return u, nil
}

// undoStage takes back what the failed stage did, in reverse: the mount of the
// volume's device at the staging path, the staging path, the device's
// activation. A step that fails is logged; the stage's own error is what
// the caller returns.
func (s *Server) undoStage(u *stageUndo, cause error) {
	klog.V(2).InfoS("Stage failed: undoing what it did", "volumeID", u.id, "stagingTargetPath", u.staging, "err", cause)
	if !u.wasMounted && u.device != "" {
		mp, err := s.mountPointAt(u.staging)
		switch {
		case err != nil:
			klog.ErrorS(err, "Could not check the staging path after a failed stage", "volumeID", u.id, "stagingTargetPath", u.staging)
		case mp != nil && sameDevice(mp.Device, u.device):
			if err := s.mounter.Unmount(u.staging); err != nil {
				klog.ErrorS(err, "Could not unmount the staging path after a failed stage", "volumeID", u.id, "stagingTargetPath", u.staging)
			} else {
				klog.V(4).InfoS("Unmounted the staging path of a failed stage", "volumeID", u.id, "stagingTargetPath", u.staging)
			}
		}
	}
	if !u.dirExisted {
		if err := os.Remove(u.staging); err != nil && !errors.Is(err, fs.ErrNotExist) {
			klog.ErrorS(err, "Could not remove the staging path a failed stage made", "volumeID", u.id, "stagingTargetPath", u.staging)
		}
	}
	if u.deactivate != nil {
		if err := u.deactivate(); err != nil {
			klog.ErrorS(err, "Could not deactivate the device of a failed stage: DeleteVolume will once nothing holds it",
				"volumeID", u.id, "device", u.device)
		} else {
			klog.V(2).InfoS("Deactivated the device of a failed stage", "volumeID", u.id, "device", u.device)
		}
	}
}
