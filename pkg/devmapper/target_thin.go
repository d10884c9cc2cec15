package devmapper

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxThinID is the largest thin device id a thin-pool accepts: ids are 24
// bits.
const MaxThinID = 1<<24 - 1

// ThinTable is the table of a thin target: a thin device of a pool,
// optionally with an external read-only origin.
type ThinTable struct {
	PoolDev        string // the thin-pool device, "major:minor" or a path
	DeviceID       uint32 // the thin device id in the pool, at most MaxThinID
	ExternalOrigin string // optional external origin device; "" for none
}

// Validate checks the table against the kernel's rules before it is loaded.
func (t ThinTable) Validate() error {
	if err := checkTargetDev("thin pool device", t.PoolDev); err != nil {
		return err
	}
	if t.DeviceID > MaxThinID {
		return invalidf("thin device id %d is too large: use 0 to %d", t.DeviceID, MaxThinID)
	}
	if t.ExternalOrigin != "" {
		if err := checkTargetDev("thin external origin", t.ExternalOrigin); err != nil {
			return err
		}
		if t.ExternalOrigin == t.PoolDev {
			return invalidf("thin external origin %q is the pool device itself: use another device or none", t.ExternalOrigin)
		}
	}
	return nil
}

// Params renders the table parameters: <pool dev> <dev id>
// [<external origin dev>]. Params does not validate; call Validate first.
func (t ThinTable) Params() string {
	if t.ExternalOrigin == "" {
		return fmt.Sprintf("%s %d", t.PoolDev, t.DeviceID)
	}
	return fmt.Sprintf("%s %d %s", t.PoolDev, t.DeviceID, t.ExternalOrigin)
}

// ParseThinParams parses thin table parameters, such as the kernel returns
// for a table status request, into a ThinTable that Validate accepts.
func ParseThinParams(s string) (ThinTable, error) {
	f := strings.Fields(s)
	if len(f) != 2 && len(f) != 3 {
		return ThinTable{}, invalidf("thin table %q has %d fields: want <pool dev> <dev id> [<external origin dev>]", s, len(f))
	}
	id, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil || id > MaxThinID {
		return ThinTable{}, invalidf("thin table %q: device id %q is not a number from 0 to %d", s, f[1], MaxThinID)
	}
	t := ThinTable{PoolDev: f[0], DeviceID: uint32(id)}
	if len(f) == 3 {
		t.ExternalOrigin = f[2]
	}
	if err := t.Validate(); err != nil {
		return ThinTable{}, fmt.Errorf("thin table %q: %w", s, err)
	}
	return t, nil
}

// ThinStatus is the parsed status line of a thin target (thin_status in
// drivers/md/dm-thin.c). When Fail or Error is set no other field is.
type ThinStatus struct {
	Fail  bool // the pool is in fail mode: all I/O fails
	Error bool // the kernel could not read the device's mappings

	MappedSectors       uint64 // sectors of provisioned blocks
	HighestMappedSector uint64 // last sector of the highest provisioned block
	HasHighestMapped    bool   // false when nothing is mapped
}

// ParseThinStatus parses a thin status line: <nr mapped sectors>
// <highest mapped sector>, where the highest is "-" when nothing is mapped,
// or the single word Fail or Error. The lone "-" the kernel prints for a
// thin device it has not opened yields the zero ThinStatus (nothing mapped).
func ParseThinStatus(s string) (ThinStatus, error) {
	f := strings.Fields(s)
	if len(f) == 1 {
		switch f[0] {
		case "Fail":
			return ThinStatus{Fail: true}, nil
		case "Error":
			return ThinStatus{Error: true}, nil
		case "-":
			return ThinStatus{}, nil
		}
	}
	if len(f) != 2 {
		return ThinStatus{}, invalidf("thin status %q has %d fields: want <mapped sectors> <highest mapped sector>|-, or Fail or Error", s, len(f))
	}
	var st ThinStatus
	var err error
	if st.MappedSectors, err = strconv.ParseUint(f[0], 10, 64); err != nil {
		return ThinStatus{}, invalidf("thin status %q: mapped sectors %q is not a number", s, f[0])
	}
	if f[1] != "-" {
		if st.HighestMappedSector, err = strconv.ParseUint(f[1], 10, 64); err != nil {
			return ThinStatus{}, invalidf("thin status %q: highest mapped sector %q is neither - nor a number", s, f[1])
		}
		st.HasHighestMapped = true
	}
	return st, nil
}
