package controller

import (
	"context"
	"errors"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// condition is a volume's health from the engine.
func (s *Server) condition(id string) (*csi.VolumeHealth, error) {
	return volcap.VolumeHealth(id, s.engine.Condition(id))
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
				h, err := volcap.VolumeHealth(v.ID, poolErr)
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
