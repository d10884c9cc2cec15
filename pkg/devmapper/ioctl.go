package devmapper

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Layout of struct dm_ioctl (include/uapi/linux/dm-ioctl.h), 312 bytes.
const (
	offVersion     = 0
	offDataSize    = 12
	offDataStart   = 16
	offTargetCount = 20
	offOpenCount   = 24
	offFlags       = 28
	offEventNr     = 32
	offDev         = 40
	offName        = 48
	offUUID        = offName + unix.DM_NAME_LEN
	headerSize     = unix.SizeofDmIoctl

	// struct dm_target_spec: sector_start, length, status, next, target_type.
	targetSpecSize = unix.SizeofDmTargetSpec

	// MaxNameLen is the longest dm device name, in bytes.
	MaxNameLen = unix.DM_NAME_LEN - 1
	// MaxUUIDLen is the longest dm device uuid, in bytes.
	MaxUUIDLen = unix.DM_UUID_LEN - 1

	// A first buffer fits a header, a few targets and their strings; a
	// reply that does not fit doubles it, up to maxBufferSize.
	initialBufferSize = 16 << 10
	maxBufferSize     = 64 << 20
)

var native = binary.NativeEndian

// command is one dm ioctl: its request code, the name errors give it, and
// the lowest interface version (4.minor) that has it.
type command struct {
	code     uintptr
	name     string
	minMinor uint32
}

var (
	cmdVersion      = command{unix.DM_VERSION, "version", 0}
	cmdListDevices  = command{unix.DM_LIST_DEVICES, "list", 0}
	cmdDevCreate    = command{unix.DM_DEV_CREATE, opCreate, 0}
	cmdDevRemove    = command{unix.DM_DEV_REMOVE, "remove", 0}
	cmdDevSuspend   = command{unix.DM_DEV_SUSPEND, "suspend", 0}
	cmdDevResume    = command{unix.DM_DEV_SUSPEND, "resume", 0} // DM_DEV_SUSPEND without DM_SUSPEND_FLAG
	cmdDevStatus    = command{unix.DM_DEV_STATUS, "info", 0}
	cmdDevWait      = command{unix.DM_DEV_WAIT, "wait", 0}
	cmdTableLoad    = command{unix.DM_TABLE_LOAD, "load", 0}
	cmdTableClear   = command{unix.DM_TABLE_CLEAR, "clear", 0}
	cmdTableDeps    = command{unix.DM_TABLE_DEPS, "deps", 0}
	cmdTableStatus  = command{unix.DM_TABLE_STATUS, "status", 0}
	cmdListVersions = command{unix.DM_LIST_VERSIONS, "list versions", 1}
	cmdTargetMsg    = command{unix.DM_TARGET_MSG, "message", 2}
	cmdArmPoll      = command{unix.DM_DEV_ARM_POLL, "arm poll", minorArmPoll}
)

// Interface versions that some flags need.
const (
	minorDeferredRemove = 27 // DM_DEFERRED_REMOVE, @cancel_deferred_remove
	minorArmPoll        = 37 // DM_DEV_ARM_POLL and poll(2) on the control node
	minorNameListUUID   = 45 // event_nr, flags and uuid after each listed name
)

// request is what one ioctl sends: the header fields callers set and the
// payload that follows the header.
type request struct {
	name        string
	uuid        string
	flags       uint32
	eventNr     uint32
	targetCount uint32
	payload     []byte
}

// reply is the kernel's answer: the header fields and the data after
// data_start.
type reply struct {
	version     [3]uint32
	targetCount uint32
	openCount   int32
	flags       uint32
	eventNr     uint32
	dev         uint64
	name        string
	uuid        string
	data        []byte
}

// validateName checks a dm device name before it reaches the kernel.
func validateName(name string) error {
	switch {
	case name == "":
		return invalidf("device name is empty")
	case len(name) > MaxNameLen:
		return invalidf("device name %q is %d bytes, the limit is %d", name, len(name), MaxNameLen)
	case strings.ContainsAny(name, "/\x00"):
		return invalidf("device name %q contains '/' or NUL", name)
	case name == "." || name == "..":
		return invalidf("device name %q is not allowed", name)
	}
	return nil
}

func validateUUID(uuid string) error {
	if len(uuid) > MaxUUIDLen {
		return invalidf("device uuid %q is %d bytes, the limit is %d", uuid, len(uuid), MaxUUIDLen)
	}
	if strings.ContainsRune(uuid, 0) {
		return invalidf("device uuid %q contains NUL", uuid)
	}
	return nil
}

// align8 rounds n up to a multiple of 8.
func align8(n int) int { return (n + 7) &^ 7 }

// newBuffer returns a zeroed buffer of size bytes whose first byte is
// 8-byte aligned, as the kernel's structures want.
func newBuffer(size int) []byte {
	words := make([]uint64, (size+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), size)[:size:size]
}

