package main

import (
	"testing"
	"time"
)

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func TestPercentile(t *testing.T) {
	hundred := make(Sample, 100)
	for i := range hundred {
		hundred[i] = ms(float64(100 - i)) // 100ms down to 1ms
	}
	for _, tc := range []struct {
		name string
		s    Sample
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", Sample{ms(3)}, 99, ms(3)},
		{"median of odd", Sample{ms(5), ms(1), ms(3)}, 50, ms(3)},
		{"median of even is the lower middle", Sample{ms(4), ms(1), ms(3), ms(2)}, 50, ms(2)},
		{"p99 of fewer than 100 is the slowest", Sample{ms(1), ms(9), ms(2)}, 99, ms(9)},
		{"p99 of 100 is the second slowest", hundred, 99, ms(99)},
		{"p50 of 100", hundred, 50, ms(50)},
		{"p100 is the slowest", hundred, 100, ms(100)},
		{"p0 is nothing", hundred, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.Percentile(tc.p); got != tc.want {
				t.Errorf("Percentile(%g) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
}

func TestPercentileKeepsOrder(t *testing.T) {
	s := Sample{ms(3), ms(1), ms(2)}
	s.Percentile(50)
	if s[0] != ms(3) || s[1] != ms(1) || s[2] != ms(2) {
		t.Errorf("Percentile sorted its sample in place: %v", s)
	}
}

func TestThroughput(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"serial", Sample{ms(250), ms(250), ms(500)}.Throughput(), 3},
		{"empty serial", Sample{}.Throughput(), 0},
		{"concurrent", Run{Calls: 64, Callers: 64, Wall: 2 * time.Second}.Throughput(), 32},
		{"nothing ran", Run{}.Throughput(), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("throughput %g, want %g", tc.got, tc.want)
			}
		})
	}
}

func TestHuman(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0"},
		{812 * time.Microsecond, "812µs"},
		{45 * time.Microsecond, "45.0µs"},
		{ms(4.213), "4.21ms"},
		{ms(16.66), "16.7ms"},
		{1300 * time.Millisecond, "1.30s"},
		{125 * time.Second, "125s"},
	} {
		if got := human(tc.d); got != tc.want {
			t.Errorf("human(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
