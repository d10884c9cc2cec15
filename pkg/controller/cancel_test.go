package controller

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// TestEndedContext: a request whose context has ended before the handler
// asks the engine for a change is CANCELLED, or DEADLINE_EXCEEDED, and
// changes nothing. A delete of an id not here needs no change, so it
// succeeds.
func TestEndedContext(t *testing.T) {
	past, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	t.Cleanup(cancel)
	tests := []struct {
		name string
		ctx  context.Context
		call func(ctx context.Context, f *fixture) error
		code codes.Code
	}{
		{name: "CreateVolume", ctx: cancelled(), call: func(ctx context.Context, f *fixture) error {
			_, err := f.s.CreateVolume(ctx, createRequest(f, nil))
			return err
		}, code: codes.Canceled},
		{name: "CreateVolume past its deadline", ctx: past, call: func(ctx context.Context, f *fixture) error {
			_, err := f.s.CreateVolume(ctx, createRequest(f, func(f *fixture, r *csi.CreateVolumeRequest) {
				r.VolumeContentSource = snapshotSource(f.id("snap"))
			}))
			return err
		}, code: codes.DeadlineExceeded},
		{name: "DeleteVolume", ctx: cancelled(), call: func(ctx context.Context, f *fixture) error {
			_, err := f.s.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: f.id("vol")})
			return err
		}, code: codes.Canceled},
		{name: "DeleteVolume of an id not here", ctx: cancelled(), call: func(ctx context.Context, f *fixture) error {
			_, err := f.s.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "vol-gone"})
			return err
		}},
		{name: "CreateSnapshot", ctx: cancelled(), call: func(ctx context.Context, f *fixture) error {
			_, err := f.s.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "snap-new", SourceVolumeId: f.id("vol")})
			return err
		}, code: codes.Canceled},
		{name: "DeleteSnapshot", ctx: cancelled(), call: func(ctx context.Context, f *fixture) error {
			_, err := f.s.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: f.id("snap")})
			return err
		}, code: codes.Canceled},
		{name: "DeleteSnapshot past its deadline", ctx: past, call: func(ctx context.Context, f *fixture) error {
			_, err := f.s.DeleteSnapshot(ctx, &csi.DeleteSnapshotRequest{SnapshotId: f.id("snap")})
			return err
		}, code: codes.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.volume("vol", gib)
			f.snapshot("snap", "vol")
			vols, snaps := f.records(thinpool.KindVolume), f.records(thinpool.KindSnapshot)
			wantCode(t, tt.call(tt.ctx, f), tt.code)
			if got := f.records(thinpool.KindVolume); !slices.Equal(got, vols) {
				t.Errorf("volumes %v after, %v before", got, vols)
			}
			if got := f.records(thinpool.KindSnapshot); !slices.Equal(got, snaps) {
				t.Errorf("snapshots %v after, %v before", got, snaps)
			}
		})
	}
}
