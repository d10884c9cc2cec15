package devmapper

import "golang.org/x/sys/unix"

// thinTargets is the one-target table of a thin device sectors long.
func thinTargets(t ThinTable, sectors uint64) ([]Target, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if sectors == 0 {
		return nil, invalidf("thin device %d: size is 0 sectors", t.DeviceID)
	}
	return []Target{{Start: 0, Length: sectors, Type: "thin", Params: t.Params()}}, nil
}

// ActivateThin makes thin device t.DeviceID of pool t.PoolDev usable as the
// block device name, sectors long. With t.ExternalOrigin set, sectors the
// thin device has not written read from that read-only origin.
func (c *Control) ActivateThin(name, uuid string, t ThinTable, sectors uint64, readOnly bool) (Dev, error) {
	targets, err := thinTargets(t, sectors)
	if err != nil {
		return Dev{}, err
	}
	return c.Activate(name, uuid, targets, ActivateOptions{ReadOnly: readOnly})
}

// ResizeThin reloads an active thin device with a new size, in the mode
// (read-only or read-write) the kernel has the device in: a resize never
// makes a read-only device writable. Growing is instant; the pool
// allocates blocks only when they are written.
func (c *Control) ResizeThin(name string, t ThinTable, sectors uint64) error {
	info, err := c.Info(name)
	if err != nil {
		return err
	}
	if !info.Exists {
		return &Error{Op: "resize", Device: name, Err: unix.ENXIO}
	}
	return c.ReloadThin(name, t, sectors, info.ReadOnly)
}

// ReloadThin replaces an active thin device's table with one sectors long,
// read-only or read-write as asked: the kernel sets the device's mode from
// the table it resumes.
func (c *Control) ReloadThin(name string, t ThinTable, sectors uint64, readOnly bool) error {
	targets, err := thinTargets(t, sectors)
	if err != nil {
		return err
	}
	return c.Reload(name, targets, ActivateOptions{ReadOnly: readOnly})
}

// ThinStatus reads and parses an active thin device's status.
func (c *Control) ThinStatus(name string) (ThinStatus, error) {
	line, err := c.singleStatus(name, "thin", false)
	if err != nil {
		return ThinStatus{}, err
	}
	st, err := ParseThinStatus(line)
	if err != nil {
		return ThinStatus{}, &Error{Op: "status", Device: name, Err: err}
	}
	return st, nil
}
