package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseFio(t *testing.T) {
	const out = `{"jobs": [{"error": 0, "read": {"bw_bytes": %g, "iops": %g}, "write": {"bw_bytes": %g, "iops": %g}}]}`
	seqWrite := fioJob{rw: "write"}
	for _, tc := range []struct {
		name    string
		out     string
		job     fioJob
		want    Value
		wantErr string
	}{
		{"sequential write", fmt.Sprintf(out, 0.0, 0.0, 512.0*float64(mib), 512.0), seqWrite, Value{512, MiBPerS}, ""},
		{"sequential read", fmt.Sprintf(out, 1024.0*float64(mib), 1024.0, 0.0, 0.0), fioJob{rw: "read"}, Value{1024, MiBPerS}, ""},
		{"random write", fmt.Sprintf(out, 0.0, 0.0, 4096.0*7000, 7000.0), fioJob{rw: "randwrite"}, Value{7000, IOPS}, ""},
		{"random read", fmt.Sprintf(out, 4096.0*6000, 6000.0, 0.0, 0.0), fioJob{rw: "randread"}, Value{6000, IOPS}, ""},
		{"warnings before the JSON", "fio: Any use of blockalign= turns off randommap\n" + fmt.Sprintf(out, 0.0, 0.0, 2.0*float64(mib), 2.0),
			seqWrite, Value{2, MiBPerS}, ""},
		{"a failed job", `{"jobs": [{"error": 5}]}`, seqWrite, Value{}, "error 5"},
		{"no I/O", fmt.Sprintf(out, 0.0, 0.0, 0.0, 0.0), fioJob{rw: "randwrite"}, Value{}, "no randwrite I/O"},
		{"no bandwidth", fmt.Sprintf(out, 0.0, 0.0, 0.0, 0.0), seqWrite, Value{}, "no write bandwidth"},
		{"two jobs", `{"jobs": [{}, {}]}`, seqWrite, Value{}, "2 jobs"},
		{"not JSON", "fio: failed to open", seqWrite, Value{}, "not its JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := parseFio([]byte(tc.out), tc.job)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseFio error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("parseFio = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestFirstWriteLog(t *testing.T) {
	for _, tc := range []struct {
		name   string
		region uint64
		seed   int
	}{
		{"one block", poolBlock, 1},
		{"a MiB", mib, 2},
		{"64 MiB", 64 * mib, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := string(firstWriteLog("/dev/dm-7", tc.region, tc.seed))
			lines := strings.Split(strings.TrimSuffix(log, "\n"), "\n")
			blocks := int(tc.region / poolBlock)
			if len(lines) != blocks+4 {
				t.Fatalf("%d lines, want %d: a header, add, open, a write per block, close", len(lines), blocks+4)
			}
			if lines[0] != "fio version 2 iolog" || lines[1] != "/dev/dm-7 add" || lines[2] != "/dev/dm-7 open" || lines[len(lines)-1] != "/dev/dm-7 close" {
				t.Errorf("not a version 2 log of /dev/dm-7: %q ... %q", lines[:3], lines[len(lines)-1])
			}
			seen := map[uint64]bool{}
			for _, l := range lines[3 : len(lines)-1] {
				var off, n uint64
				if _, err := fmt.Sscanf(l, "/dev/dm-7 write %d %d", &off, &n); err != nil {
					t.Fatalf("line %q: %v", l, err)
				}
				if n != 4096 || off%poolBlock != 0 || off >= tc.region || seen[off] {
					t.Errorf("line %q: want a 4 KiB write at a new pool block's start within the region", l)
				}
				seen[off] = true
			}
			if again := string(firstWriteLog("/dev/dm-7", tc.region, tc.seed)); again != log {
				t.Error("the same seed gave another order")
			}
		})
	}
	if a, b := firstWriteLog("d", 64*mib, 1), firstWriteLog("d", 64*mib, 2); string(a) == string(b) {
		t.Error("two seeds gave the same order")
	}
}
