package main

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Unit is what a Value measures.
type Unit int

// The units of the figures. A latency is better lower, the others higher.
const (
	Latency   Unit = iota // seconds
	CallsPerS             // calls a second
	MiBPerS               // MiB a second
	IOPS                  // I/Os a second
	Ratio                 // a plain number: bytes for a byte
)

// Value is one measured figure; V is 0 when it was not measured.
type Value struct {
	V    float64
	Unit Unit
}

// Seconds is a latency.
func Seconds(d time.Duration) Value { return Value{d.Seconds(), Latency} }

// Rate is a number of calls a second.
func Rate(v float64) Value { return Value{v, CallsPerS} }

func (v Value) measured() bool { return v.V > 0 }

func (v Value) String() string {
	if !v.measured() {
		return "—"
	}
	switch v.Unit {
	case Latency:
		return human(time.Duration(v.V * float64(time.Second)))
	case CallsPerS:
		return sig3(v.V) + "/s"
	case MiBPerS:
		return sig3(v.V) + " MiB/s"
	case Ratio:
		return sig3(v.V)
	default:
		return sig3(v.V) + " IOPS"
	}
}

// RatioKind says how a row compares its figure with its baseline.
type RatioKind int

const (
	// Relative is the figure divided by the baseline: 2.6× a floor's
	// latency, 0.93× a linear device's throughput.
	Relative RatioKind = iota
	// Speedup is how many times faster the figure is than the baseline:
	// the baseline's latency over the figure's, or the figure's
	// throughput over the baseline's.
	Speedup
)

// Goal is what a row's figure should reach: a bound on the ratio, or on
// the figure itself.
type Goal struct {
	AtLeast bool    // the bound is a minimum; otherwise a maximum
	Bound   float64 // on the ratio, or in seconds with OnValue
	OnValue bool    // the bound is on the figure (a latency), not the ratio
}

// String is how the goal reads in the table.
func (g Goal) String() string {
	op := "≤"
	if g.AtLeast {
		op = "≥"
	}
	if g.OnValue {
		return op + " " + human(time.Duration(g.Bound*float64(time.Second)))
	}
	return op + " " + trimRatio(g.Bound) + "×"
}

// Row is one line of the table: a figure, its baseline, their ratio and
// the goal, if any, that the figure is judged by. A row with no Figure is
// a section heading.
type Row struct {
	Section  string // a heading row's title
	Figure   string // what was measured
	Value    Value
	Baseline string // what it is compared with
	Base     Value
	Kind     RatioKind
	Goal     *Goal
	// Unjudged, when set, is why the goal is not judged in this run (the
	// figure was measured under other conditions than the goal's).
	Unjudged string
}

// Ratio is the row's comparison of figure and baseline (see RatioKind);
// 0 when either is missing.
func (r Row) Ratio() float64 {
	if !r.Value.measured() || !r.Base.measured() {
		return 0
	}
	q := r.Value.V / r.Base.V
	if r.Kind == Speedup && r.Value.Unit == Latency {
		q = r.Base.V / r.Value.V
	}
	return q
}

// RatioText is the ratio as the table shows it.
func (r Row) RatioText() string {
	q := r.Ratio()
	if q == 0 {
		return "—"
	}
	if r.Kind == Speedup {
		if q < 1 {
			return trimRatio(1/q) + "× slower"
		}
		return trimRatio(q) + "× faster"
	}
	return trimRatio(q) + "×"
}

// Verdict is "met", "not met", or why the goal is not judged; empty for
// a row without a goal.
func (r Row) Verdict() string {
	if r.Goal == nil {
		return ""
	}
	if r.Unjudged != "" {
		return "not judged: " + r.Unjudged
	}
	got := r.Ratio()
	if r.Goal.OnValue {
		got = r.Value.V
	}
	if got == 0 || (!r.Goal.OnValue && !r.Base.measured()) {
		return "not measured"
	}
	ok := got <= r.Goal.Bound
	if r.Goal.AtLeast {
		ok = got >= r.Goal.Bound
	}
	if ok {
		return "met"
	}
	return "not met"
}

// trimRatio prints a ratio with three significant digits.
func trimRatio(q float64) string { return sig3(q) }

// tableHeader is the table's columns.
var tableHeader = []string{"figure", "csi-thin", "baseline", "baseline's", "ratio", "goal", "goal met"}

// cells is a row's columns.
func (r Row) cells() []string {
	if r.Figure == "" {
		return []string{"**" + r.Section + "**", "", "", "", "", "", ""}
	}
	goal := ""
	if r.Goal != nil {
		goal = r.Goal.String()
	}
	return []string{r.Figure, r.Value.String(), r.Baseline, r.Base.String(), r.RatioText(), goal, r.Verdict()}
}

// WriteTable writes rows as one Markdown table, its columns padded so that
// it reads as well in a terminal.
func WriteTable(w io.Writer, rows []Row) error {
	lines := [][]string{tableHeader}
	for _, r := range rows {
		lines = append(lines, r.cells())
	}
	width := make([]int, len(tableHeader))
	for _, l := range lines {
		for i, c := range l {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for i, c := range cells {
			b.WriteString(" " + c + strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)) + " |")
		}
		b.WriteString("\n")
	}
	line(lines[0])
	rule := make([]string, len(width))
	for i, n := range width {
		rule[i] = strings.Repeat("-", n)
	}
	line(rule)
	for _, l := range lines[1:] {
		line(l)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Summary counts the rows with a goal by verdict.
func Summary(rows []Row) string {
	var met, notMet, other int
	for _, r := range rows {
		switch r.Verdict() {
		case "":
		case "met":
			met++
		case "not met":
			notMet++
		default:
			other++
		}
	}
	return fmt.Sprintf("goals: %d met, %d not met, %d not judged", met, notMet, other)
}