// pack lays out a request in a fresh buffer of at least size bytes, with
// the interface version set to 4.minMinor.
func pack(cmd command, req *request, size int) []byte {
	need := headerSize + align8(len(req.payload))
	if size < need {
		size = need
	}
	buf := newBuffer(size)
	native.PutUint32(buf[offVersion:], unix.DM_VERSION_MAJOR)
	native.PutUint32(buf[offVersion+4:], cmd.minMinor)
	native.PutUint32(buf[offVersion+8:], 0)
	native.PutUint32(buf[offDataSize:], uint32(size))
	native.PutUint32(buf[offDataStart:], headerSize)
	native.PutUint32(buf[offTargetCount:], req.targetCount)
	native.PutUint32(buf[offFlags:], req.flags)
	native.PutUint32(buf[offEventNr:], req.eventNr)
	copy(buf[offName:offName+MaxNameLen], req.name)
	copy(buf[offUUID:offUUID+MaxUUIDLen], req.uuid)
	copy(buf[headerSize:], req.payload)
	return buf
}

// unpack reads the kernel's reply out of buf.
func unpack(buf []byte) (*reply, error) {
	r := &reply{
		targetCount: native.Uint32(buf[offTargetCount:]),
		openCount:   int32(native.Uint32(buf[offOpenCount:])),
		flags:       native.Uint32(buf[offFlags:]),
		eventNr:     native.Uint32(buf[offEventNr:]),
		dev:         native.Uint64(buf[offDev:]),
		name:        cString(buf[offName : offName+unix.DM_NAME_LEN]),
		uuid:        cString(buf[offUUID : offUUID+unix.DM_UUID_LEN]),
	}
	for i := range r.version {
		r.version[i] = native.Uint32(buf[offVersion+4*i:])
	}
	size := native.Uint32(buf[offDataSize:])
	start := native.Uint32(buf[offDataStart:])
	// A reply without data has data_size at the end of the header proper
	// (offsetof(struct dm_ioctl, data)), before data_start.
	if size > uint32(len(buf)) {
		return nil, fmt.Errorf("kernel reply has data_size %d in a buffer of %d bytes", size, len(buf))
	}
	if start >= headerSize && start < size {
		r.data = buf[start:size]
	}
	return r, nil
}

// cString returns the bytes before the first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Dev is a device number.
type Dev struct{ Major, Minor uint32 }

// DevFromUint64 splits a kernel device number (dev_t as user space sees it).
func DevFromUint64(d uint64) Dev { return Dev{unix.Major(d), unix.Minor(d)} }

// String gives "major:minor", the way tables name devices.
func (d Dev) String() string { return fmt.Sprintf("%d:%d", d.Major, d.Minor) }

// packTargets lays out targets as DM_TABLE_LOAD wants them: each
// dm_target_spec followed by its NUL-terminated parameters, padded to 8
// bytes, with next giving the distance to the following spec.
func packTargets(targets []Target) ([]byte, error) {
	if len(targets) == 0 {
		return nil, invalidf("a table needs at least one target")
	}
	var out []byte
	next := uint64(0)
	for i, t := range targets {
		if t.Type == "" || len(t.Type) >= unix.DM_MAX_TYPE_NAME {
			return nil, invalidf("target %d: type %q must be 1 to %d bytes", i, t.Type, unix.DM_MAX_TYPE_NAME-1)
		}
		if t.Length == 0 {
			return nil, invalidf("target %d (%s): length is 0 sectors", i, t.Type)
		}
		if t.Start != next {
			return nil, invalidf("target %d (%s) starts at sector %d, the table needs it at %d", i, t.Type, t.Start, next)
		}
		if strings.ContainsRune(t.Params, 0) {
			return nil, invalidf("target %d (%s): parameters contain NUL", i, t.Type)
		}
		next = t.Start + t.Length
		size := align8(targetSpecSize + len(t.Params) + 1)
		spec := make([]byte, size)
		native.PutUint64(spec[0:], t.Start)
		native.PutUint64(spec[8:], t.Length)
		native.PutUint32(spec[20:], uint32(size))
		copy(spec[24:24+unix.DM_MAX_TYPE_NAME], t.Type)
		copy(spec[targetSpecSize:], t.Params)
		out = append(out, spec...)
	}
	return out, nil
}

// unpackTargets reads the specs DM_TABLE_STATUS returns: count specs at the
// start of data, each followed by its string, next counting from the start
// of data.
func unpackTargets(data []byte, count uint32) ([]Target, error) {
	targets := make([]Target, 0, count)
	off := 0
	for i := uint32(0); i < count; i++ {
		if off+targetSpecSize > len(data) {
			return nil, fmt.Errorf("target %d of %d lies outside the %d-byte reply", i, count, len(data))
		}
		spec := data[off:]
		end := len(data)
		next := int(native.Uint32(spec[20:]))
		if i+1 < count {
			if next <= off || next > len(data) {
				return nil, fmt.Errorf("target %d of %d: next offset %d is out of range", i, count, next)
			}
			end = next
		}
		targets = append(targets, Target{
			Start:  native.Uint64(spec[0:]),
			Length: native.Uint64(spec[8:]),
			Type:   cString(spec[24 : 24+unix.DM_MAX_TYPE_NAME]),
			Params: cString(data[off+targetSpecSize : end]),
		})
		off = next
	}
	return targets, nil
}

// packMessage lays out a struct dm_target_msg: the sector, then the
// NUL-terminated message.
func packMessage(sector uint64, msg string) []byte {
	out := make([]byte, align8(8+len(msg)+1))
	native.PutUint64(out, sector)
	copy(out[8:], msg)
	return out
}
