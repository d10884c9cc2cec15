package controller

import (
	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// defaultVolumeBytes is the size of a blank volume when the request gives
// no capacity range.
const defaultVolumeBytes = 1 << 30

// fsMin is the smallest device a volume's filesystem can be made on, and
// that filesystem; zero for a block volume.
type fsMin struct {
	bytes  uint64
	fsType string
}

// volumeSize picks the size of a new volume in whole blocks of block bytes
// from a request's capacity range (nil or zero fields: unset). minBytes is
// its source's size, which a copy may not be smaller than, or 0 for a
// blank volume; fs is the smallest size its filesystem accepts, which a
// smaller request is rounded up to. With no required size the volume is
// its source's size, or 1 GiB for a blank one, kept under the limit. A
// range that holds no such size is OutOfRange; a negative field is
// InvalidArgument.
func volumeSize(r *csi.CapacityRange, minBytes uint64, fs fsMin, block uint64) (uint64, error) {
	req, lim := r.GetRequiredBytes(), r.GetLimitBytes()
	if req < 0 || lim < 0 {
		return 0, status.Errorf(codes.InvalidArgument, "capacity range: required_bytes %d and limit_bytes %d may not be negative", req, lim)
	}
	if lim > 0 && req > lim {
		return 0, status.Errorf(codes.OutOfRange, "capacity range: limit_bytes %d is below required_bytes %d: raise the limit or lower the request", lim, req)
	}
	limit := uint64(lim)
	if lim > 0 && minBytes > limit {
		return 0, status.Errorf(codes.OutOfRange,
			"capacity range: the source is %d bytes and a copy cannot be smaller, but limit_bytes is %d: raise the limit to at least %d", minBytes, lim, minBytes)
	}
	want := uint64(req)
	if want == 0 {
		want = minBytes
		if want == 0 {
			want = defaultVolumeBytes
			if lim > 0 && want > limit {
				want = limit
			}
		}
	}
	if lim > 0 && fs.bytes > limit {
		return 0, status.Errorf(codes.OutOfRange,
			"capacity range: mkfs.%s makes no filesystem under %d bytes, but limit_bytes is %d: raise the limit to at least %d, or use another filesystem",
			fs.fsType, fs.bytes, lim, thinpool.RoundUp(fs.bytes, block))
	}
	want = max(want, minBytes, fs.bytes)
	size := thinpool.RoundUp(want, block)
	if lim > 0 && size > limit {
		if req == 0 {
			size = limit / block * block // no size asked: the most whole blocks under the limit
		}
		switch {
		case size == 0:
			return 0, status.Errorf(codes.OutOfRange,
				"capacity range: limit_bytes %d is below the pool's block size, %d bytes, the smallest volume: raise the limit to at least %d", lim, block, block)
		case size > limit || size < uint64(req) || size < minBytes || size < fs.bytes:
			return 0, status.Errorf(codes.OutOfRange,
				"capacity range [%d, %d] bytes holds no whole number of the pool's %d-byte blocks, and volumes are whole blocks: raise the limit to at least %d",
				req, lim, block, thinpool.RoundUp(want, block))
		}
	}
	if size > 1<<63-1 {
		return 0, status.Errorf(codes.OutOfRange, "capacity range: required_bytes %d is too large", req)
	}
	return size, nil
}
