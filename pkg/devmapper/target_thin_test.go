package devmapper

import (
	"strconv"
	"strings"
	"testing"
)

func TestThinTableValidate(t *testing.T) {
	tests := []struct {
		name    string
		table   ThinTable
		wantErr string
	}{
		{"minimal", ThinTable{PoolDev: "253:2"}, ""},
		{"max id", ThinTable{PoolDev: "253:2", DeviceID: MaxThinID}, ""},
		{"external origin", ThinTable{PoolDev: "/dev/mapper/pool", DeviceID: 7, ExternalOrigin: "8:16"}, ""},
		{"empty pool", ThinTable{DeviceID: 1}, "pool device is empty"},
		{"space in pool", ThinTable{PoolDev: "253 2"}, "whitespace"},
		{"NUL in pool", ThinTable{PoolDev: "253:2\x00"}, "NUL"},
		{"id too big", ThinTable{PoolDev: "253:2", DeviceID: MaxThinID + 1}, "use 0 to 16777215"},
		{"id max uint32", ThinTable{PoolDev: "253:2", DeviceID: 1<<32 - 1}, "too large"},
		{"space in origin", ThinTable{PoolDev: "253:2", ExternalOrigin: "8:16 x"}, "whitespace"},
		{"backslash in origin", ThinTable{PoolDev: "253:2", ExternalOrigin: `8\16`}, "backslash"},
		{"origin is pool", ThinTable{PoolDev: "253:2", ExternalOrigin: "253:2"}, "pool device itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkTargetErr(t, tt.table.Validate(), tt.wantErr)
		})
	}
}

func TestThinTableParams(t *testing.T) {
	tests := []struct {
		table ThinTable
		want  string
	}{
		{ThinTable{PoolDev: "253:2"}, "253:2 0"},
		{ThinTable{PoolDev: "253:2", DeviceID: MaxThinID}, "253:2 16777215"},
		{ThinTable{PoolDev: "/dev/mapper/pool", DeviceID: 7, ExternalOrigin: "8:16"}, "/dev/mapper/pool 7 8:16"},
	}
	for _, tt := range tests {
		if got := tt.table.Params(); got != tt.want {
			t.Errorf("%+v.Params() = %q, want %q", tt.table, got, tt.want)
		}
	}
}

func TestParseThinParams(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    ThinTable
		wantErr string
	}{
		{"kernel line", "253:2 1", ThinTable{PoolDev: "253:2", DeviceID: 1}, ""},
		{"kernel line with origin", "253:2 16777215 8:16", ThinTable{PoolDev: "253:2", DeviceID: MaxThinID, ExternalOrigin: "8:16"}, ""},
		{"whitespace", " 253:2\t0 \n", ThinTable{PoolDev: "253:2"}, ""},
		{"leading zeros", "253:2 007", ThinTable{PoolDev: "253:2", DeviceID: 7}, ""},

		{"empty", "", ThinTable{}, "0 fields"},
		{"one field", "253:2", ThinTable{}, "1 fields"},
		{"four fields", "253:2 1 8:16 x", ThinTable{}, "4 fields"},
		{"id not number", "253:2 one", ThinTable{}, "device id"},
		{"id negative", "253:2 -1", ThinTable{}, "device id"},
		{"id too big", "253:2 16777216", ThinTable{}, "device id"},
		{"id overflow uint32", "253:2 4294967297", ThinTable{}, "device id"},
		{"id overflow uint64", "253:2 18446744073709551616", ThinTable{}, "device id"},
		{"id hex", "253:2 0x1", ThinTable{}, "device id"},
		{"origin is pool", "253:2 1 253:2", ThinTable{}, "pool device itself"},
		{"backslash pool", `a\b 1`, ThinTable{}, "backslash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseThinParams(tt.in)
			checkTargetErr(t, err, tt.wantErr)
			if err != nil {
				if !strings.Contains(err.Error(), strconv.Quote(tt.in)) {
					t.Errorf("error %q does not quote the input", err)
				}
				return
			}
			if got != tt.want {
				t.Errorf("ParseThinParams(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestThinParamsRoundTrip(t *testing.T) {
	for _, tt := range []ThinTable{
		{PoolDev: "253:2"},
		{PoolDev: "253:2", DeviceID: 1},
		{PoolDev: "/dev/mapper/csi--thin-pool", DeviceID: MaxThinID},
		{PoolDev: "253:2", DeviceID: 12345, ExternalOrigin: "7:3"},
	} {
		got, err := ParseThinParams(tt.Params())
		if err != nil {
			t.Fatalf("ParseThinParams(%q): %v", tt.Params(), err)
		}
		if got != tt {
			t.Errorf("round trip of %+v gave %+v", tt, got)
		}
	}
}

var goodThinStatusLines = []struct {
	name string
	in   string
	want ThinStatus
}{
	{"nothing mapped", "0 -", ThinStatus{}},
	{"some mapped", "2048 16383", ThinStatus{MappedSectors: 2048, HighestMappedSector: 16383, HasHighestMapped: true}},
	{"trailing newline", "128 127\n", ThinStatus{MappedSectors: 128, HighestMappedSector: 127, HasHighestMapped: true}},
	{"max", "18446744073709551615 18446744073709551615",
		ThinStatus{MappedSectors: 1<<64 - 1, HighestMappedSector: 1<<64 - 1, HasHighestMapped: true}},
	{"Fail", "Fail", ThinStatus{Fail: true}},
	{"Error", "Error", ThinStatus{Error: true}},
	{"device not open", "-", ThinStatus{}},
}

var badThinStatusLines = []struct {
	name    string
	in      string
	wantErr string
}{
	{"empty", "", "0 fields"},
	{"blank", " \t ", "0 fields"},
	{"one number", "2048", "1 fields"},
	{"fail lower case", "fail", "1 fields"},
	{"three fields", "2048 16383 1", "3 fields"},
	{"Fail and more", "Fail -", "mapped sectors"},
	{"mapped not number", "x 16383", "mapped sectors"},
	{"mapped dash", "- -", "mapped sectors"},
	{"mapped negative", "-1 16383", "mapped sectors"},
	{"mapped overflow", "18446744073709551616 -", "mapped sectors"},
	{"highest not number", "2048 x", "highest mapped sector"},
	{"highest negative", "2048 -1", "highest mapped sector"},
	{"highest overflow", "2048 18446744073709551616", "highest mapped sector"},
	{"slash pair", "1/2 -", "mapped sectors"},
}

func TestParseThinStatus(t *testing.T) {
	for _, tt := range goodThinStatusLines {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseThinStatus(tt.in)
			if err != nil {
				t.Fatalf("ParseThinStatus(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseThinStatus(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
	for _, tt := range badThinStatusLines {
		t.Run("bad "+tt.name, func(t *testing.T) {
			got, err := ParseThinStatus(tt.in)
			checkTargetErr(t, err, tt.wantErr)
			if err == nil {
				return
			}
			if !strings.Contains(err.Error(), strconv.Quote(tt.in)) {
				t.Errorf("error %q does not quote the line", err)
			}
			if got != (ThinStatus{}) {
				t.Errorf("failed parse returned %+v, want the zero value", got)
			}
		})
	}
}
