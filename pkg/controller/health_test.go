package controller

import (
	"fmt"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

func TestHealth(t *testing.T) {
	poolErr := fmt.Errorf("%w: pool p: thin-pool is read-only: see the kernel log", thinpool.ErrUnhealthy)
	fullErr := fmt.Errorf("%w: pool p is out of data space (10 of 10 blocks used): delete volumes or snapshots", thinpool.ErrNoSpace)
	devErr := fmt.Errorf("%w: the thin device of vol-1 reports failure: see the kernel log (dmesg)", thinpool.ErrUnhealthy)
	notFound := fmt.Errorf("%w: no volume or snapshot has id %q", thinpool.ErrNotFound, "vol-1")
	other := fmt.Errorf("database is closed")

	tests := []struct {
		name          string
		condition     error
		poolUnhealthy bool
		wantErr       error
		reason        string
		status        csi.VolumeHealthErrorType
	}{
		{name: "healthy", condition: nil},
		{name: "pool unhealthy", condition: poolErr, poolUnhealthy: true, reason: reasonPoolUnhealthy, status: csi.VolumeHealthErrorType_INACCESSIBLE},
		{name: "pool full", condition: fullErr, poolUnhealthy: true, reason: reasonPoolFull, status: csi.VolumeHealthErrorType_DEGRADED},
		{name: "device failed", condition: devErr, reason: reasonThinDeviceFailed, status: csi.VolumeHealthErrorType_INACCESSIBLE},
		{name: "gone", condition: notFound, wantErr: notFound},
		{name: "cannot tell", condition: other, wantErr: other},
	}
	for _, tt := range tests {
		h, err := health("vol-1", tt.condition, tt.poolUnhealthy)
		if err != tt.wantErr {
			t.Errorf("%s: err %v, want %v", tt.name, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if h.GetVolumeId() != "vol-1" {
			t.Errorf("%s: volume id %q", tt.name, h.GetVolumeId())
		}
		if tt.reason == "" {
			if len(h.GetHealthStatuses()) != 0 {
				t.Errorf("%s: a healthy volume has entries %v", tt.name, h.GetHealthStatuses())
			}
			continue
		}
		if len(h.GetHealthStatuses()) != 1 {
			t.Errorf("%s: %d entries, want 1", tt.name, len(h.GetHealthStatuses()))
			continue
		}
		e := h.GetHealthStatuses()[0]
		if e.GetStatus() != tt.status || e.GetReason() != tt.reason || e.GetMessage() != tt.condition.Error() {
			t.Errorf("%s: entry %v, want %s %s with the engine's message", tt.name, e, tt.status, tt.reason)
		}
	}
}
