package devmapper

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// Target is one line of a dm table: a range of sectors and the target that
// maps it, with the target's parameters (for a table) or its status (for a
// status query).
type Target struct {
	Start  uint64 // first sector
	Length uint64 // sectors
	Type   string // "thin-pool", "thin", "linear", ...
	Params string
}

// Info is what DM_DEV_STATUS says of a device.
type Info struct {
	Exists         bool // false when no device has the name; every other field is then zero
	Suspended      bool
	LiveTable      bool
	InactiveTable  bool
	ReadOnly       bool
	DeferredRemove bool // a deferred remove is pending until the last opener closes
	OpenCount      int32
	EventNr        uint32
	TargetCount    uint32
	Dev            Dev
	Name           string
	UUID           string
}

// Device is one entry of List.
type Device struct {
	Name    string
	Dev     Dev
	EventNr uint32 // zero on kernels before interface 4.45
	UUID    string // empty on kernels before interface 4.45
}

// UdevFlags are passed to udev rules with the uevents of resume and remove
// (the DM_COOKIE variable), as libdevmapper does when it does not wait for
// udev. Nothing here waits for udev to process them.
type UdevFlags uint16

// Flags of lvm2's libdm/libdevmapper.h.
const (
	UdevDisableDMRules         UdevFlags = 0x0001
	UdevDisableSubsystemRules  UdevFlags = 0x0002
	UdevDisableDiskRules       UdevFlags = 0x0004
	UdevDisableOtherRules      UdevFlags = 0x0008
	UdevLowPriority            UdevFlags = 0x0010
	UdevDisableLibraryFallback UdevFlags = 0x0020
	UdevPrimarySource          UdevFlags = 0x0040

	// UdevPoolInternal marks a device that only csi-thin should touch: udev
	// runs no subsystem, disk (blkid, by-id links) or other rules for it,
	// so LVM, multipath and desktop automounters leave it alone. lvm2 marks
	// a thin pool's hidden devices the same way.
	UdevPoolInternal = UdevDisableSubsystemRules | UdevDisableDiskRules | UdevDisableOtherRules | UdevDisableLibraryFallback
)

// cookie is the event_nr value that carries udev flags without a semaphore.
func (f UdevFlags) cookie() uint32 { return uint32(f) << 16 }

// SuspendOptions choose how Suspend quiesces a device.
type SuspendOptions struct {
	// NoFlush leaves queued I/O queued instead of completing it first
	// (DM_NOFLUSH_FLAG), as a pool reload that must not block does.
	NoFlush bool
	// SkipFreeze does not freeze a filesystem mounted on the device
	// (DM_SKIP_LOCKFS_FLAG). By default it is frozen, so a snapshot taken
	// while suspended is consistent.
	SkipFreeze bool
}

// RemoveOptions choose how Remove removes a device.
type RemoveOptions struct {
	// Deferred removes an open device when its last opener closes it,
	// instead of failing with ErrBusy. The kernel does that removal on a
	// workqueue, moments after the close returns.
	Deferred bool
	// Udev flags for the remove uevent.
	Udev UdevFlags
}

// List returns every dm device.
func (c *Control) List() ([]Device, error) {
	// Since 4.45 the kernel adds each device's uuid when asked to.
	r, err := c.run(cmdListDevices, &request{flags: unix.DM_UUID_FLAG})
	if err != nil {
		return nil, err
	}
	devs, err := parseNameList(r.data, c.supports(minorNameListUUID))
	if err != nil {
		return nil, &Error{Op: cmdListDevices.name, Err: err}
	}
	return devs, nil
}

// parseNameList reads a chain of struct dm_name_list: dev (8 bytes), next
// (4), the NUL-terminated name and, since 4.45, event_nr, flags and uuid at
// the next 8-byte boundary.
func parseNameList(data []byte, withUUID bool) ([]Device, error) {
	const nameOff = 12
	if len(data) == 0 {
		// No devices: the kernel zeroes the first entry's dev but counts
		// none of it in data_size.
		return nil, nil
	}
	var devs []Device
	off := 0
	for {
		if off+nameOff > len(data) {
			return nil, fmt.Errorf("device list entry at %d lies outside the %d-byte reply", off, len(data))
		}
		e := data[off:]
		dev := native.Uint64(e)
		next := int(native.Uint32(e[8:]))
		if dev == 0 && len(devs) == 0 {
			return nil, nil // the kernel's way of saying there are none
		}
		end := len(e)
		if next != 0 {
			if next < nameOff || next > len(e) {
				return nil, fmt.Errorf("device list entry at %d: next offset %d is out of range", off, next)
			}
			end = next
		}
		d := Device{Dev: DevFromUint64(dev), Name: cString(e[nameOff:end])}
		if withUUID {
			extra := align8(nameOff + len(d.Name) + 1)
			if extra+8 <= end {
				d.EventNr = native.Uint32(e[extra:])
				if native.Uint32(e[extra+4:])&unix.DM_NAME_LIST_FLAG_HAS_UUID != 0 {
					d.UUID = cString(e[extra+8 : end])
				}
			}
		}
		devs = append(devs, d)
		if next == 0 {
			return devs, nil
		}
		off += next
	}
}

