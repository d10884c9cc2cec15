package devmapper

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// header reads buf through x/sys/unix's struct dm_ioctl, which is generated
// from the kernel's headers: an oracle independent of pack's offsets.
func header(buf []byte) *unix.DmIoctl { return (*unix.DmIoctl)(unsafe.Pointer(&buf[0])) }

func TestPackHeader(t *testing.T) {
	payload := []byte{1, 2, 3}
	buf := pack(cmdTargetMsg, &request{
		name: "pool", uuid: "CSI-THIN-x", flags: unix.DM_NOFLUSH_FLAG, eventNr: 0x000e0000,
		targetCount: 2, payload: payload,
	}, 1024)
	h := header(buf)
	if len(buf) != 1024 || uintptr(unsafe.Pointer(&buf[0]))%8 != 0 {
		t.Fatalf("buffer of %d bytes at %p, want 1024 bytes 8-aligned", len(buf), &buf[0])
	}
	if h.Version != [3]uint32{4, 2, 0} {
		t.Errorf("version %v, want 4.2.0 (the minimum for target messages)", h.Version)
	}
	if h.Data_size != 1024 || h.Data_start != unix.SizeofDmIoctl || h.Target_count != 2 ||
		h.Flags != unix.DM_NOFLUSH_FLAG || h.Event_nr != 0x000e0000 || h.Open_count != 0 || h.Dev != 0 {
		t.Errorf("header %+v", h)
	}
	if cString(h.Name[:]) != "pool" || cString(h.Uuid[:]) != "CSI-THIN-x" {
		t.Errorf("name %q uuid %q", cString(h.Name[:]), cString(h.Uuid[:]))
	}
	if got := buf[unix.SizeofDmIoctl : unix.SizeofDmIoctl+4]; string(got) != "\x01\x02\x03\x00" {
		t.Errorf("payload % x", got)
	}
	for i, b := range buf[unix.SizeofDmIoctl+3:] {
		if b != 0 {
			t.Fatalf("byte %d after the payload is %#x, want a zeroed buffer", unix.SizeofDmIoctl+3+i, b)
		}
	}
}

func TestPackGrowsToFitPayload(t *testing.T) {
	buf := pack(cmdTableLoad, &request{name: "x", payload: make([]byte, 100)}, 16)
	if len(buf) != unix.SizeofDmIoctl+104 || header(buf).Data_size != uint32(len(buf)) {
		t.Fatalf("buffer %d bytes, data_size %d", len(buf), header(buf).Data_size)
	}
}

func TestPackNameFillsField(t *testing.T) {
	name := strings.Repeat("n", MaxNameLen)
	h := header(pack(cmdDevCreate, &request{name: name}, 0))
	if cString(h.Name[:]) != name || h.Name[MaxNameLen] != 0 {
		t.Fatalf("a %d-byte name is not NUL-terminated in the field", MaxNameLen)
	}
}

