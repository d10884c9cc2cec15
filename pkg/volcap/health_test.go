package volcap

import (
	"errors"
	"fmt"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// Errors as the engine's Condition and Health return them.
var (
	errPool     = fmt.Errorf("%w: pool p: thin-pool is read-only: see the kernel log", thinpool.ErrUnhealthy)
	errFull     = fmt.Errorf("%w: pool p is out of data space (10 of 10 blocks used): delete volumes or snapshots", thinpool.ErrNoSpace)
	errDevice   = fmt.Errorf("%w: %w: the thin device of vol-1 reports failure: see the kernel log (dmesg)", thinpool.ErrDeviceFailed, thinpool.ErrUnhealthy)
	errNotFound = fmt.Errorf("%w: no volume or snapshot has id %q", thinpool.ErrNotFound, "vol-1")
	errOther    = errors.New("database is closed")
)

func TestVolumeHealth(t *testing.T) {
	tests := []struct {
		name      string
		condition error
		wantErr   error
		status    csi.VolumeHealthErrorType
		reason    string // "": healthy, no entries
	}{
		{name: "healthy"},
		{name: "pool unhealthy", condition: errPool, status: csi.VolumeHealthErrorType_INACCESSIBLE, reason: ReasonPoolUnhealthy},
		{name: "pool full", condition: errFull, status: csi.VolumeHealthErrorType_DEGRADED, reason: ReasonPoolFull},
		{name: "thin device failed", condition: errDevice, status: csi.VolumeHealthErrorType_INACCESSIBLE, reason: ReasonThinDeviceFailed},
		{name: "gone", condition: errNotFound, wantErr: errNotFound},
		{name: "cannot tell", condition: errOther, wantErr: errOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := VolumeHealth("vol-1", tt.condition)
			if err != tt.wantErr {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if h.GetVolumeId() != "vol-1" {
				t.Errorf("volume id %q, want vol-1", h.GetVolumeId())
			}
			entries := h.GetHealthStatuses()
			if tt.reason == "" {
				if len(entries) != 0 {
					t.Fatalf("a healthy volume has entries %v", entries)
				}
				return
			}
			if len(entries) != 1 {
				t.Fatalf("%d entries, want 1", len(entries))
			}
			if e := entries[0]; e.GetStatus() != tt.status || e.GetReason() != tt.reason || e.GetMessage() != tt.condition.Error() {
				t.Errorf("entry %v, want %s %s with the engine's message", e, tt.status, tt.reason)
			}
		})
	}
}

func TestStorageHealth(t *testing.T) {
	tests := []struct {
		name   string
		health error
		reason string // "": healthy, no entries
	}{
		{name: "healthy"},
		{name: "pool full", health: errFull, reason: ReasonPoolFull},
		{name: "pool unhealthy", health: errPool, reason: ReasonPoolUnhealthy},
		{name: "status unreadable", health: errOther, reason: ReasonPoolUnhealthy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries := StorageHealth(tt.health)
			if tt.reason == "" {
				if len(entries) != 0 {
					t.Fatalf("a healthy pool has entries %v", entries)
				}
				return
			}
			if len(entries) != 1 {
				t.Fatalf("%d entries, want 1", len(entries))
			}
			e := entries[0]
			if e.GetStatus() != csi.StorageHealthErrorType_STORAGE_DEGRADED || e.GetReason() != tt.reason || e.GetMessage() != tt.health.Error() {
				t.Errorf("entry %v, want STORAGE_DEGRADED %s with the engine's message", e, tt.reason)
			}
		})
	}
}
