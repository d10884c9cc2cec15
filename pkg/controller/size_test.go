package controller

import (
	"math"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

var xfsMin = fsMin{300 * mib, "xfs"}

func TestVolumeSize(t *testing.T) {
	const block = 64 * kib
	rng := func(req, lim int64) *csi.CapacityRange {
		return &csi.CapacityRange{RequiredBytes: req, LimitBytes: lim}
	}
	tests := []struct {
		name     string
		r        *csi.CapacityRange
		minBytes uint64
		fs       fsMin
		block    uint64
		want     uint64
		code     codes.Code
	}{
		{name: "no range: 1 GiB", r: nil, want: gib},
		{name: "empty range: 1 GiB", r: rng(0, 0), want: gib},
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

		{name: "negative required", r: rng(-1, 0), code: codes.InvalidArgument},
		{name: "negative limit", r: rng(0, -1), code: codes.InvalidArgument},
		{name: "limit below required", r: rng(2*gib, gib), code: codes.OutOfRange},
		{name: "limit below one block", r: rng(0, block-1), code: codes.OutOfRange},
		{name: "required and limit in one block", r: rng(block+1, block+100), code: codes.OutOfRange},
		{name: "unaligned exact size", r: rng(block+1, block+1), code: codes.OutOfRange},
		{name: "too large once rounded", r: rng(math.MaxInt64, 0), code: codes.OutOfRange},

		{name: "copy without range: source size", minBytes: 5 * gib, want: 5 * gib},
		{name: "copy of a small source: not 1 GiB", minBytes: 2 * block, want: 2 * block},
		{name: "copy, required below source: source size", r: rng(gib, 0), minBytes: 5 * gib, want: 5 * gib},
		{name: "copy, required below source, limit above", r: rng(gib, 6*gib), minBytes: 5 * gib, want: 5 * gib},
		{name: "copy larger than source", r: rng(8*gib, 0), minBytes: 5 * gib, want: 8 * gib},
		{name: "copy, limit alone above source", r: rng(0, 8*gib), minBytes: 5 * gib, want: 5 * gib},
		{name: "copy, limit below source", r: rng(0, 4*gib), minBytes: 5 * gib, code: codes.OutOfRange},
		{name: "copy, required and limit below source", r: rng(gib, gib), minBytes: 5 * gib, code: codes.OutOfRange},

		{name: "xfs: rounded up to its minimum", r: rng(256*mib, 0), fs: xfsMin, want: 300 * mib},
		{name: "xfs: rounded up within the limit", r: rng(256*mib, 400*mib), fs: xfsMin, want: 300 * mib},
		{name: "xfs: limit at the minimum", r: rng(256*mib, 300*mib), fs: xfsMin, want: 300 * mib},
		{name: "xfs: limit below the minimum", r: rng(256*mib, 300*mib-1), fs: xfsMin, code: codes.OutOfRange},
		{name: "xfs: limit alone below the minimum", r: rng(0, 200*mib), fs: xfsMin, code: codes.OutOfRange},
		{name: "xfs: limit alone between minimum and default", r: rng(0, 500*mib), fs: xfsMin, want: 500 * mib},
		{name: "xfs: large request untouched", r: rng(10*gib, 0), fs: xfsMin, want: 10 * gib},
		{name: "xfs: big block above the minimum", r: rng(256*mib, 0), fs: xfsMin, block: gib, want: gib},
		{name: "xfs: big block over the limit", r: rng(256*mib, 500*mib), fs: xfsMin, block: gib, code: codes.OutOfRange},
		{name: "xfs: copy larger than the minimum", r: rng(mib, 0), minBytes: gib, fs: xfsMin, want: gib},
		{name: "xfs: copy smaller than the minimum", r: rng(mib, 0), minBytes: 100 * mib, fs: xfsMin, want: 300 * mib},
		{name: "ext4: one byte is its minimum", r: rng(1, 0), fs: fsMin{256 * kib, "ext4"}, want: 256 * kib},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.block
			if b == 0 {
				b = block
			}
			got, err := volumeSize(tt.r, tt.minBytes, tt.fs, b)
			if tt.code != codes.OK {
				if status.Code(err) != tt.code {
					t.Fatalf("volumeSize = %d, %v; want code %s", got, err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("volumeSize: %v", err)
			}
			if got != tt.want {
				t.Fatalf("volumeSize = %d, want %d", got, tt.want)
			}
			// Whatever it picks is whole blocks within the range.
			if got%b != 0 || int64(got) < tt.r.GetRequiredBytes() || (tt.r.GetLimitBytes() > 0 && int64(got) > tt.r.GetLimitBytes()) || got < tt.minBytes || got < tt.fs.bytes {
				t.Fatalf("volumeSize = %d is not whole %d-byte blocks within %v above %d", got, b, tt.r, tt.minBytes)
			}
		})
	}
}

// Every size volumeSize picks for a range is whole blocks within it, at
// least the filesystem's minimum, and it refuses a range only when no such
// size lies in it.
func TestVolumeSizeExhaustive(t *testing.T) {
	const block = 4
	for fs := uint64(0); fs <= 12; fs++ {
		for req := int64(0); req <= 20; req++ {
			for lim := int64(0); lim <= 20; lim++ {
				got, err := volumeSize(&csi.CapacityRange{RequiredBytes: req, LimitBytes: lim}, 0, fsMin{fs, "xfs"}, block)
				least := max(req, 1, int64(fs))
				exists := lim == 0 || (req <= lim && (least+block-1)/block*block <= lim)
				if (err == nil) != exists {
					t.Fatalf("fs %d [%d, %d]: volumeSize = %d, %v; a whole-block size exists: %v", fs, req, lim, got, err, exists)
				}
				if err != nil {
					if c := status.Code(err); c != codes.OutOfRange {
						t.Fatalf("fs %d [%d, %d]: code %s, want OutOfRange", fs, req, lim, c)
					}
					continue
				}
				if got%block != 0 || got == 0 || int64(got) < req || got < fs || (lim > 0 && int64(got) > lim) {
					t.Fatalf("fs %d [%d, %d]: volumeSize = %d", fs, req, lim, got)
				}
				if req > 0 && int64(got) >= max(req, int64(fs))+block {
					t.Fatalf("fs %d [%d, %d]: volumeSize = %d is more than a block over the request and the minimum", fs, req, lim, got)
				}
			}
		}
	}
}
