package thinpool

import (
	"math"
	"testing"
)

func TestRoundUp(t *testing.T) {
	tests := []struct {
		name              string
		size, block, want uint64
	}{
		{"nothing", 0, 64 * kib, 0},
		{"one byte is one block", 1, 64 * kib, 64 * kib},
		{"one block less a byte", 64*kib - 1, 64 * kib, 64 * kib},
		{"whole blocks stay", mib, 64 * kib, mib},
		{"a byte over rounds up a block", mib + 1, 64 * kib, mib + 64*kib},
		{"a block larger than the size", 300 * mib, gib, gib},
		{"a block that is not a power of two", 10, 3, 12},
		{"the largest CSI size", math.MaxInt64, 64 * kib, 1 << 63},
		{"the most whole blocks a uint64 holds", math.MaxUint64 - 64*kib + 1, 64 * kib, math.MaxUint64 - 64*kib + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RoundUp(tt.size, tt.block); got != tt.want {
				t.Errorf("RoundUp(%d, %d) = %d, want %d", tt.size, tt.block, got, tt.want)
			}
		})
	}
}
