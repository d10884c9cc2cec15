package node

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
	"github.com/csi-thin/csi-thin/pkg/volcap"
)

var (
	errPoolFull      = fmt.Errorf("%w: pool is out of data space: delete volumes or grow the pool", thinpool.ErrNoSpace)
	errPoolUnhealthy = fmt.Errorf("%w: pool needs a metadata check: run thin_check", thinpool.ErrUnhealthy)
)

// TestNodeGetVolumeHealth: a volume's health is its condition in the
// engine, with the reason that says which part failed.
func TestNodeGetVolumeHealth(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(f *nodeFixture, id string)
		id     string // another id than the volume's
		want   codes.Code
		status csi.VolumeHealthErrorType // of the one entry; UNKNOWN: none
		reason string
	}{
		{name: "healthy, not active", want: codes.OK},
		{name: "healthy, active", setup: func(f *nodeFixture, id string) { activate(f, id, false) }, want: codes.OK},
		{
			name: "pool full", setup: func(f *nodeFixture, _ string) { f.pool.SetHealth(errPoolFull) },
			want: codes.OK, status: csi.VolumeHealthErrorType_DEGRADED, reason: volcap.ReasonPoolFull,
		},
		{
			name: "pool unhealthy", setup: func(f *nodeFixture, _ string) { f.pool.SetHealth(errPoolUnhealthy) },
			want: codes.OK, status: csi.VolumeHealthErrorType_INACCESSIBLE, reason: volcap.ReasonPoolUnhealthy,
		},
		{
			name: "thin device failed",
			setup: func(f *nodeFixture, id string) {
				activate(f, id, false)
				if err := f.pool.FailDevice(id); err != nil {
					f.t.Fatal(err)
				}
			},
			want: codes.OK, status: csi.VolumeHealthErrorType_INACCESSIBLE, reason: volcap.ReasonThinDeviceFailed,
		},
		{name: "unknown volume", id: "vol-missing", want: codes.NotFound},
		{
			name: "the condition cannot be read",
			setup: func(f *nodeFixture, _ string) {
				f.pool.FailNext("Condition", errors.New("read the state database: I/O error"))
			},
			want: codes.Internal,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newNodeFixture(t)
			id := f.volume("pv-1")
			if tt.setup != nil {
				tt.setup(f, id)
			}
			if tt.id != "" {
				id = tt.id
			}
			resp, err := f.s.NodeGetVolumeHealth(context.Background(), &csi.NodeGetVolumeHealthRequest{VolumeId: id})
			wantCSI(t, err, tt.want)
			if err != nil {
				return
			}
			if got := resp.GetVolumeHealth().GetVolumeId(); got != id {
				t.Errorf("health of %q, want %q", got, id)
			}
			entries := resp.GetVolumeHealth().GetHealthStatuses()
			if tt.status == csi.VolumeHealthErrorType_UNKNOWN_VOLUME_HEALTH_TYPE {
				if len(entries) != 0 {
					t.Errorf("entries %v, want none", entries)
				}
				return
			}
			if len(entries) != 1 || entries[0].GetStatus() != tt.status || entries[0].GetReason() != tt.reason || entries[0].GetMessage() == "" {
				t.Errorf("entries %v, want one %s %s with a message", entries, tt.status, tt.reason)
			}
		})
	}
}

// TestNodeGetStorageHealth: the node's pool is healthy with no entry, or
// degraded with the reason and what to do.
func TestNodeGetStorageHealth(t *testing.T) {
	tests := []struct {
		name   string
		health error
		reason string // of the one entry; "": none
	}{
		{"healthy", nil, ""},
		{"pool full", errPoolFull, volcap.ReasonPoolFull},
		{"pool unhealthy", errPoolUnhealthy, volcap.ReasonPoolUnhealthy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newNodeFixture(t)
			f.pool.SetHealth(tt.health)
			resp, err := f.s.NodeGetStorageHealth(context.Background(), &csi.NodeGetStorageHealthRequest{})
			if err != nil {
				t.Fatal(err)
			}
			entries := resp.GetBackendHealth()
			if tt.reason == "" {
				if len(entries) != 0 {
					t.Errorf("entries %v, want none", entries)
				}
				return
			}
			if len(entries) != 1 || entries[0].GetStatus() != csi.StorageHealthErrorType_STORAGE_DEGRADED ||
				entries[0].GetReason() != tt.reason || entries[0].GetMessage() != tt.health.Error() {
				t.Errorf("entries %v, want one STORAGE_DEGRADED %s saying %q", entries, tt.reason, tt.health)
			}
		})
	}
}
