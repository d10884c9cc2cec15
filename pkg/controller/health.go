package controller

import (
	"context"
	"errors"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// Reasons of the health entries of an unhealthy volume.
const (
	// reasonPoolUnhealthy: the node's thin pool is failed, read-only or
	// needs a metadata check.
	reasonPoolUnhealthy = "PoolUnhealthy"
	// reasonPoolFull: the node's thin pool is out of data space: the
	// volume reads, but writes to blocks it has not written before fail
	// or wait until space is freed.
	reasonPoolFull = "PoolFull"
	// reasonThinDeviceFailed: the pool is fine but the volume's active
	// thin device reports failure, or its status cannot be read.
	reasonThinDeviceFailed = "ThinDeviceFailed"
)

// health turns a volume's condition, the error of the engine's Condition,
// into its CSI health: no entries when healthy; one DEGRADED entry when
// its pool is full (ErrNoSpace); one INACCESSIBLE entry when it is
// ErrUnhealthy. The entry's message is the engine's (what is wrong and
// what to do). poolUnhealthy says whether the pool itself is. Any other
// error, ErrNotFound included, is returned.
func health(id string, condition error, poolUnhealthy bool) (*csi.VolumeHealth, error) {
	h := &csi.VolumeHealth{VolumeId: id}
	switch {
	case condition == nil:
		return h, nil
	case errors.Is(condition, thinpool.ErrNoSpace):
		h.HealthStatuses = []*csi.VolumeHealth_VolumeHealthEntry{{
			Status:  csi.VolumeHealthErrorType_DEGRADED,
			Reason:  reasonPoolFull,
			Message: condition.Error(),
		}}
		return h, nil
	case !errors.Is(condition, thinpool.ErrUnhealthy):
		return nil, condition
	}
	reason := reasonThinDeviceFailed
	if poolUnhealthy {
		reason = reasonPoolUnhealthy
	}
	h.HealthStatuses = []*csi.VolumeHealth_VolumeHealthEntry{{
		Status:  csi.VolumeHealthErrorType_INACCESSIBLE,
		Reason:  reason,
		Message: condition.Error(),
	}}
	return h, nil
}

// condition is a volume's health from the engine.
func (s *Server) condition(id string) (*csi.VolumeHealth, error) {
	err := s.engine.Condition(id)
	// Tell a pool problem from the device's only when there is one.
	return health(id, err, err != nil && s.engine.Health() != nil)
}

// ControllerGetVolumeHealth reports whether a volume is healthy.
func (s *Server) ControllerGetVolumeHealth(ctx context.Context, req *csi.ControllerGetVolumeHealthRequest) (*csi.ControllerGetVolumeHealthResponse, error) {
	id := req.GetVolumeId()
	if err := required("volume_id", id); err != nil {
		return nil, err
	}
	if _, err := s.get(id, thinpool.KindVolume); err != nil {
		return nil, err
	}
	h, err := s.condition(id)
	if err != nil {
		return nil, err
	}
	klog.V(4).InfoS("ControllerGetVolumeHealth", "volumeID", id, "problems", len(h.HealthStatuses))
	return &csi.ControllerGetVolumeHealthResponse{VolumeHealth: h}, nil
}

// ControllerListVolumeHealth lists the volumes with a health problem, a
// page at a time. When the pool is unhealthy every volume is, with the
// pool's error, and the volumes are not looked at one by one.
func (s *Server) ControllerListVolumeHealth(ctx context.Context, req *csi.ControllerListVolumeHealthRequest) (*csi.ControllerListVolumeHealthResponse, error) {
	n, err := maxEntries(req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	poolErr := s.engine.Health()
	entries, next, err := page(s.lister(thinpool.KindVolume), req.GetStartingToken(), n,
		func(v *thinpool.Volume) (*csi.VolumeHealth, bool, error) {
			if poolErr != nil {
				h, err := health(v.ID, poolErr, true)
				return h, err == nil, err
			}
			h, err := s.condition(v.ID)
			switch {
			case errors.Is(err, thinpool.ErrNotFound):
				return nil, false, nil // deleted meanwhile
			case err != nil:
				return nil, false, err
			}
			return h, len(h.HealthStatuses) > 0, nil
		})
	if err != nil {
		return nil, err
	}
	klog.V(4).InfoS("ControllerListVolumeHealth", "token", req.GetStartingToken(), "max", n, "unhealthy", len(entries), "next", next)
	return &csi.ControllerListVolumeHealthResponse{Entries: entries, NextToken: next}, nil
}
