package thinpool

import (
	"errors"
	"fmt"

	"k8s.io/klog/v2"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

func (e *Engine) thinTable(v *Volume) dm.ThinTable {
	return dm.ThinTable{PoolDev: e.poolDev.String(), DeviceID: v.ThinID}
}

// Activate makes a volume (or, read-only, a snapshot) a block device on
// this node and returns the device's path. Activating an active volume
// returns its path again.
func (e *Engine) Activate(id string, readOnly bool) (string, error) {
	defer e.locks.lock(lockID(id))()
	v, err := e.Get(id)
	if err != nil {
		return "", err
	}
	if v.Kind == KindSnapshot && !readOnly {
		return "", invalidf("%s is a snapshot: it activates read-only; restore it into a volume to write", id)
	}
	name := e.dmName(id)
	info, err := e.k.Info(name)
	if err != nil {
		return "", err
	}
	dev := info.Dev
	if info.Exists {
		if err := e.checkActive(name, v); err != nil {
			return "", err
		}
		if err := e.resizeIfActive(v); err != nil {
			return "", err
		}
	} else {
		dev, err = e.k.ActivateThin(name, e.dmUUID(id), e.thinTable(v), v.SizeBytes/sectorSize, readOnly)
		if err != nil {
			return "", fmt.Errorf("activate %s: %w", id, err)
		}
		klog.V(2).InfoS("Activated", "id", id, "device", name, "dev", dev, "readOnly", readOnly)
	}
	path, err := e.deviceNode(dev)
	if err != nil {
		return "", fmt.Errorf("device node of %s (%s): %w", id, dev, err)
	}
	return path, nil
}

// checkActive makes sure a device with the volume's name maps the volume.
func (e *Engine) checkActive(name string, v *Volume) error {
	ts, err := e.k.Table(name)
	if err != nil {
		return err
	}
	want := e.thinTable(v)
	if len(ts) != 1 || ts[0].Type != "thin" {
		return fmt.Errorf("dm device %s is not a thin device of this pool: remove it", name)
	}
	have, err := dm.ParseThinParams(ts[0].Params)
	if err != nil {
		return err
	}
	if have.PoolDev != want.PoolDev || have.DeviceID != want.DeviceID {
		return fmt.Errorf("dm device %s maps thin %d of %s, not %s's thin %d of %s: remove it",
			name, have.DeviceID, have.PoolDev, v.ID, want.DeviceID, want.PoolDev)
	}
	return nil
}

// resizeIfActive gives an active volume's device the record's size.
func (e *Engine) resizeIfActive(v *Volume) error {
	name := e.dmName(v.ID)
	ts, err := e.k.Table(name)
	if errors.Is(err, dm.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(ts) == 1 && ts[0].Length == v.SizeBytes/sectorSize {
		return nil
	}
	if err := e.k.ResizeThin(name, e.thinTable(v), v.SizeBytes/sectorSize); err != nil {
		return fmt.Errorf("resize the active device of %s: %w", v.ID, err)
	}
	klog.V(2).InfoS("Resized active device", "id", v.ID, "bytes", v.SizeBytes)
	return nil
}

// Deactivate removes a volume's block device from this node. A volume not
// active is not an error; one still open (mounted) gives ErrInUse.
func (e *Engine) Deactivate(id string) error {
	defer e.locks.lock(lockID(id))()
	err := e.k.Remove(e.dmName(id), dm.RemoveOptions{})
	switch {
	case err == nil:
		klog.V(2).InfoS("Deactivated", "id", id)
		return nil
	case errors.Is(err, dm.ErrNotFound):
		return nil
	case errors.Is(err, dm.ErrBusy):
		return fmt.Errorf("%w: %s is open (mounted or in use by a process): unmount it first: %w", ErrInUse, id, err)
	}
	return err
}

// DevicePath returns the device path of an active volume, or ErrNotFound.
func (e *Engine) DevicePath(id string) (string, error) {
	info, err := e.k.Info(e.dmName(id))
	if err != nil {
		return "", err
	}
	if !info.Exists {
		return "", fmt.Errorf("%w: %s is not active on this node", ErrNotFound, id)
	}
	return e.deviceNode(info.Dev)
}
