package driver

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// infoFor names the method of a CSI request as grpc does.
func infoFor(req any) *grpc.UnaryServerInfo {
	m := strings.TrimSuffix(strings.TrimPrefix(fmt.Sprintf("%T", req), "*csi."), "Request")
	return &grpc.UnaryServerInfo{FullMethod: "/csi.v1.Test/" + m}
}

// hold runs req through f with a handler that blocks, and returns once
// the handler is running. release lets the handler return and gives the
// call's error.
func hold(t *testing.T, f *inflight, req any) (release func() error) {
	t.Helper()
	entered, unblock, errc := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		_, err := f.interceptor(context.Background(), req, infoFor(req), func(context.Context, any) (any, error) {
			close(entered)
			<-unblock
			return "first", nil
		})
		errc <- err
	}()
	select {
	case <-entered:
	case err := <-errc:
		t.Fatalf("the first call never reached its handler: %v", err)
	}
	return func() error { close(unblock); return <-errc }
}

// run runs req through f with a handler that returns at once, and says
// whether the handler ran.
func run(f *inflight, req any) (ran bool, err error) {
	_, err = f.interceptor(context.Background(), req, infoFor(req), func(context.Context, any) (any, error) {
		ran = true
		return "ok", nil
	})
	return ran, err
}

func TestInflightKey(t *testing.T) {
	tracked := []struct {
		req  any
		want key
	}{
		{&csi.CreateVolumeRequest{Name: "pvc-1"}, key{"volume name", "pvc-1"}},
		{&csi.CreateSnapshotRequest{Name: "snap-1", SourceVolumeId: "v1"}, key{"snapshot name", "snap-1"}},
		{&csi.DeleteVolumeRequest{VolumeId: "v1"}, key{"volume", "v1"}},
		{&csi.DeleteSnapshotRequest{SnapshotId: "s1"}, key{"snapshot", "s1"}},
		{&csi.NodeStageVolumeRequest{VolumeId: "v1", StagingTargetPath: "/staging"}, key{"volume", "v1"}},
		{&csi.NodeUnstageVolumeRequest{VolumeId: "v1", StagingTargetPath: "/staging"}, key{"volume", "v1"}},
		{&csi.NodePublishVolumeRequest{VolumeId: "v1", TargetPath: "/t1"}, key{"volume", "v1"}},
		{&csi.NodeUnpublishVolumeRequest{VolumeId: "v1", TargetPath: "/t2"}, key{"volume", "v1"}},
		{&csi.NodeExpandVolumeRequest{VolumeId: "v1", VolumePath: "/t1"}, key{"volume", "v1"}},
		{&csi.CreateVolumeGroupSnapshotRequest{Name: "g1", SourceVolumeIds: []string{"v1"}}, key{"group snapshot name", "g1"}},
		{&csi.DeleteVolumeGroupSnapshotRequest{GroupSnapshotId: "grp-1"}, key{"group snapshot", "grp-1"}},
	}
	for _, c := range tracked {
		t.Run(fmt.Sprintf("%T", c.req), func(t *testing.T) {
			if got, ok := keyOf(c.req); !ok || got != c.want {
				t.Errorf("key %v %t, want %v", got, ok, c.want)
			}
			// Without its id or name the call is passed through, for
			// the service to refuse.
			empty := reflect.New(reflect.TypeOf(c.req).Elem()).Interface()
			if got, ok := keyOf(empty); ok {
				t.Errorf("an empty request has key %v", got)
			}
		})
	}
	reads := []any{
		&csi.NodeGetVolumeStatsRequest{VolumeId: "v1", VolumePath: "/t1"},
		&csi.NodeGetVolumeHealthRequest{VolumeId: "v1"},
		&csi.NodeGetCapabilitiesRequest{},
		&csi.ControllerGetVolumeRequest{VolumeId: "v1"},
		&csi.ValidateVolumeCapabilitiesRequest{VolumeId: "v1"},
		&csi.GetSnapshotRequest{SnapshotId: "s1"},
		&csi.GetVolumeGroupSnapshotRequest{GroupSnapshotId: "grp-1"},
		&csi.ListVolumesRequest{},
		&csi.GetCapacityRequest{},
		&csi.ProbeRequest{},
		nil,
	}
	for _, req := range reads {
		if got, ok := keyOf(req); ok {
			t.Errorf("%T is tracked as %v: it changes nothing", req, got)
		}
	}
}

