package volcap

import (
	"errors"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// Reasons of the health entries csi-thin reports, for a volume and for the
// node's storage.
const (
	// ReasonPoolFull: the node's thin pool is out of data space: its
	// volumes read, but writes to blocks not written before fail or wait
	// until space is freed.
	ReasonPoolFull = "PoolFull"
	// ReasonPoolUnhealthy: the node's thin pool is failed, read-only or
	// needs a metadata check, or its status cannot be read.
	ReasonPoolUnhealthy = "PoolUnhealthy"
	// ReasonThinDeviceFailed: the pool is fine but the volume's active
	// thin device reports failure, or its status cannot be read.
	ReasonThinDeviceFailed = "ThinDeviceFailed"
)

// VolumeHealth turns a volume's condition, the error of the engine's
// Condition (or its pool's Health), into the volume's CSI health: no
// entries when it is healthy; one DEGRADED entry while its pool is full;
// one INACCESSIBLE entry when its pool or its thin device has failed. The
// entry's message is the engine's, which says what is wrong and what to
// do. Any other error, ErrNotFound included, is returned.
func VolumeHealth(id string, condition error) (*csi.VolumeHealth, error) {
	h := &csi.VolumeHealth{VolumeId: id}
	status := csi.VolumeHealthErrorType_INACCESSIBLE
	var reason string
	switch {
	case condition == nil:
		return h, nil
	case errors.Is(condition, thinpool.ErrNoSpace):
		status, reason = csi.VolumeHealthErrorType_DEGRADED, ReasonPoolFull
	case errors.Is(condition, thinpool.ErrDeviceFailed): // before ErrUnhealthy, which it also is
		reason = ReasonThinDeviceFailed
	case errors.Is(condition, thinpool.ErrUnhealthy):
		reason = ReasonPoolUnhealthy
	default:
		return nil, condition
	}
	h.HealthStatuses = []*csi.VolumeHealth_VolumeHealthEntry{{Status: status, Reason: reason, Message: condition.Error()}}
	return h, nil
}

// StorageHealth turns the pool's health, the error of the engine's Health,
// into the node's storage health: no entries while the pool is healthy;
// one STORAGE_DEGRADED entry while it is not, since the volumes already on
// it may still be read: ReasonPoolFull while it is out of data space
// (deletes still work), ReasonPoolUnhealthy otherwise. The entry's message
// is the engine's.
func StorageHealth(health error) []*csi.NodeGetStorageHealthResponse_StorageBackendHealth {
	if health == nil {
		return nil
	}
	reason := ReasonPoolUnhealthy
	if errors.Is(health, thinpool.ErrNoSpace) {
		reason = ReasonPoolFull
	}
	return []*csi.NodeGetStorageHealthResponse_StorageBackendHealth{{
		Status:  csi.StorageHealthErrorType_STORAGE_DEGRADED,
		Reason:  reason,
		Message: health.Error(),
	}}
}