// Create makes a device with no table. A taken name fails with ErrExists.
func (c *Control) Create(name, uuid string) (Dev, error) {
	if err := validateName(name); err != nil {
		return Dev{}, err
	}
	if err := validateUUID(uuid); err != nil {
		return Dev{}, err
	}
	r, err := c.run(cmdDevCreate, &request{name: name, uuid: uuid})
	if err != nil {
		return Dev{}, err
	}
	klog.V(2).InfoS("Created dm device", "name", name, "uuid", uuid, "dev", DevFromUint64(r.dev))
	return DevFromUint64(r.dev), nil
}

// Load puts a table into the device's inactive slot; Resume makes it live.
func (c *Control) Load(name string, targets []Target, readOnly bool) error {
	if err := validateName(name); err != nil {
		return err
	}
	payload, err := packTargets(targets)
	if err != nil {
		return err
	}
	req := &request{name: name, targetCount: uint32(len(targets)), payload: payload}
	if readOnly {
		req.flags |= unix.DM_READONLY_FLAG
	}
	if _, err := c.run(cmdTableLoad, req); err != nil {
		return err
	}
	klog.V(2).InfoS("Loaded dm table", "name", name, "targets", targets, "readOnly", readOnly)
	return nil
}

// ClearInactive drops a table loaded but not yet resumed.
func (c *Control) ClearInactive(name string) error {
	if err := validateName(name); err != nil {
		return err
	}
	_, err := c.run(cmdTableClear, &request{name: name})
	return err
}

// Suspend stops I/O to the device; by default it flushes queued I/O and
// freezes a mounted filesystem first.
func (c *Control) Suspend(name string, opts SuspendOptions) error {
	if err := validateName(name); err != nil {
		return err
	}
	req := &request{name: name, flags: unix.DM_SUSPEND_FLAG}
	if opts.NoFlush {
		req.flags |= unix.DM_NOFLUSH_FLAG
	}
	if opts.SkipFreeze {
		req.flags |= unix.DM_SKIP_LOCKFS_FLAG
	}
	if _, err := c.run(cmdDevSuspend, req); err != nil {
		return err
	}
	klog.V(2).InfoS("Suspended dm device", "name", name, "noFlush", opts.NoFlush, "skipFreeze", opts.SkipFreeze)
	return nil
}

// Resume makes a loaded table live (swapping it in if one was loaded) and
// lets I/O flow again.
func (c *Control) Resume(name string, udev UdevFlags) error {
	if err := validateName(name); err != nil {
		return err
	}
	if _, err := c.run(cmdDevResume, &request{name: name, eventNr: udev.cookie()}); err != nil {
		return err
	}
	klog.V(2).InfoS("Resumed dm device", "name", name)
	return nil
}

// Remove removes the device. An open device fails with ErrBusy unless the
// remove is deferred, in which case the kernel removes it when the last
// opener closes it; a missing one fails with ErrNotFound.
func (c *Control) Remove(name string, opts RemoveOptions) error {
	if err := validateName(name); err != nil {
		return err
	}
	req := &request{name: name, eventNr: opts.Udev.cookie()}
	if opts.Deferred {
		if !c.supports(minorDeferredRemove) {
			return &Error{Op: "remove", Device: name, Err: fmt.Errorf(
				"%w: deferred remove needs device-mapper interface 4.%d, the kernel has %s", ErrUnsupported, minorDeferredRemove, c.version)}
		}
		req.flags |= unix.DM_DEFERRED_REMOVE
	}
	if _, err := c.run(cmdDevRemove, req); err != nil {
		return err
	}
	klog.V(2).InfoS("Removed dm device", "name", name, "deferred", opts.Deferred)
	return nil
}