func TestInflightSecondCall(t *testing.T) {
	cases := []struct {
		name          string
		first, second any
		want          codes.Code
	}{
		{"publish to another target while unstaging",
			&csi.NodeUnstageVolumeRequest{VolumeId: "v1", StagingTargetPath: "/staging"},
			&csi.NodePublishVolumeRequest{VolumeId: "v1", TargetPath: "/t2"}, codes.Aborted},
		{"publish to another target while publishing",
			&csi.NodePublishVolumeRequest{VolumeId: "v1", TargetPath: "/t1"},
			&csi.NodePublishVolumeRequest{VolumeId: "v1", TargetPath: "/t2"}, codes.Aborted},
		{"unstage while staging",
			&csi.NodeStageVolumeRequest{VolumeId: "v1", StagingTargetPath: "/staging"},
			&csi.NodeUnstageVolumeRequest{VolumeId: "v1", StagingTargetPath: "/staging"}, codes.Aborted},
		{"expand while publishing",
			&csi.NodePublishVolumeRequest{VolumeId: "v1", TargetPath: "/t1"},
			&csi.NodeExpandVolumeRequest{VolumeId: "v1", VolumePath: "/t1"}, codes.Aborted},
		{"delete while staging",
			&csi.NodeStageVolumeRequest{VolumeId: "v1", StagingTargetPath: "/staging"},
			&csi.DeleteVolumeRequest{VolumeId: "v1"}, codes.Aborted},
		{"create of the same name",
			&csi.CreateVolumeRequest{Name: "pvc-1"}, &csi.CreateVolumeRequest{Name: "pvc-1"}, codes.Aborted},
		{"snapshot of the same name",
			&csi.CreateSnapshotRequest{Name: "snap-1", SourceVolumeId: "v1"},
			&csi.CreateSnapshotRequest{Name: "snap-1", SourceVolumeId: "v2"}, codes.Aborted},
		{"delete of the same snapshot",
			&csi.DeleteSnapshotRequest{SnapshotId: "s1"}, &csi.DeleteSnapshotRequest{SnapshotId: "s1"}, codes.Aborted},
		{"group snapshot of the same name",
			&csi.CreateVolumeGroupSnapshotRequest{Name: "g1", SourceVolumeIds: []string{"v1"}},
			&csi.CreateVolumeGroupSnapshotRequest{Name: "g1", SourceVolumeIds: []string{"v2"}}, codes.Aborted},
		{"delete of the same group snapshot",
			&csi.DeleteVolumeGroupSnapshotRequest{GroupSnapshotId: "grp-1"}, &csi.DeleteVolumeGroupSnapshotRequest{GroupSnapshotId: "grp-1"}, codes.Aborted},
		{"group snapshot with the name of a snapshot being created",
			&csi.CreateSnapshotRequest{Name: "x", SourceVolumeId: "v1"},
			&csi.CreateVolumeGroupSnapshotRequest{Name: "x", SourceVolumeIds: []string{"v1"}}, codes.OK},

		{"stage of another volume",
			&csi.NodeStageVolumeRequest{VolumeId: "v1", StagingTargetPath: "/staging"},
			&csi.NodeStageVolumeRequest{VolumeId: "v2", StagingTargetPath: "/staging"}, codes.OK},
		{"create of another name",
			&csi.CreateVolumeRequest{Name: "pvc-1"}, &csi.CreateVolumeRequest{Name: "pvc-2"}, codes.OK},
		{"snapshot with the name of a volume being created",
			&csi.CreateVolumeRequest{Name: "x"}, &csi.CreateSnapshotRequest{Name: "x", SourceVolumeId: "v1"}, codes.OK},
		{"create named like the id of a volume being deleted",
			&csi.DeleteVolumeRequest{VolumeId: "x"}, &csi.CreateVolumeRequest{Name: "x"}, codes.OK},
		{"delete of a snapshot with the id of a volume being staged",
			&csi.NodeStageVolumeRequest{VolumeId: "x", StagingTargetPath: "/staging"},
			&csi.DeleteSnapshotRequest{SnapshotId: "x"}, codes.OK},
		{"stats of the volume being staged",
			&csi.NodeStageVolumeRequest{VolumeId: "v1", StagingTargetPath: "/staging"},
			&csi.NodeGetVolumeStatsRequest{VolumeId: "v1", VolumePath: "/t1"}, codes.OK},
		{"health of the volume being deleted",
			&csi.DeleteVolumeRequest{VolumeId: "v1"}, &csi.ControllerGetVolumeRequest{VolumeId: "v1"}, codes.OK},
		{"a second call without a volume id",
			&csi.NodeStageVolumeRequest{StagingTargetPath: "/staging"},
			&csi.NodeStageVolumeRequest{StagingTargetPath: "/staging"}, codes.OK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var f inflight
			release := hold(t, &f, c.first)
			// The second returns while the first is still in its handler:
			// refused, or run alongside it.
			ran, err := run(&f, c.second)
			if status.Code(err) != c.want || ran != (c.want == codes.OK) {
				t.Errorf("while the first is in flight: ran %t, %v; want %v", ran, err, c.want)
			}
			holder := methodName(infoFor(c.first).FullMethod)
			if msg := status.Convert(err).Message(); status.Code(err) == codes.Aborted && !strings.Contains(msg, holder) {
				t.Errorf("refusal %q does not name %s, the call in flight", msg, holder)
			}
			if err := release(); err != nil {
				t.Fatalf("first call: %v", err)
			}
			if ran, err := run(&f, c.second); !ran || err != nil {
				t.Errorf("retry after the first returned: ran %t, %v", ran, err)
			}
			if len(f.keys) != 0 {
				t.Errorf("keys left after every call returned: %v", f.keys)
			}
		})
	}
}

func TestInflightReleasesTheKey(t *testing.T) {
	req := &csi.NodeStageVolumeRequest{VolumeId: "v1", StagingTargetPath: "/staging"}
	cases := []struct {
		name    string
		handler grpc.UnaryHandler
	}{
		{"handler error", func(context.Context, any) (any, error) { return nil, errors.New("mount failed") }},
		{"handler status", func(context.Context, any) (any, error) { return nil, status.Error(codes.Internal, "mkfs failed") }},
		{"handler panic", func(context.Context, any) (any, error) { panic("handler panicked") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var f inflight
			func() {
				defer func() { _ = recover() }()
				if _, err := f.interceptor(context.Background(), req, infoFor(req), c.handler); err == nil {
					t.Error("the handler's failure was lost")
				}
			}()
			if ran, err := run(&f, req); !ran || err != nil {
				t.Errorf("the next call on the volume: ran %t, %v", ran, err)
			}
			if len(f.keys) != 0 {
				t.Errorf("keys left: %v", f.keys)
			}
		})
	}
}
