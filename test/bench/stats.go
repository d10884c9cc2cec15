package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Sample is the latencies of one operation, one per call, in the order
// they were measured.
type Sample []time.Duration

// Percentile is the nearest-rank p-th percentile (0 < p <= 100): the
// smallest latency that at least p percent of the calls did not exceed.
// With fewer than 100 calls the 99th percentile is the slowest call. It is
// 0 for an empty sample.
func (s Sample) Percentile(p float64) time.Duration {
	if len(s) == 0 || p <= 0 {
		return 0
	}
	sorted := slices.Clone(s)
	slices.Sort(sorted)
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Total is the sum of the latencies: the wall time of the calls made one
// after the other.
func (s Sample) Total() time.Duration {
	var t time.Duration
	for _, d := range s {
		t += d
	}
	return t
}

// Throughput is calls per second made one after the other; 0 for an
// empty sample.
func (s Sample) Throughput() float64 {
	t := s.Total()
	if t <= 0 {
		return 0
	}
	return float64(len(s)) / t.Seconds()
}

// Run is calls made by concurrent callers: how many, by how many callers,
// in how much wall time.
type Run struct {
	Calls, Callers int
	Wall           time.Duration
}

// Throughput is calls per second of wall time; 0 when nothing ran.
func (r Run) Throughput() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(r.Calls) / r.Wall.Seconds()
}

// human is a duration with three significant digits in the unit that
// suits it: 812µs, 4.21ms, 1.30s.
func human(d time.Duration) string {
	switch s := d.Seconds(); {
	case d == 0:
		return "0"
	case s < 1e-3:
		return sig3(s*1e6) + "µs"
	case s < 1:
		return sig3(s*1e3) + "ms"
	default:
		return sig3(s) + "s"
	}
}

// sig3 formats v with three significant digits, without an exponent.
func sig3(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