// CancelDeferredRemove withdraws a pending deferred remove. With none
// pending it does nothing; a device already removed fails with ErrNotFound.
func (c *Control) CancelDeferredRemove(name string) error {
	if !c.supports(minorDeferredRemove) {
		return &Error{Op: "cancel deferred remove", Device: name, Err: fmt.Errorf(
			"%w: needs device-mapper interface 4.%d, the kernel has %s", ErrUnsupported, minorDeferredRemove, c.version)}
	}
	_, err := c.Message(name, 0, "@cancel_deferred_remove")
	return err
}

// Info describes the device. A device that does not exist gives
// Info{Exists: false} and no error.
func (c *Control) Info(name string) (Info, error) {
	if err := validateName(name); err != nil {
		return Info{}, err
	}
	r, err := c.run(cmdDevStatus, &request{name: name})
	if err != nil {
		if isErrno(err, unix.ENXIO) {
			return Info{}, nil
		}
		return Info{}, err
	}
	return infoFromReply(r), nil
}

func infoFromReply(r *reply) Info {
	return Info{
		Exists:         true,
		Suspended:      r.flags&unix.DM_SUSPEND_FLAG != 0,
		LiveTable:      r.flags&unix.DM_ACTIVE_PRESENT_FLAG != 0,
		InactiveTable:  r.flags&unix.DM_INACTIVE_PRESENT_FLAG != 0,
		ReadOnly:       r.flags&unix.DM_READONLY_FLAG != 0,
		DeferredRemove: r.flags&unix.DM_DEFERRED_REMOVE != 0,
		OpenCount:      r.openCount,
		EventNr:        r.eventNr,
		TargetCount:    r.targetCount,
		Dev:            DevFromUint64(r.dev),
		Name:           r.name,
		UUID:           r.uuid,
	}
}

// Deps lists the devices the live table uses.
func (c *Control) Deps(name string) ([]Dev, error) {
	if err := validateName(name); err != nil {
		return nil, err
	}
	r, err := c.run(cmdTableDeps, &request{name: name})
	if err != nil {
		return nil, err
	}
	if len(r.data) < 8 {
		return nil, &Error{Op: cmdTableDeps.name, Device: name, Err: fmt.Errorf("reply of %d bytes has no dependency count", len(r.data))}
	}
	n := native.Uint32(r.data)
	if uint64(len(r.data)) < 8+8*uint64(n) {
		return nil, &Error{Op: cmdTableDeps.name, Device: name, Err: fmt.Errorf("reply of %d bytes cannot hold %d dependencies", len(r.data), n)}
	}
	devs := make([]Dev, n)
	for i := range devs {
		devs[i] = DevFromUint64(native.Uint64(r.data[8+8*i:]))
	}
	return devs, nil
}

// Table returns the live table.
func (c *Control) Table(name string) ([]Target, error) {
	return c.tableStatus(name, unix.DM_STATUS_TABLE_FLAG)
}

// Status returns each target's status line. With noFlush, targets report
// without committing first (a thin-pool then skips its metadata commit).
func (c *Control) Status(name string, noFlush bool) ([]Target, error) {
	var flags uint32
	if noFlush {
		flags = unix.DM_NOFLUSH_FLAG
	}
	return c.tableStatus(name, flags)
}

func (c *Control) tableStatus(name string, flags uint32) ([]Target, error) {
	if err := validateName(name); err != nil {
		return nil, err
	}
	r, err := c.run(cmdTableStatus, &request{name: name, flags: flags})
	if err != nil {
		return nil, err
	}
	targets, err := unpackTargets(r.data, r.targetCount)
	if err != nil {
		return nil, &Error{Op: cmdTableStatus.name, Device: name, Err: err}
	}
	return targets, nil
}

// Message sends a message to the target at sector and returns its reply,
// if it gave one.
func (c *Control) Message(name string, sector uint64, msg string) (string, error) {
	if err := validateName(name); err != nil {
		return "", err
	}
	if msg == "" || strings.ContainsRune(msg, 0) {
		return "", invalidf("message %q is empty or contains NUL", msg)
	}
	r, err := c.run(cmdTargetMsg, &request{name: name, payload: packMessage(sector, msg)})
	if err != nil {
		err.(*Error).Op = "message " + msg
		return "", err
	}
	klog.V(2).InfoS("Sent dm message", "name", name, "message", msg)
	if r.flags&unix.DM_DATA_OUT_FLAG == 0 {
		return "", nil
	}
	return cString(r.data), nil
}

