package thinpool

// defaultVolumeBytes is the size of a blank volume when the request asks
// for no size.
const defaultVolumeBytes = 1 << 30

// maxRequestBytes is the largest size a request may need, the largest a
// CSI field holds.
const maxRequestBytes = 1<<63 - 1

// RoundUp is size rounded up to whole blocks of block bytes, which must
// not be 0: the size a volume asked to hold size bytes gets, as a thin
// device maps whole pool blocks. The engine rounds every size it is given
// so with its own block size (BlockSizeBytes); the node service rounds
// with it to check an expansion against its limit before it asks. size
// may be anything up to the largest whole number of blocks a uint64 holds.
func RoundUp(size, block uint64) uint64 {
	return (size + block - 1) / block * block
}

// VolumeSize is the size CreateVolume gives a new volume for req, in
// whole blocks of block bytes: at least req.RequiredBytes, the source's
// sourceBytes (a copy may not be smaller than its source; 0 for a blank
// volume) and req.FSMinBytes (a smaller request is rounded up to it), and
// at most req.LimitBytes when it is set. With no required size the volume
// is its source's size, or 1 GiB for a blank one, kept under the limit. A
// range that holds no such size is ErrOutOfRange, with a message that
// says which limit to raise. It changes nothing and reads nothing, so any
// implementation of CreateVolume can size volumes as the engine does.
func VolumeSize(req CreateRequest, sourceBytes, block uint64) (uint64, error) {
	required, limit := req.RequiredBytes, req.LimitBytes
	if err := checkRange(required, limit); err != nil {
		return 0, err
	}
	if limit > 0 && sourceBytes > limit {
		return 0, outOfRangef("capacity range: the source is %d bytes and a copy cannot be smaller, but limit_bytes is %d: raise the limit to at least %d",
			sourceBytes, limit, sourceBytes)
	}
	want := required
	if want == 0 {
		want = sourceBytes
		if want == 0 {
			want = defaultVolumeBytes
			if limit > 0 && want > limit {
				want = limit
			}
		}
	}
	if limit > 0 && req.FSMinBytes > limit {
		return 0, outOfRangef("capacity range: mkfs.%s makes no filesystem under %d bytes, but limit_bytes is %d: raise the limit to at least %d, or use another filesystem",
			req.FSType, req.FSMinBytes, limit, RoundUp(req.FSMinBytes, block))
	}
	want = max(want, sourceBytes, req.FSMinBytes)
	if want > maxRequestBytes {
		return 0, outOfRangef("capacity range: required_bytes %d is too large", required)
	}
	size := RoundUp(want, block)
	if limit > 0 && size > limit {
		if required == 0 {
			size = limit / block * block // no size asked: the most whole blocks under the limit
		}
		switch {
		case size == 0:
			return 0, outOfRangef("capacity range: limit_bytes %d is below the pool's block size, %d bytes, the smallest volume: raise the limit to at least %d",
				limit, block, block)
		case size > limit || size < required || size < sourceBytes || size < req.FSMinBytes:
			return 0, outOfRangef("capacity range [%d, %d] bytes holds no whole number of the pool's %d-byte blocks, and volumes are whole blocks: raise the limit to at least %d",
				required, limit, block, RoundUp(want, block))
		}
	}
	if size > maxRequestBytes {
		return 0, outOfRangef("capacity range: required_bytes %d is too large", required)
	}
	return size, nil
}

// checkRange refuses a range whose limit is below its required size,
// which no volume, new or existing, lies in.
func checkRange(required, limit uint64) error {
	if limit > 0 && required > limit {
		return outOfRangef("capacity range: limit_bytes %d is below required_bytes %d: raise the limit or lower the request", limit, required)
	}
	return nil
}
