package main

import (
	"strings"
	"testing"
	"time"
)

func TestRatio(t *testing.T) {
	for _, tc := range []struct {
		name string
		row  Row
		want float64
		text string
	}{
		{"latency speedup", Row{Value: Seconds(ms(5)), Base: Seconds(ms(500)), Kind: Speedup}, 100, "100× faster"},
		{"latency slowdown", Row{Value: Seconds(ms(20)), Base: Seconds(ms(10)), Kind: Speedup}, 0.5, "2.00× slower"},
		{"throughput speedup", Row{Value: Rate(300), Base: Rate(2), Kind: Speedup}, 150, "150× faster"},
		{"relative latency", Row{Value: Seconds(ms(6)), Base: Seconds(ms(2)), Kind: Relative}, 3, "3.00×"},
		{"relative bandwidth", Row{Value: Value{930, MiBPerS}, Base: Value{1000, MiBPerS}, Kind: Relative}, 0.93, "0.93×"},
		{"no baseline", Row{Value: Seconds(ms(6))}, 0, "—"},
		{"no figure", Row{Base: Seconds(ms(6))}, 0, "—"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.row.Ratio(); got < tc.want*0.999 || got > tc.want*1.001 {
				t.Errorf("Ratio() = %g, want %g", got, tc.want)
			}
			if got := tc.row.RatioText(); got != tc.text {
				t.Errorf("RatioText() = %q, want %q", got, tc.text)
			}
		})
	}
}

func TestVerdict(t *testing.T) {
	atLeast100 := &Goal{AtLeast: true, Bound: 100}
	atMost3 := &Goal{Bound: 3}
	within2s := &Goal{Bound: 2, OnValue: true}
	for _, tc := range []struct {
		name string
		row  Row
		want string
	}{
		{"no goal", Row{Value: Seconds(ms(1)), Base: Seconds(ms(2))}, ""},
		{"speedup met", Row{Value: Seconds(ms(4)), Base: Seconds(ms(500)), Kind: Speedup, Goal: atLeast100}, "met"},
		{"speedup met exactly", Row{Value: Seconds(ms(5)), Base: Seconds(ms(500)), Kind: Speedup, Goal: atLeast100}, "met"},
		{"speedup not met", Row{Value: Seconds(ms(6)), Base: Seconds(ms(500)), Kind: Speedup, Goal: atLeast100}, "not met"},
		{"at most met", Row{Value: Seconds(ms(5)), Base: Seconds(ms(2)), Goal: atMost3}, "met"},
		{"at most not met", Row{Value: Seconds(ms(7)), Base: Seconds(ms(2)), Goal: atMost3}, "not met"},
		{"on the value met", Row{Value: Seconds(1500 * time.Millisecond), Base: Seconds(ms(200)), Goal: within2s}, "met"},
		{"on the value without baseline", Row{Value: Seconds(1500 * time.Millisecond), Goal: within2s}, "met"},
		{"on the value not met", Row{Value: Seconds(2500 * time.Millisecond), Base: Seconds(ms(200)), Goal: within2s}, "not met"},
		{"bandwidth met", Row{Value: Value{950, MiBPerS}, Base: Value{1000, MiBPerS}, Goal: &Goal{AtLeast: true, Bound: 0.9}}, "met"},
		{"bandwidth not met", Row{Value: Value{850, MiBPerS}, Base: Value{1000, MiBPerS}, Goal: &Goal{AtLeast: true, Bound: 0.9}}, "not met"},
		{"not measured", Row{Base: Seconds(ms(2)), Goal: atMost3}, "not measured"},
		{"baseline not measured", Row{Value: Seconds(ms(2)), Goal: atMost3}, "not measured"},
		{"unjudged", Row{Value: Seconds(ms(2)), Base: Seconds(ms(2)), Goal: atMost3, Unjudged: "1000 volumes"}, "not judged: 1000 volumes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.row.Verdict(); got != tc.want {
				t.Errorf("Verdict() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestGoalString(t *testing.T) {
	for _, tc := range []struct {
		g    Goal
		want string
	}{
		{Goal{AtLeast: true, Bound: 100}, "≥ 100×"},
		{Goal{Bound: 1.5}, "≤ 1.50×"},
		{Goal{AtLeast: true, Bound: 0.9}, "≥ 0.90×"},
		{Goal{Bound: 2, OnValue: true}, "≤ 2.00s"},
	} {
		if got := tc.g.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.g, got, tc.want)
		}
	}
}

func TestValueString(t *testing.T) {
	for _, tc := range []struct {
		v    Value
		want string
	}{
		{Seconds(ms(4.2)), "4.20ms"},
		{Rate(812.4), "812/s"},
		{Value{1234.5, MiBPerS}, "1234 MiB/s"},
		{Value{15.25, IOPS}, "15.2 IOPS"},
		{Value{16.9, Ratio}, "16.9"},
		{Value{}, "—"},
	} {
		if got := tc.v.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestWriteTable(t *testing.T) {
	rows := []Row{
		{Section: "control path"},
		{Figure: "CreateVolume p50", Value: Seconds(ms(4)), Baseline: "lvcreate --thin p50", Base: Seconds(ms(500)),
			Kind: Speedup, Goal: &Goal{AtLeast: true, Bound: 100}},
		{Figure: "fsync", Value: Seconds(ms(1)), Baseline: "tmpfs", Base: Seconds(10 * time.Microsecond)},
	}
	var b strings.Builder
	if err := WriteTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	want := `| figure           | csi-thin | baseline            | baseline's | ratio       | goal   | goal met |
| ---------------- | -------- | ------------------- | ---------- | ----------- | ------ | -------- |
| **control path** |          |                     |            |             |        |          |
| CreateVolume p50 | 4.00ms   | lvcreate --thin p50 | 500ms      | 125× faster | ≥ 100× | met      |
| fsync            | 1.00ms   | tmpfs               | 10.0µs     | 100×        |        |          |
`
	if got := b.String(); got != want {
		t.Errorf("WriteTable wrote\n%s\nwant\n%s", got, want)
	}
	if got := Summary(rows); got != "goals: 1 met, 0 not met, 0 not judged" {
		t.Errorf("Summary = %q", got)
	}
}