// Golden bytes of the payloads, little-endian (amd64 and arm64).
func TestPackTargetsGolden(t *testing.T) {
	got, err := packTargets([]Target{
		{Start: 0, Length: 2048, Type: "thin", Params: "253:0 1"},
		{Start: 2048, Length: 8, Type: "linear", Params: "7:0 0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "" +
		// sector_start=0, length=2048, status=0, next=48, "thin"
		"0000000000000000" + "0008000000000000" + "00000000" + "30000000" + "7468696e000000000000000000000000" +
		// "253:0 1\0", already 8 bytes
		"3235333a30203100" +
		// sector_start=2048, length=8, status=0, next=48, "linear"
		"0008000000000000" + "0800000000000000" + "00000000" + "30000000" + "6c696e65617200000000000000000000" +
		// "7:0 0\0" padded to 8
		"373a302030000000"
	if hex.EncodeToString(got) != want {
		t.Fatalf("packTargets\n got %x\nwant %s", got, want)
	}
}

func TestPackMessageGolden(t *testing.T) {
	got := packMessage(0, "create_thin 7")
	want := "0000000000000000" + hex.EncodeToString([]byte("create_thin 7")) + "000000"
	if hex.EncodeToString(got) != want || len(got)%8 != 0 {
		t.Fatalf("packMessage\n got %x\nwant %s", got, want)
	}
}

func TestPackTargetsRefuses(t *testing.T) {
	cases := []struct {
		name    string
		targets []Target
	}{
		{"no targets", nil},
		{"empty type", []Target{{Length: 1}}},
		{"type too long", []Target{{Length: 1, Type: strings.Repeat("t", 16)}}},
		{"zero length", []Target{{Type: "thin"}}},
		{"gap", []Target{{Length: 8, Type: "thin"}, {Start: 9, Length: 8, Type: "thin"}}},
		{"first not at 0", []Target{{Start: 1, Length: 8, Type: "thin"}}},
		{"NUL in params", []Target{{Length: 8, Type: "thin", Params: "a\x00b"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := packTargets(c.targets); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("got %v, want ErrInvalidArgument", err)
			}
		})
	}
}

func TestUnpackTargetsRoundTrip(t *testing.T) {
	// DM_TABLE_STATUS counts next from the start of the data, not from
	// each spec as DM_TABLE_LOAD does.
	data := make([]byte, 2*(targetSpecSize+16))
	put := func(off int, start, length uint64, next uint32, typ, params string) {
		native.PutUint64(data[off:], start)
		native.PutUint64(data[off+8:], length)
		native.PutUint32(data[off+20:], next)
		copy(data[off+24:], typ)
		copy(data[off+targetSpecSize:], params)
	}
	put(0, 0, 100, targetSpecSize+16, "thin", "0 -")
	put(targetSpecSize+16, 100, 50, 0, "linear", "")
	got, err := unpackTargets(data, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []Target{{0, 100, "thin", "0 -"}, {100, 50, "linear", ""}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestUnpackTargetsMalformed(t *testing.T) {
	cases := []struct {
		name  string
		data  []byte
		count uint32
	}{
		{"short", make([]byte, targetSpecSize-1), 1},
		{"next backwards", make([]byte, 2*targetSpecSize), 2},
		{"next past end", func() []byte {
			b := make([]byte, 2*targetSpecSize)
			native.PutUint32(b[20:], 1000)
			return b
		}(), 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := unpackTargets(c.data, c.count); err == nil {
				t.Fatal("malformed reply accepted")
			}
		})
	}
}

func nameEntry(dev uint64, name string, next uint32, eventNr uint32, uuid string) []byte {
	size := align8(12 + len(name) + 1)
	if uuid != "" || eventNr != 0 {
		size += align8(8 + len(uuid) + 1)
	}
	b := make([]byte, size)
	native.PutUint64(b, dev)
	native.PutUint32(b[8:], next)
	copy(b[12:], name)
	if uuid != "" || eventNr != 0 {
		off := align8(12 + len(name) + 1)
		native.PutUint32(b[off:], eventNr)
		if uuid != "" {
			native.PutUint32(b[off+4:], unix.DM_NAME_LIST_FLAG_HAS_UUID)
			copy(b[off+8:], uuid)
		}
	}
	return b
}

func TestParseNameList(t *testing.T) {
	first := nameEntry(unix.Mkdev(253, 0), "pool", 0, 3, "CSI-THIN-pool")
	native.PutUint32(first[8:], uint32(len(first)))
	data := append(first, nameEntry(unix.Mkdev(253, 1), "pool-1", 0, 0, "")...)
	got, err := parseNameList(data, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{{"pool", Dev{253, 0}, 3, "CSI-THIN-pool"}, {"pool-1", Dev{253, 1}, 0, ""}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got, err := parseNameList(data, false); err != nil || got[0].UUID != "" || got[0].Name != "pool" {
		t.Fatalf("without uuids: %+v %v", got, err)
	}
	if got, err := parseNameList(make([]byte, 16), true); err != nil || len(got) != 0 {
		t.Fatalf("empty list: %+v %v", got, err)
	}
	// The reply of a kernel with no dm devices at all has no data.
	if got, err := parseNameList(nil, true); err != nil || len(got) != 0 {
		t.Fatalf("empty reply: %+v %v", got, err)
	}
	bad := nameEntry(unix.Mkdev(253, 0), "x", 4, 0, "")
	if _, err := parseNameList(bad, true); err == nil {
		t.Fatal("next offset inside the header accepted")
	}
	if _, err := parseNameList(make([]byte, 8), true); err == nil {
		t.Fatal("truncated entry accepted")
	}
}

func TestParseVersions(t *testing.T) {
	entry := func(name string, v Version, last bool) []byte {
		b := make([]byte, align8(16+len(name)+1))
		if !last {
			native.PutUint32(b, uint32(len(b)))
		}
		for i, x := range v {
			native.PutUint32(b[4+4*i:], x)
		}
		copy(b[16:], name)
		return b
	}
	data := append(entry("thin-pool", Version{1, 23, 0}, false), entry("thin", Version{1, 23, 0}, true)...)
	got, err := parseVersions(data)
	if err != nil || len(got) != 2 || got["thin-pool"] != (Version{1, 23, 0}) {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := parseVersions(data[:10]); err == nil {
		t.Fatal("truncated reply accepted")
	}
}

func TestValidateName(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
	}{
		{"csi-thin-pool", true},
		{strings.Repeat("a", MaxNameLen), true},
		{strings.Repeat("a", MaxNameLen+1), false},
		{"", false},
		{"a/b", false},
		{"a\x00b", false},
		{".", false},
		{"..", false},
	}
	for _, c := range cases {
		err := validateName(c.name)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrInvalidArgument)) {
			t.Errorf("validateName(%q) = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

func TestErrorMapsErrnoByOperation(t *testing.T) {
	cases := []struct {
		op    string
		errno unix.Errno
		want  error
	}{
		{"message create_thin 1", unix.EEXIST, ErrExists},
		{opCreate, unix.EBUSY, ErrExists},
		{"remove", unix.EBUSY, ErrBusy},
		{"remove", unix.ENXIO, ErrNotFound},
		{"message delete 9", unix.ENODATA, ErrNotFound},
		{"loop attach", unix.ENOENT, ErrNotFound},
		{"remove", unix.EINVAL, nil},
	}
	for _, c := range cases {
		err := error(&Error{Op: c.op, Device: "d", Err: c.errno})
		for _, s := range []error{ErrExists, ErrBusy, ErrNotFound} {
			if errors.Is(err, s) != (s == c.want) {
				t.Errorf("%s %v: errors.Is(%v) = %v", c.op, c.errno, s, !(s == c.want))
			}
		}
		if !errors.Is(err, c.errno) {
			t.Errorf("%s: errno %v lost", c.op, c.errno)
		}
		if !strings.Contains(err.Error(), c.op) || !strings.Contains(err.Error(), " d: ") {
			t.Errorf("message %q does not name the operation and device", err)
		}
	}
}

func TestUdevCookie(t *testing.T) {
	if got := UdevPoolInternal.cookie(); got != 0x002e0000 {
		t.Fatalf("pool-internal cookie %#x, want 0x2e0000 (flags in the high 16 bits, no semaphore)", got)
	}
}

func TestUnpackReplyWithoutData(t *testing.T) {
	buf := pack(cmdDevCreate, &request{name: "x"}, 1024)
	native.PutUint32(buf[offDataSize:], 305) // what the kernel writes back when it returns no data
	r, err := unpack(buf)
	if err != nil || r.data != nil {
		t.Fatalf("got data %v, err %v; want no data", r.data, err)
	}
	native.PutUint32(buf[offDataSize:], 2048)
	if _, err := unpack(buf); err == nil {
		t.Fatal("data_size past the buffer accepted")
	}
}
