package devmapper

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// goodPoolTable is a valid table used as the base of Validate cases.
var goodPoolTable = PoolTable{MetadataDev: "253:0", DataDev: "253:1", DataBlockSize: 128, LowWaterMark: 0}

func TestPoolTableValidate(t *testing.T) {
	with := func(f func(*PoolTable)) PoolTable {
		p := goodPoolTable
		f(&p)
		return p
	}
	tests := []struct {
		name    string
		table   PoolTable
		wantErr string // substring; "" means valid
	}{
		{"minimal", goodPoolTable, ""},
		{"paths", with(func(p *PoolTable) { p.MetadataDev, p.DataDev = "/dev/loop0", "/dev/loop1" }), ""},
		{"max block size", with(func(p *PoolTable) { p.DataBlockSize = 2097152 }), ""},
		{"non power of two block size", with(func(p *PoolTable) { p.DataBlockSize = 384 }), ""},
		{"big low water mark", with(func(p *PoolTable) { p.LowWaterMark = 1<<64 - 1 }), ""},
		{"four features", with(func(p *PoolTable) {
			p.Features = PoolFeatures{SkipBlockZeroing: true, NoDiscardPassdown: true, ReadOnly: true, ErrorIfNoSpace: true}
		}), ""},
		{"four features with ignore_discard", with(func(p *PoolTable) {
			p.Features = PoolFeatures{SkipBlockZeroing: true, IgnoreDiscard: true, ReadOnly: true, ErrorIfNoSpace: true}
		}), ""},
		{"five features", with(func(p *PoolTable) {
			p.Features = PoolFeatures{true, true, true, true, true}
		}), "at most 4"},
		{"empty metadata dev", with(func(p *PoolTable) { p.MetadataDev = "" }), "metadata device is empty"},
		{"empty data dev", with(func(p *PoolTable) { p.DataDev = "" }), "data device is empty"},
		{"space in metadata dev", with(func(p *PoolTable) { p.MetadataDev = "253:0 x" }), "whitespace"},
		{"tab in data dev", with(func(p *PoolTable) { p.DataDev = "253:1\t" }), "whitespace"},
		{"newline in data dev", with(func(p *PoolTable) { p.DataDev = "a\nb" }), "whitespace"},
		{"unicode space in data dev", with(func(p *PoolTable) { p.DataDev = "a\u00a0b" }), "whitespace"},
		{"NUL in data dev", with(func(p *PoolTable) { p.DataDev = "a\x00b" }), "NUL"},
		{"backslash in data dev", with(func(p *PoolTable) { p.DataDev = `a\b` }), "backslash"},
		{"same devices", with(func(p *PoolTable) { p.DataDev = p.MetadataDev }), "two different devices"},
		{"zero block size", with(func(p *PoolTable) { p.DataBlockSize = 0 }), "from 128 (64 KiB) to 2097152 (1 GiB)"},
		{"block size 64", with(func(p *PoolTable) { p.DataBlockSize = 64 }), "multiple of 128"},
		{"block size not multiple", with(func(p *PoolTable) { p.DataBlockSize = 200 }), "multiple of 128"},
		{"block size too big", with(func(p *PoolTable) { p.DataBlockSize = 2097152 + 128 }), "2097152"},
		{"block size huge", with(func(p *PoolTable) { p.DataBlockSize = 1<<32 - 128 }), "2097152"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.table.Validate()
			checkTargetErr(t, err, tt.wantErr)
		})
	}
}

