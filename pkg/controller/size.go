package controller

import (
	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// capacityRange is a request's capacity range as the engine takes it
// (nil or zero fields: unset): its required and limit bytes, which may not
// be negative. The engine picks the size in it (thinpool.VolumeSize).
func capacityRange(r *csi.CapacityRange) (required, limit uint64, err error) {
	req, lim := r.GetRequiredBytes(), r.GetLimitBytes()
	if req < 0 || lim < 0 {
		return 0, 0, status.Errorf(codes.InvalidArgument, "capacity range: required_bytes %d and limit_bytes %d may not be negative", req, lim)
	}
	return uint64(req), uint64(lim), nil
}
