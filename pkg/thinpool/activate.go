package thinpool

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"k8s.io/klog/v2"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

func (e *Engine) thinTable(v *Volume) dm.ThinTable {
	return dm.ThinTable{PoolDev: e.poolDev.String(), DeviceID: v.ThinID}
}

// Activation is a volume's active device.
type Activation struct {
	Path string // the device node
	// Activated is true when this call made the device active, false when
	// it was active already: only the caller that activated a device
	// should deactivate it when what it went on to do fails.
	Activated bool
}

// Activate makes a volume (or, read-only, a snapshot) a block device on
// this node and returns the device's path. Activating an active volume
// returns its path again.
func (e *Engine) Activate(ctx context.Context, id string, readOnly bool) (string, error) {
	a, err := e.ActivateDevice(ctx, id, readOnly)
	return a.Path, err
}

// ActivateDevice is Activate, and says whether the device was active
// before. The mode is part of the device's state: an active device in the
// other mode is reloaded in the mode asked for when nothing has it open,
// and refused with ErrInUse when something does. ctx bounds the wait for
// the id's lock.
func (e *Engine) ActivateDevice(ctx context.Context, id string, readOnly bool) (Activation, error) {
	unlock, err := e.locks.lock(ctx, lockID(id))
	if err != nil {
		return Activation{}, fmt.Errorf("activate %s: %w", id, err)
	}
	defer unlock()
	v, err := e.Get(id)
	if err != nil {
		return Activation{}, err
	}
	if v.Kind == KindSnapshot && !readOnly {
		return Activation{}, invalidf("%s is a snapshot: it activates read-only; restore it into a volume to write", id)
	}
	name := e.dmName(id)
	info, err := e.k.Info(name)
	if err != nil {
		return Activation{}, err
	}
	dev := info.Dev
	activated := false
	if info.Exists {
		if err := e.checkActive(name, v); err != nil {
			return Activation{}, err
		}
		if err := e.resumeLeftSuspended(id); err != nil {
			return Activation{}, err
		}
		if info.ReadOnly != readOnly {
			err = e.changeMode(v, info, readOnly)
		} else {
			err = e.resizeIfActive(v)
		}
		if err != nil {
			return Activation{}, err
		}
	} else {
		dev, err = e.k.ActivateThin(name, e.dmUUID(id), e.thinTable(v), v.SizeBytes/sectorSize, readOnly)
		if err != nil {
			return Activation{}, fmt.Errorf("activate %s: %w", id, err)
		}
		activated = true
		klog.V(2).InfoS("Activated", "id", id, "device", name, "dev", dev, "readOnly", readOnly)
	}
	path, err := e.deviceNode(dev)
	if err != nil {
		err = fmt.Errorf("device node of %s (%s): %w", id, dev, err)
		if activated {
			if rmErr := e.k.Remove(name, dm.RemoveOptions{}); rmErr != nil {
				klog.ErrorS(rmErr, "Could not deactivate a device whose node could not be made", "id", id)
			}
		}
		return Activation{}, err
	}
	return Activation{Path: path, Activated: activated}, nil
}

// changeMode reloads an active device that nothing has open in the other
// mode (and at the record's size). An open one is refused: a mounted
// filesystem would fail under a device turned read-only, and a reader
// would find its device writable.
func (e *Engine) changeMode(v *Volume, info dm.Info, readOnly bool) error {
	name := e.dmName(v.ID)
	if info.OpenCount > 0 {
		return fmt.Errorf("%w: %s is active on this node %s and open (%s): close it (unstage the volume), then activate it %s",
			ErrInUse, v.ID, modeName(info.ReadOnly), e.holdersText(info), modeName(readOnly))
	}
	if err := e.k.ReloadThin(name, e.thinTable(v), v.SizeBytes/sectorSize, readOnly); err != nil {
		return fmt.Errorf("reload the active device of %s %s: %w", v.ID, modeName(readOnly), err)
	}
	klog.V(2).InfoS("Changed the mode of an active device", "id", v.ID, "device", name, "readOnly", readOnly)
	return nil
}

func modeName(readOnly bool) string {
	if readOnly {
		return "read-only"
	}
	return "read-write"
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

// resizeIfActive gives an active volume's device the record's size, in
// the mode the device has.
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
// active is not an error; one still open (mounted) gives ErrInUse, which
// names what holds it. ctx bounds the wait for the id's lock.
func (e *Engine) Deactivate(ctx context.Context, id string) error {
	unlock, err := e.locks.lock(ctx, lockID(id))
	if err != nil {
		return fmt.Errorf("deactivate %s: %w", id, err)
	}
	defer unlock()
	return e.deactivate(id)
}

// deactivate is Deactivate with the id's lock held.
func (e *Engine) deactivate(id string) error {
	name := e.dmName(id)
	err := e.k.Remove(name, dm.RemoveOptions{})
	switch {
	case err == nil:
		klog.V(2).InfoS("Deactivated", "id", id)
		return nil
	case errors.Is(err, dm.ErrNotFound):
		return nil
	case errors.Is(err, dm.ErrBusy):
		info, infoErr := e.k.Info(name)
		if infoErr != nil || !info.Exists {
			return fmt.Errorf("%w: %s is open on this node: unmount or close it first: %w", ErrInUse, id, err)
		}
		return fmt.Errorf("%w: %s is open on this node as %s (%s): unmount or close it first: %w",
			ErrInUse, id, name, e.holdersText(info), err)
	}
	return err
}

// holdersText says what keeps an open device open, as far as the kernel
// tells.
func (e *Engine) holdersText(info dm.Info) string {
	hs, err := e.holders(info.Dev)
	switch {
	case err != nil:
		return fmt.Sprintf("open %d time(s); what holds it is unknown: %v", info.OpenCount, err)
	case len(hs) == 0:
		return fmt.Sprintf("open %d time(s) by a process, not by a mount or a stacked device", info.OpenCount)
	}
	return fmt.Sprintf("open %d time(s): %s", info.OpenCount, strings.Join(hs, "; "))
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

// DeviceBytes is the size of a volume's active device on this node, as
// the kernel maps it, or ErrNotFound when the volume is not active here.
func (e *Engine) DeviceBytes(id string) (uint64, error) {
	ts, err := e.k.Table(e.dmName(id))
	if errors.Is(err, dm.ErrNotFound) {
		return 0, fmt.Errorf("%w: %s is not active on this node", ErrNotFound, id)
	}
	if err != nil {
		return 0, fmt.Errorf("size of the active device of %s: %w", id, err)
	}
	var sectors uint64
	for _, t := range ts {
		sectors += t.Length
	}
	return sectors * sectorSize, nil
}
