package devmapper

import (
	"fmt"
	"testing"
)

// formatPoolStatus renders st as the kernel would print it, so the fuzz
// targets can check that a parsed status parses back to itself.
func formatPoolStatus(st PoolStatus) string {
	switch {
	case st.Fail:
		return "Fail"
	case st.Error:
		return "Error"
	}
	held := "-"
	if st.HasHeldMetadataRoot {
		held = fmt.Sprint(st.HeldMetadataRoot)
	}
	discard := "no_discard_passdown"
	switch {
	case st.IgnoreDiscard:
		discard = "ignore_discard"
	case st.DiscardPassdown:
		discard = "discard_passdown"
	}
	noSpace := "queue_if_no_space"
	if st.ErrorIfNoSpace {
		noSpace = "error_if_no_space"
	}
	check := "-"
	if st.NeedsCheck {
		check = "needs_check"
	}
	return fmt.Sprintf("%d %d/%d %d/%d %s %s %s %s %s %d ", st.TransactionID, st.MetadataUsed, st.MetadataTotal,
		st.DataUsed, st.DataTotal, held, st.Mode, discard, noSpace, check, st.MetadataLowWatermark)
}

// formatThinStatus renders st as the kernel would print it.
func formatThinStatus(st ThinStatus) string {
	switch {
	case st.Fail:
		return "Fail"
	case st.Error:
		return "Error"
	case st.HasHighestMapped:
		return fmt.Sprintf("%d %d", st.MappedSectors, st.HighestMappedSector)
	}
	return fmt.Sprintf("%d -", st.MappedSectors)
}

func FuzzParsePoolStatus(f *testing.F) {
	for _, tt := range goodPoolStatusLines {
		f.Add(tt.in)
	}
	for _, tt := range badPoolStatusLines {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParsePoolStatus(s)
		if err != nil {
			if st != (PoolStatus{}) {
				t.Fatalf("ParsePoolStatus(%q) failed but returned %+v", s, st)
			}
			return
		}
		if (st.Fail || st.Error) && st != (PoolStatus{Fail: st.Fail, Error: st.Error}) {
			t.Fatalf("ParsePoolStatus(%q) = %+v: Fail/Error with other fields set", s, st)
		}
		if st.MetadataUsed > st.MetadataTotal || st.DataUsed > st.DataTotal {
			t.Fatalf("ParsePoolStatus(%q) = %+v: used exceeds total", s, st)
		}
		if st.IgnoreDiscard && st.DiscardPassdown {
			t.Fatalf("ParsePoolStatus(%q) = %+v: both ignore_discard and discard_passdown", s, st)
		}
		_ = st.Healthy()
		line := formatPoolStatus(st)
		again, err := ParsePoolStatus(line)
		if err != nil {
			t.Fatalf("ParsePoolStatus(%q) = %+v, but its rendering %q does not parse: %v", s, st, line, err)
		}
		if again != st {
			t.Fatalf("ParsePoolStatus(%q) = %+v, rendering %q parses to %+v", s, st, line, again)
		}
	})
}

func FuzzParsePoolParams(f *testing.F) {
	for _, s := range []string{
		"253:0 253:1 128 0 0 ",
		"253:0 253:1 128 0",
		"253:2 253:3 1024 16 2 skip_block_zeroing error_if_no_space ",
		"7:0 7:1 128 5 3 read_only ignore_discard skip_block_zeroing",
		"7:0 7:1 2097152 18446744073709551615 1 no_discard_passdown",
		"7:0 7:1 128 0 4 skip_block_zeroing no_discard_passdown read_only error_if_no_space",
		"7:0 7:1 128 0 5 skip_block_zeroing ignore_discard no_discard_passdown read_only error_if_no_space",
		"", "253:0", "253:0 253:1 128", "253:0 253:1 abc 0 0", "253:0 253:1 4294967424 0 0",
		"253:0 253:1 64 0 0", "253:0 253:1 128 x 0", "253:0 253:1 128 0 2 skip_block_zeroing",
		"253:0 253:1 128 0 1 zero_everything", "253:0 253:1 128 0 2 read_only read_only",
		"253:0 253:0 128 0 0", `253:0 a\b 128 0 0`, "a\u00a0b 253:1 128 0 0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePoolParams(s)
		if err != nil {
			if p != (PoolTable{}) {
				t.Fatalf("ParsePoolParams(%q) failed but returned %+v", s, p)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("ParsePoolParams(%q) = %+v, which Validate refuses: %v", s, p, err)
		}
		params := p.Params()
		again, err := ParsePoolParams(params)
		if err != nil {
			t.Fatalf("ParsePoolParams(%q) = %+v, but its Params %q does not parse: %v", s, p, params, err)
		}
		if again != p {
			t.Fatalf("ParsePoolParams(%q) = %+v, Params %q parses to %+v", s, p, params, again)
		}
		if again.Params() != params {
			t.Fatalf("Params not stable: %q then %q", params, again.Params())
		}
	})
}

func FuzzParseThinStatus(f *testing.F) {
	for _, tt := range goodThinStatusLines {
		f.Add(tt.in)
	}
	for _, tt := range badThinStatusLines {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseThinStatus(s)
		if err != nil {
			if st != (ThinStatus{}) {
				t.Fatalf("ParseThinStatus(%q) failed but returned %+v", s, st)
			}
			return
		}
		if (st.Fail || st.Error) && st != (ThinStatus{Fail: st.Fail, Error: st.Error}) {
			t.Fatalf("ParseThinStatus(%q) = %+v: Fail/Error with other fields set", s, st)
		}
		if !st.HasHighestMapped && st.HighestMappedSector != 0 {
			t.Fatalf("ParseThinStatus(%q) = %+v: highest sector without HasHighestMapped", s, st)
		}
		line := formatThinStatus(st)
		again, err := ParseThinStatus(line)
		if err != nil {
			t.Fatalf("ParseThinStatus(%q) = %+v, but its rendering %q does not parse: %v", s, st, line, err)
		}
		if again != st {
			t.Fatalf("ParseThinStatus(%q) = %+v, rendering %q parses to %+v", s, st, line, again)
		}
	})
}

func FuzzParseThinParams(f *testing.F) {
	for _, s := range []string{
		"253:2 1", "253:2 16777215 8:16", " 253:2\t0 \n", "253:2 007",
		"", "253:2", "253:2 1 8:16 x", "253:2 one", "253:2 -1", "253:2 16777216",
		"253:2 4294967297", "253:2 0x1", "253:2 1 253:2", `a\b 1`, "a\x00b 1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tt, err := ParseThinParams(s)
		if err != nil {
			if tt != (ThinTable{}) {
				t.Fatalf("ParseThinParams(%q) failed but returned %+v", s, tt)
			}
			return
		}
		if err := tt.Validate(); err != nil {
			t.Fatalf("ParseThinParams(%q) = %+v, which Validate refuses: %v", s, tt, err)
		}
		params := tt.Params()
		again, err := ParseThinParams(params)
		if err != nil {
			t.Fatalf("ParseThinParams(%q) = %+v, but its Params %q does not parse: %v", s, tt, params, err)
		}
		if again != tt {
			t.Fatalf("ParseThinParams(%q) = %+v, Params %q parses to %+v", s, tt, params, again)
		}
	})
}