// WaitEvent blocks until the device's event counter differs from eventNr
// (a thin-pool raises an event when it crosses its low water mark, runs
// out of space or changes mode) and returns the device's info then. Pass
// the EventNr of an earlier Info. Nothing but the device's next event or
// its removal makes it return: to wait in a way that can be stopped, use
// an EventWaiter.
func (c *Control) WaitEvent(name string, eventNr uint32) (Info, error) {
	if err := validateName(name); err != nil {
		return Info{}, err
	}
	r, err := c.run(cmdDevWait, &request{name: name, eventNr: eventNr})
	if err != nil {
		return Info{}, err
	}
	return infoFromReply(r), nil
}

// TargetVersions lists the target types the kernel has loaded, by name.
func (c *Control) TargetVersions() (map[string]Version, error) {
	r, err := c.run(cmdListVersions, &request{})
	if err != nil {
		return nil, err
	}
	vs, err := parseVersions(r.data)
	if err != nil {
		return nil, &Error{Op: cmdListVersions.name, Err: err}
	}
	return vs, nil
}

// parseVersions reads a chain of struct dm_target_versions: next (4 bytes),
// version (3×4), then the NUL-terminated name.
func parseVersions(data []byte) (map[string]Version, error) {
	const nameOff = 16
	vs := map[string]Version{}
	off := 0
	for off+nameOff <= len(data) {
		e := data[off:]
		next := int(native.Uint32(e))
		name := cString(e[nameOff:])
		if name != "" {
			vs[name] = Version{native.Uint32(e[4:]), native.Uint32(e[8:]), native.Uint32(e[12:])}
		}
		if next == 0 {
			return vs, nil
		}
		if next < nameOff {
			return nil, fmt.Errorf("target version entry at %d: next offset %d is out of range", off, next)
		}
		off += next
	}
	if off == 0 && len(data) == 0 {
		return vs, nil
	}
	return nil, fmt.Errorf("target version entry at %d lies outside the %d-byte reply", off, len(data))
}

// isErrno reports whether err carries errno.
func isErrno(err error, errno unix.Errno) bool {
	e, ok := err.(*Error)
	return ok && e.Err == errno
}

// ActivateOptions choose how Activate sets a device up.
type ActivateOptions struct {
	ReadOnly bool
	Udev     UdevFlags
}

// Activate creates a device, loads its table and resumes it: the device is
// then live. If a step after create fails, the half-made device is removed
// and the first error returned.
func (c *Control) Activate(name, uuid string, targets []Target, opts ActivateOptions) (Dev, error) {
	if _, err := packTargets(targets); err != nil {
		return Dev{}, err
	}
	dev, err := c.Create(name, uuid)
	if err != nil {
		return Dev{}, err
	}
	err = c.Load(name, targets, opts.ReadOnly)
	if err == nil {
		err = c.Resume(name, opts.Udev)
	}
	if err != nil {
		if rmErr := c.Remove(name, RemoveOptions{Udev: opts.Udev}); rmErr != nil {
			klog.ErrorS(rmErr, "Could not remove a device whose activation failed", "name", name)
		}
		return Dev{}, err
	}
	return dev, nil
}

// Reload replaces a live device's table: load the new one, suspend
// (flushing, and freezing a mounted filesystem), resume. If the suspend
// fails, the new table is dropped and the old one stays live. If the
// resume fails (a target refuses the new table as it starts, as a
// thin-pool does a data device smaller than its metadata records), the
// old table is loaded and resumed again, so that the device is not left
// suspended with I/O to it hanging; the resume's error is returned.
func (c *Control) Reload(name string, targets []Target, opts ActivateOptions) error {
	old, err := c.Table(name)
	if err != nil {
		return err
	}
	info, err := c.Info(name)
	if err != nil {
		return err
	}
	if err := c.Load(name, targets, opts.ReadOnly); err != nil {
		return err
	}
	if err := c.Suspend(name, SuspendOptions{}); err != nil {
		if clrErr := c.ClearInactive(name); clrErr != nil {
			klog.ErrorS(clrErr, "Could not drop a table whose reload failed", "name", name)
		}
		return err
	}
	err = c.Resume(name, opts.Udev)
	if err == nil {
		return nil
	}
	if rbErr := c.Load(name, old, info.ReadOnly); rbErr != nil {
		return fmt.Errorf("%w; loading the old table again failed too, and %s stays suspended: %w", err, name, rbErr)
	}
	if rbErr := c.Resume(name, opts.Udev); rbErr != nil {
		return fmt.Errorf("%w; resuming with the old table failed too, and %s stays suspended: %w", err, name, rbErr)
	}
	klog.InfoS("The device refused its new table at resume: the old one is live again", "name", name, "err", err)
	return err
}
