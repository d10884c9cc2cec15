package controller

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// wantHealth fails the test unless h is the health of volume id with no
// problem (reason ""), or with one entry of the reason and the status
// csi-thin gives it.
func wantHealth(t *testing.T, h *csi.VolumeHealth, id, reason string) {
	t.Helper()
	if h.GetVolumeId() != id {
		t.Errorf("health of %s, want %s", h.GetVolumeId(), id)
	}
	if reason == "" {
		if len(h.GetHealthStatuses()) != 0 {
			t.Errorf("%s: problems %v, want none", id, h.GetHealthStatuses())
		}
		return
	}
	status := csi.VolumeHealthErrorType_INACCESSIBLE
	if reason == volcap.ReasonPoolFull {
		status = csi.VolumeHealthErrorType_DEGRADED // its blocks still read
	}
	if e := h.GetHealthStatuses(); len(e) != 1 || e[0].GetReason() != reason || e[0].GetStatus() != status || e[0].GetMessage() == "" {
		t.Errorf("%s: problems %v, want one %s %s with the engine's message", id, e, status, reason)
	}
}

// TestControllerGetVolumeHealth: the volume's condition from the engine,
// and the spec's NOT_FOUND for an id that names no volume here.
func TestControllerGetVolumeHealth(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(*fixture)
		id     string
		code   codes.Code
		says   []string
		reason string
	}{
		{name: "healthy", id: "vol"},
		{name: "active and healthy", setup: func(f *fixture) { f.activate("vol", false) }, id: "vol"},
		{name: "another volume's device failed", setup: func(f *fixture) { f.failDevice("other") }, id: "vol"},
		{name: "pool full", setup: func(f *fixture) { f.pool.SetHealth(errPoolFull) }, id: "vol", reason: volcap.ReasonPoolFull},
		{name: "pool unhealthy", setup: func(f *fixture) { f.pool.SetHealth(errPoolUnhealthy) }, id: "vol", reason: volcap.ReasonPoolUnhealthy},
		{name: "its device failed", setup: func(f *fixture) { f.failDevice("vol") }, id: "vol", reason: volcap.ReasonThinDeviceFailed},

		{name: "a volume not here", id: "gone", code: codes.NotFound},
		{name: "a snapshot's id", id: "snap", code: codes.NotFound, says: []string{"it is a snapshot's id; pass a volume id"}},
		{name: "deleted meanwhile", setup: func(f *fixture) {
			f.pool.FailNext("Condition", fmt.Errorf("%w: no volume or snapshot has id %q", thinpool.ErrNotFound, f.id("vol")))
		}, id: "vol", code: codes.NotFound},
		{name: "the condition cannot be told", setup: func(f *fixture) { f.pool.FailNext("Condition", errors.New("thin status: bad output")) },
			id: "vol", code: codes.Internal, says: []string{"bad output"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.volume("vol", gib)
			f.volume("other", gib)
			f.snapshot("snap", "vol")
			if tt.setup != nil {
				tt.setup(f)
			}
			resp, err := f.s.ControllerGetVolumeHealth(t.Context(), &csi.ControllerGetVolumeHealthRequest{VolumeId: f.id(tt.id)})
			wantCode(t, err, tt.code, tt.says...)
			if err != nil {
				return
			}
			wantHealth(t, resp.GetVolumeHealth(), f.id(tt.id), tt.reason)
		})
	}
}

// TestControllerListVolumeHealth lists the volumes v1 to v4 with a
// problem, a page at a time: the spec's SHOULD omits the healthy ones;
// while the pool is unhealthy or full every volume has its problem, and
// the volumes are not asked one by one. A token not given is ABORTED.
func TestControllerListVolumeHealth(t *testing.T) {
	failed := func(names ...string) func(*fixture) {
		return func(f *fixture) {
			for _, n := range names {
				f.failDevice(n)
			}
		}
	}
	all := []string{"v1", "v2", "v3", "v4"}
	tests := []struct {
		name       string
		setup      func(*fixture)
		max        int32
		token      string
		code       codes.Code
		says       []string
		want       []string // by the test's names
		reason     string
		conditions bool // the engine asked for each volume's condition
	}{
		{name: "all healthy", conditions: true},
		{name: "two devices failed", setup: failed("v2", "v4"), want: []string{"v2", "v4"}, reason: volcap.ReasonThinDeviceFailed, conditions: true},
		{name: "two devices failed, pages of 1", setup: failed("v2", "v4"), max: 1, want: []string{"v2", "v4"},
			reason: volcap.ReasonThinDeviceFailed, conditions: true},
		{name: "a volume deleted meanwhile: left out", setup: func(f *fixture) {
			failed("v1", "v3")(f)
			f.pool.FailNext("Condition", fmt.Errorf("%w: no volume or snapshot has id %q", thinpool.ErrNotFound, f.id("v1")))
		}, want: []string{"v3"}, reason: volcap.ReasonThinDeviceFailed, conditions: true},
		{name: "pool unhealthy: every volume", setup: func(f *fixture) { f.pool.SetHealth(errPoolUnhealthy) },
			want: all, reason: volcap.ReasonPoolUnhealthy},
		{name: "pool unhealthy, pages of 3", setup: func(f *fixture) { f.pool.SetHealth(errPoolUnhealthy) }, max: 3,
			want: all, reason: volcap.ReasonPoolUnhealthy},
		{name: "pool full: every volume", setup: func(f *fixture) { f.failDevice("v2"); f.pool.SetHealth(errPoolFull) },
			want: all, reason: volcap.ReasonPoolFull},

		{name: "a condition that cannot be told", setup: func(f *fixture) { f.pool.FailNext("Condition", errors.New("thin status: bad output")) },
			code: codes.Internal, says: []string{"bad output"}, conditions: true},
		{name: "a token it did not give", token: "x", code: codes.Aborted, says: []string{"without a starting_token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			for _, n := range all {
				f.volume(n, gib)
			}
			f.snapshot("s1", "v1")
			if tt.setup != nil {
				tt.setup(f)
			}
			got, err := walkList(t, tt.max, tt.token, func(token string) ([]string, string, error) {
				resp, err := f.s.ControllerListVolumeHealth(t.Context(), &csi.ControllerListVolumeHealthRequest{MaxEntries: tt.max, StartingToken: token})
				var ids []string
				for _, h := range resp.GetEntries() {
					ids = append(ids, h.GetVolumeId())
					wantHealth(t, h, h.GetVolumeId(), tt.reason)
				}
				return ids, resp.GetNextToken(), err
			})
			wantCode(t, err, tt.code, tt.says...)
			if asked := f.pool.Calls("Condition") > 0; asked != tt.conditions {
				t.Errorf("the engine asked for conditions: %t, want %t", asked, tt.conditions)
			}
			if err != nil {
				return
			}
			var want []string
			for _, n := range tt.want {
				want = append(want, f.id(n))
			}
			if !slices.Equal(got, want) {
				t.Fatalf("listed %v, want %v (%v)", got, want, tt.want)
			}
		})
	}
}