func TestPoolTableParams(t *testing.T) {
	tests := []struct {
		name  string
		table PoolTable
		want  string
	}{
		{"no features", goodPoolTable, "253:0 253:1 128 0 0"},
		{"low water mark", PoolTable{MetadataDev: "/dev/loop0", DataDev: "/dev/loop1", DataBlockSize: 2048, LowWaterMark: 32768},
			"/dev/loop0 /dev/loop1 2048 32768 0"},
		{"one feature", PoolTable{MetadataDev: "7:0", DataDev: "7:1", DataBlockSize: 128, Features: PoolFeatures{SkipBlockZeroing: true}},
			"7:0 7:1 128 0 1 skip_block_zeroing"},
		{"kernel order", PoolTable{MetadataDev: "7:0", DataDev: "7:1", DataBlockSize: 128,
			Features: PoolFeatures{ErrorIfNoSpace: true, ReadOnly: true, NoDiscardPassdown: true, SkipBlockZeroing: true}},
			"7:0 7:1 128 0 4 skip_block_zeroing no_discard_passdown read_only error_if_no_space"},
		{"ignore discard", PoolTable{MetadataDev: "7:0", DataDev: "7:1", DataBlockSize: 256,
			Features: PoolFeatures{IgnoreDiscard: true, ErrorIfNoSpace: true}},
			"7:0 7:1 256 0 2 ignore_discard error_if_no_space"},
		{"all five", PoolTable{MetadataDev: "7:0", DataDev: "7:1", DataBlockSize: 128, Features: PoolFeatures{true, true, true, true, true}},
			"7:0 7:1 128 0 5 skip_block_zeroing ignore_discard no_discard_passdown read_only error_if_no_space"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.table.Params(); got != tt.want {
				t.Errorf("Params() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParsePoolParams(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    PoolTable
		wantErr string
	}{
		// Lines as the kernel returns them (trailing space included).
		{"kernel no features", "253:0 253:1 128 0 0 ", goodPoolTable, ""},
		{"kernel features", "253:2 253:3 1024 16 2 skip_block_zeroing error_if_no_space ",
			PoolTable{MetadataDev: "253:2", DataDev: "253:3", DataBlockSize: 1024, LowWaterMark: 16,
				Features: PoolFeatures{SkipBlockZeroing: true, ErrorIfNoSpace: true}}, ""},
		{"missing count", "253:0 253:1 128 0", goodPoolTable, ""},
		{"extra whitespace", "  253:0\t253:1  128 0  0\n", goodPoolTable, ""},
		{"any order", "7:0 7:1 128 5 3 read_only ignore_discard skip_block_zeroing",
			PoolTable{MetadataDev: "7:0", DataDev: "7:1", DataBlockSize: 128, LowWaterMark: 5,
				Features: PoolFeatures{SkipBlockZeroing: true, IgnoreDiscard: true, ReadOnly: true}}, ""},
		{"max low water mark", "7:0 7:1 2097152 18446744073709551615 1 no_discard_passdown",
			PoolTable{MetadataDev: "7:0", DataDev: "7:1", DataBlockSize: 2097152, LowWaterMark: 1<<64 - 1,
				Features: PoolFeatures{NoDiscardPassdown: true}}, ""},

		{"empty", "", PoolTable{}, "0 fields"},
		{"blank", " \t\n", PoolTable{}, "0 fields"},
		{"one field", "253:0", PoolTable{}, "1 fields"},
		{"three fields", "253:0 253:1 128", PoolTable{}, "3 fields"},
		{"block size not number", "253:0 253:1 abc 0 0", PoolTable{}, "data block size"},
		{"block size negative", "253:0 253:1 -128 0 0", PoolTable{}, "data block size"},
		{"block size plus", "253:0 253:1 +128 0 0", PoolTable{}, "data block size"},
		{"block size overflow", "253:0 253:1 4294967424 0 0", PoolTable{}, "data block size"},
		{"block size out of range", "253:0 253:1 64 0 0", PoolTable{}, "multiple of 128"},
		{"block size not multiple", "253:0 253:1 129 0 0", PoolTable{}, "multiple of 128"},
		{"low water not number", "253:0 253:1 128 x 0", PoolTable{}, "low water mark"},
		{"low water overflow", "253:0 253:1 128 18446744073709551616 0", PoolTable{}, "low water mark"},
		{"low water hex", "253:0 253:1 128 0x10 0", PoolTable{}, "low water mark"},
		{"count not number", "253:0 253:1 128 0 one skip_block_zeroing", PoolTable{}, "feature count"},
		{"count overflow", "253:0 253:1 128 0 99999999999999999999", PoolTable{}, "feature count"},
		{"count too high", "253:0 253:1 128 0 2 skip_block_zeroing", PoolTable{}, "feature count is 2 but 1"},
		{"count too low", "253:0 253:1 128 0 1 skip_block_zeroing read_only", PoolTable{}, "feature count is 1 but 2"},
		{"count without features", "253:0 253:1 128 0 1", PoolTable{}, "feature count is 1 but 0"},
		{"unknown feature", "253:0 253:1 128 0 1 zero_everything", PoolTable{}, "unknown feature"},
		{"upper case feature", "253:0 253:1 128 0 1 READ_ONLY", PoolTable{}, "unknown feature"},
		{"repeated feature", "253:0 253:1 128 0 2 read_only read_only", PoolTable{}, "repeated"},
		{"five features", "7:0 7:1 128 0 5 skip_block_zeroing ignore_discard no_discard_passdown read_only error_if_no_space",
			PoolTable{}, "at most 4"},
		{"same devices", "253:0 253:0 128 0 0", PoolTable{}, "two different devices"},
		{"backslash dev", `253:0 a\b 128 0 0`, PoolTable{}, "backslash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePoolParams(tt.in)
			checkTargetErr(t, err, tt.wantErr)
			if err != nil {
				if !strings.Contains(err.Error(), strconv.Quote(tt.in)) {
					t.Errorf("error %q does not quote the input", err)
				}
				return
			}
			if got != tt.want {
				t.Errorf("ParsePoolParams(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestPoolParamsRoundTrip(t *testing.T) {
	blockSizes := []uint32{128, 256, 384, 1024, 65536, 2097152}
	for mask := 0; mask < 32; mask++ {
		f := PoolFeatures{
			SkipBlockZeroing:  mask&1 != 0,
			IgnoreDiscard:     mask&2 != 0,
			NoDiscardPassdown: mask&4 != 0,
			ReadOnly:          mask&8 != 0,
			ErrorIfNoSpace:    mask&16 != 0,
		}
		for _, bs := range blockSizes {
			p := PoolTable{MetadataDev: "/dev/mapper/meta", DataDev: "259:12", DataBlockSize: bs, LowWaterMark: uint64(mask) * 1000, Features: f}
			got, err := ParsePoolParams(p.Params())
			if mask == 31 {
				// Five features: valid syntax, but more than the kernel takes.
				if err == nil {
					t.Fatalf("ParsePoolParams(%q) accepted five features", p.Params())
				}
				continue
			}
			if err != nil {
				t.Fatalf("ParsePoolParams(%q): %v", p.Params(), err)
			}
			if got != p {
				t.Fatalf("round trip of %+v gave %+v", p, got)
			}
		}
	}
}

// Status lines: the first ones are what kernels print.
var goodPoolStatusLines = []struct {
	name string
	in   string
	want PoolStatus
}{
	{"6.1 fresh pool", "0 11/4096 0/16384 - rw discard_passdown queue_if_no_space - 1024 ",
		PoolStatus{MetadataUsed: 11, MetadataTotal: 4096, DataTotal: 16384, Mode: PoolModeReadWrite,
			DiscardPassdown: true, MetadataLowWatermark: 1024}},
	{"6.1 no trailing space", "0 11/4096 0/16384 - rw discard_passdown queue_if_no_space - 1024",
		PoolStatus{MetadataUsed: 11, MetadataTotal: 4096, DataTotal: 16384, Mode: PoolModeReadWrite,
			DiscardPassdown: true, MetadataLowWatermark: 1024}},
	{"busy pool with held root", "42 1283/262144 120000/1638400 217 rw no_discard_passdown error_if_no_space - 1024 ",
		PoolStatus{TransactionID: 42, MetadataUsed: 1283, MetadataTotal: 262144, DataUsed: 120000, DataTotal: 1638400,
			HeldMetadataRoot: 217, HasHeldMetadataRoot: true, Mode: PoolModeReadWrite, ErrorIfNoSpace: true,
			MetadataLowWatermark: 1024}},
	{"small metadata watermark", "3 10/512 5/100 - rw ignore_discard queue_if_no_space - 128 ",
		PoolStatus{TransactionID: 3, MetadataUsed: 10, MetadataTotal: 512, DataUsed: 5, DataTotal: 100,
			Mode: PoolModeReadWrite, IgnoreDiscard: true, MetadataLowWatermark: 128}},
	{"out of data space", "7 300/4096 16384/16384 - out_of_data_space discard_passdown queue_if_no_space - 1024 ",
		PoolStatus{TransactionID: 7, MetadataUsed: 300, MetadataTotal: 4096, DataUsed: 16384, DataTotal: 16384,
			Mode: PoolModeOutOfDataSpace, DiscardPassdown: true, MetadataLowWatermark: 1024}},
	{"read-only needs check", "7 300/4096 10/16384 - ro discard_passdown queue_if_no_space needs_check 1024 ",
		PoolStatus{TransactionID: 7, MetadataUsed: 300, MetadataTotal: 4096, DataUsed: 10, DataTotal: 16384,
			Mode: PoolModeReadOnly, DiscardPassdown: true, NeedsCheck: true, MetadataLowWatermark: 1024}},
	{"pre-4.19 kernel", "1 20/4096 3/16384 - rw discard_passdown queue_if_no_space - ",
		PoolStatus{TransactionID: 1, MetadataUsed: 20, MetadataTotal: 4096, DataUsed: 3, DataTotal: 16384,
			Mode: PoolModeReadWrite, DiscardPassdown: true}},
	{"max numbers", "18446744073709551615 18446744073709551615/18446744073709551615 0/18446744073709551615 18446744073709551615 rw discard_passdown queue_if_no_space - 18446744073709551615",
		PoolStatus{TransactionID: 1<<64 - 1, MetadataUsed: 1<<64 - 1, MetadataTotal: 1<<64 - 1, DataTotal: 1<<64 - 1,
			HeldMetadataRoot: 1<<64 - 1, HasHeldMetadataRoot: true, Mode: PoolModeReadWrite, DiscardPassdown: true,
			MetadataLowWatermark: 1<<64 - 1}},
	{"empty pool", "0 0/0 0/0 - rw discard_passdown queue_if_no_space - 0",
		PoolStatus{Mode: PoolModeReadWrite, DiscardPassdown: true}},
	{"Fail", "Fail", PoolStatus{Fail: true}},
	{"Error", "Error", PoolStatus{Error: true}},
	{"Fail with newline", "Fail\n", PoolStatus{Fail: true}},
}

var badPoolStatusLines = []struct {
	name    string
	in      string
	wantErr string
}{
	{"empty", "", "0 fields"},
	{"blank", "   ", "0 fields"},
	{"fail lower case", "fail", "1 fields"},
	{"Fail and more", "Fail 0", "2 fields"},
	{"Error and more", "Error 0 11/4096", "3 fields"},
	{"seven fields", "0 11/4096 0/16384 - rw discard_passdown queue_if_no_space", "7 fields"},
	{"ten fields", "0 11/4096 0/16384 - rw discard_passdown queue_if_no_space - 1024 x", "10 fields"},
	{"transaction id not number", "x 11/4096 0/16384 - rw discard_passdown queue_if_no_space - 1024", "transaction id"},
	{"transaction id negative", "-1 11/4096 0/16384 - rw discard_passdown queue_if_no_space - 1024", "transaction id"},
	{"transaction id overflow", "18446744073709551616 11/4096 0/16384 - rw discard_passdown queue_if_no_space - 1024", "transaction id"},
	{"metadata no slash", "0 11 0/16384 - rw discard_passdown queue_if_no_space - 1024", "metadata usage"},
	{"metadata two slashes", "0 11/4096/1 0/16384 - rw discard_passdown queue_if_no_space - 1024", "metadata usage"},
	{"metadata empty used", "0 /4096 0/16384 - rw discard_passdown queue_if_no_space - 1024", "metadata usage"},
	{"metadata empty total", "0 11/ 0/16384 - rw discard_passdown queue_if_no_space - 1024", "metadata usage"},
	{"metadata slash only", "0 / 0/16384 - rw discard_passdown queue_if_no_space - 1024", "metadata usage"},
	{"metadata used > total", "0 4097/4096 0/16384 - rw discard_passdown queue_if_no_space - 1024", "exceeds total"},
	{"metadata overflow", "0 11/18446744073709551616 0/16384 - rw discard_passdown queue_if_no_space - 1024", "metadata usage"},
	{"data no slash", "0 11/4096 0 - rw discard_passdown queue_if_no_space - 1024", "data usage"},
	{"data not number", "0 11/4096 a/b - rw discard_passdown queue_if_no_space - 1024", "data usage"},
	{"data used > total", "0 11/4096 16385/16384 - rw discard_passdown queue_if_no_space - 1024", "exceeds total"},
	{"data negative", "0 11/4096 -1/16384 - rw discard_passdown queue_if_no_space - 1024", "data usage"},
	{"held root not number", "0 11/4096 0/16384 x rw discard_passdown queue_if_no_space - 1024", "held metadata root"},
	{"held root zero", "0 11/4096 0/16384 0 rw discard_passdown queue_if_no_space - 1024", "held metadata root"},
	{"held root overflow", "0 11/4096 0/16384 99999999999999999999 rw discard_passdown queue_if_no_space - 1024", "held metadata root"},
	{"unknown mode", "0 11/4096 0/16384 - fail discard_passdown queue_if_no_space - 1024", "pool mode"},
	{"mode upper case", "0 11/4096 0/16384 - RW discard_passdown queue_if_no_space - 1024", "pool mode"},
	{"unknown discard", "0 11/4096 0/16384 - rw discard queue_if_no_space - 1024", "discard mode"},
	{"unknown no space", "0 11/4096 0/16384 - rw discard_passdown fail_if_no_space - 1024", "no-space mode"},
	{"fields swapped", "0 11/4096 0/16384 - rw queue_if_no_space discard_passdown - 1024", "discard mode"},
	{"unknown check flag", "0 11/4096 0/16384 - rw discard_passdown queue_if_no_space ok 1024", "check flag"},
	{"watermark not number", "0 11/4096 0/16384 - rw discard_passdown queue_if_no_space - x", "metadata low watermark"},
	{"watermark dash", "0 11/4096 0/16384 - rw discard_passdown queue_if_no_space - -", "metadata low watermark"},
	{"watermark overflow", "0 11/4096 0/16384 - rw discard_passdown queue_if_no_space - 18446744073709551616", "metadata low watermark"},
}

func TestParsePoolStatus(t *testing.T) {
	for _, tt := range goodPoolStatusLines {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePoolStatus(tt.in)
			if err != nil {
				t.Fatalf("ParsePoolStatus(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParsePoolStatus(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
	for _, tt := range badPoolStatusLines {
		t.Run("bad "+tt.name, func(t *testing.T) {
			got, err := ParsePoolStatus(tt.in)
			checkTargetErr(t, err, tt.wantErr)
			if err == nil {
				return
			}
			if !strings.Contains(err.Error(), strconv.Quote(tt.in)) {
				t.Errorf("error %q does not quote the line", err)
			}
			if got != (PoolStatus{}) {
				t.Errorf("failed parse returned %+v, want the zero value", got)
			}
		})
	}
}

func TestPoolStatusHealthy(t *testing.T) {
	ok := PoolStatus{MetadataUsed: 11, MetadataTotal: 4096, DataTotal: 16384, Mode: PoolModeReadWrite, DiscardPassdown: true}
	tests := []struct {
		name    string
		st      PoolStatus
		wantErr string
	}{
		{"healthy", ok, ""},
		{"healthy with held root and error_if_no_space", PoolStatus{Mode: PoolModeReadWrite, HasHeldMetadataRoot: true,
			HeldMetadataRoot: 5, ErrorIfNoSpace: true, IgnoreDiscard: true}, ""},
		{"fail", PoolStatus{Fail: true}, "fail mode"},
		{"error", PoolStatus{Error: true}, "could not read the pool metadata"},
		{"needs check", PoolStatus{Mode: PoolModeReadWrite, NeedsCheck: true}, "needs_check"},
		{"needs check and read-only", PoolStatus{Mode: PoolModeReadOnly, NeedsCheck: true}, "needs_check"},
		{"read-only", PoolStatus{Mode: PoolModeReadOnly}, "read-only"},
		{"out of data space", PoolStatus{Mode: PoolModeOutOfDataSpace, DataUsed: 10, DataTotal: 10}, "out of data space (10/10"},
		{"out of data space and read-only", PoolStatus{Mode: PoolModeReadOnly, DataUsed: 10, DataTotal: 10}, "read-only"},
		{"unknown mode", PoolStatus{}, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.st.Healthy()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Healthy() = %v, want nil", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Healthy() = %v, want an error containing %q", err, tt.wantErr)
			}
			// Usable is Healthy but for a pool that is only out of data
			// space: its metadata may still change.
			usable := tt.st.Usable()
			if wantUsable := err == nil || tt.st.Mode == PoolModeOutOfDataSpace; (usable == nil) != wantUsable {
				t.Fatalf("Usable() = %v, want usable=%v", usable, wantUsable)
			}
			if usable != nil && usable.Error() != err.Error() {
				t.Fatalf("Usable() = %v, Healthy() = %v: want the same reason", usable, err)
			}
		})
	}
	// Healthy agrees with parsed kernel lines.
	for _, tt := range goodPoolStatusLines {
		st, _ := ParsePoolStatus(tt.in)
		healthy := !st.Fail && !st.Error && !st.NeedsCheck && st.Mode == PoolModeReadWrite
		if err := st.Healthy(); (err == nil) != healthy {
			t.Errorf("Healthy() of %q = %v, want healthy=%v", tt.in, err, healthy)
		}
	}
}

// checkTargetErr fails t unless err matches wantErr: nil when wantErr is empty,
// otherwise an ErrInvalidArgument whose text contains wantErr.
func checkTargetErr(t *testing.T, err error, wantErr string) {
	t.Helper()
	if wantErr == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want one containing %q", wantErr)
	}
	if !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("error %q is not ErrInvalidArgument", err)
	}
	if !strings.Contains(err.Error(), wantErr) {
		t.Errorf("error %q does not contain %q", err, wantErr)
	}
}
