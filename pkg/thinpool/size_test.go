package thinpool

import (
	"errors"
	"math"
	"strings"
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

var xfsMin = CreateRequest{FSMinBytes: 300 * mib, FSType: "xfs"}

func TestVolumeSize(t *testing.T) {
	const block = 64 * kib
	rng := func(req, lim uint64) CreateRequest { return CreateRequest{RequiredBytes: req, LimitBytes: lim} }
	fs := func(r, fs CreateRequest) CreateRequest {
		r.FSMinBytes, r.FSType = fs.FSMinBytes, fs.FSType
		return r
	}
	tests := []struct {
		name     string
		r        CreateRequest
		minBytes uint64 // the source's size
		block    uint64
		want     uint64
		msg      string // the error's whole text begins so
	}{
		{name: "no range: 1 GiB", want: gib},
		{name: "required, whole blocks", r: rng(10*gib, 0), want: 10 * gib},
		{name: "required rounds up", r: rng(100*mib+1, 0), want: 100*mib + block},
		{name: "required of one byte is one block", r: rng(1, 0), want: block},
		{name: "required equals limit", r: rng(10*gib, 10*gib), want: 10 * gib},
		{name: "rounded up within the limit", r: rng(1000, 2*block), want: block},
		{name: "limit above the default", r: rng(0, 2*gib), want: gib},
		{name: "limit below the default caps it", r: rng(0, 100*mib), want: 100 * mib},
		{name: "unaligned limit alone rounds down", r: rng(0, 100*mib+1000), want: 100 * mib},
		{name: "limit of exactly one block", r: rng(0, block), want: block},
		{name: "big block", r: rng(1, 0), block: 1 * gib, want: gib},

		{name: "limit below required", r: rng(2*gib, gib), msg: "capacity range: limit_bytes 1073741824 is below required_bytes 2147483648: raise the limit or lower the request"},
		{name: "limit below one block", r: rng(0, block-1), msg: "capacity range: limit_bytes 65535 is below the pool's block size, 65536 bytes, the smallest volume: raise the limit to at least 65536"},
		{name: "required and limit in one block", r: rng(block+1, block+100), msg: "capacity range [65537, 65636] bytes holds no whole number of the pool's 65536-byte blocks"},
		{name: "unaligned exact size", r: rng(block+1, block+1), msg: "capacity range [65537, 65537] bytes holds no whole number"},
		{name: "too large once rounded", r: rng(math.MaxInt64, 0), msg: "capacity range: required_bytes 9223372036854775807 is too large"},
		{name: "too large for a CSI field", r: rng(math.MaxUint64, 0), msg: "capacity range: required_bytes 18446744073709551615 is too large"},

		{name: "copy without range: source size", minBytes: 5 * gib, want: 5 * gib},
		{name: "copy of a small source: not 1 GiB", minBytes: 2 * block, want: 2 * block},
		{name: "copy, required below source: source size", r: rng(gib, 0), minBytes: 5 * gib, want: 5 * gib},
		{name: "copy, required below source, limit above", r: rng(gib, 6*gib), minBytes: 5 * gib, want: 5 * gib},
		{name: "copy larger than source", r: rng(8*gib, 0), minBytes: 5 * gib, want: 8 * gib},
		{name: "copy, limit alone above source", r: rng(0, 8*gib), minBytes: 5 * gib, want: 5 * gib},
		{name: "copy, limit below source", r: rng(0, 4*gib), minBytes: 5 * gib,
			msg: "capacity range: the source is 5368709120 bytes and a copy cannot be smaller, but limit_bytes is 4294967296: raise the limit to at least 5368709120"},
		{name: "copy, required and limit below source", r: rng(gib, gib), minBytes: 5 * gib, msg: "capacity range: the source is 5368709120 bytes"},

		{name: "xfs: rounded up to its minimum", r: fs(rng(256*mib, 0), xfsMin), want: 300 * mib},
		{name: "xfs: rounded up within the limit", r: fs(rng(256*mib, 400*mib), xfsMin), want: 300 * mib},
		{name: "xfs: limit at the minimum", r: fs(rng(256*mib, 300*mib), xfsMin), want: 300 * mib},
		{name: "xfs: limit below the minimum", r: fs(rng(256*mib, 300*mib-1), xfsMin),
			msg: "capacity range: mkfs.xfs makes no filesystem under 314572800 bytes, but limit_bytes is 314572799: raise the limit to at least 314572800, or use another filesystem"},
		{name: "xfs: limit alone below the minimum", r: fs(rng(0, 200*mib), xfsMin), msg: "capacity range: mkfs.xfs makes no filesystem"},
		{name: "xfs: limit alone between minimum and default", r: fs(rng(0, 500*mib), xfsMin), want: 500 * mib},
		{name: "xfs: large request untouched", r: fs(rng(10*gib, 0), xfsMin), want: 10 * gib},
		{name: "xfs: big block above the minimum", r: fs(rng(256*mib, 0), xfsMin), block: gib, want: gib},
		{name: "xfs: big block over the limit", r: fs(rng(256*mib, 500*mib), xfsMin), block: gib, msg: "capacity range [268435456, 524288000] bytes holds no whole number"},
		{name: "xfs: copy larger than the minimum", r: fs(rng(mib, 0), xfsMin), minBytes: gib, want: gib},
		{name: "xfs: copy smaller than the minimum", r: fs(rng(mib, 0), xfsMin), minBytes: 100 * mib, want: 300 * mib},
		{name: "ext4: one byte is its minimum", r: CreateRequest{RequiredBytes: 1, FSMinBytes: 256 * kib, FSType: "ext4"}, want: 256 * kib},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.block
			if b == 0 {
				b = block
			}
			got, err := VolumeSize(tt.r, tt.minBytes, b)
			if tt.msg != "" {
				if !errors.Is(err, ErrOutOfRange) || !strings.HasPrefix(err.Error(), tt.msg) {
					t.Fatalf("VolumeSize = %d, %v; want ErrOutOfRange saying %q", got, err, tt.msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("VolumeSize: %v", err)
			}
			if got != tt.want {
				t.Fatalf("VolumeSize = %d, want %d", got, tt.want)
			}
			// Whatever it picks is whole blocks within the range.
			if got%b != 0 || got < tt.r.RequiredBytes || (tt.r.LimitBytes > 0 && got > tt.r.LimitBytes) || got < tt.minBytes || got < tt.r.FSMinBytes {
				t.Fatalf("VolumeSize = %d is not whole %d-byte blocks within %+v above %d", got, b, tt.r, tt.minBytes)
			}
		})
	}
}

// Every size VolumeSize picks for a range is whole blocks within it, at
// least the filesystem's minimum, and it refuses a range only when no such
// size lies in it.
func TestVolumeSizeExhaustive(t *testing.T) {
	const block = 4
	for fs := uint64(0); fs <= 12; fs++ {
		for req := uint64(0); req <= 20; req++ {
			for lim := uint64(0); lim <= 20; lim++ {
				r := CreateRequest{RequiredBytes: req, LimitBytes: lim, FSMinBytes: fs, FSType: "xfs"}
				got, err := VolumeSize(r, 0, block)
				least := max(req, 1, fs)
				exists := lim == 0 || (req <= lim && RoundUp(least, block) <= lim)
				if (err == nil) != exists {
					t.Fatalf("fs %d [%d, %d]: VolumeSize = %d, %v; a whole-block size exists: %v", fs, req, lim, got, err, exists)
				}
				if err != nil {
					if !errors.Is(err, ErrOutOfRange) {
						t.Fatalf("fs %d [%d, %d]: %v, want ErrOutOfRange", fs, req, lim, err)
					}
					continue
				}
				if got%block != 0 || got == 0 || got < req || got < fs || (lim > 0 && got > lim) {
					t.Fatalf("fs %d [%d, %d]: VolumeSize = %d", fs, req, lim, got)
				}
				if req > 0 && got >= max(req, fs)+block {
					t.Fatalf("fs %d [%d, %d]: VolumeSize = %d is more than a block over the request and the minimum", fs, req, lim, got)
				}
			}
		}
	}
}
