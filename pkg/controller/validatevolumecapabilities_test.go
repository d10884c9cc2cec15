package controller

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// TestValidateVolumeCapabilities asks about the volume vol and its
// snapshot snap: a volume not here is the spec's NOT_FOUND; for one here,
// what csi-thin supports is confirmed as asked, and what it does not is a
// message, not an error. The answer for each capability and parameter is
// TestConfirm's; requests refused before the engine is asked are in
// TestRequestValidation.
func TestValidateVolumeCapabilities(t *testing.T) {
	caps := []*csi.VolumeCapability{rwo, blockCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY)}
	tests := []struct {
		name   string
		setup  func(*fixture)
		id     string
		caps   []*csi.VolumeCapability
		params map[string]string
		code   codes.Code
		says   []string
		// when OK
		confirmed bool
		message   string // in the message when not confirmed
	}{
		{name: "supported", id: "vol", caps: caps, params: map[string]string{volcap.ParamFsType: "xfs"}, confirmed: true},
		{name: "supported while the pool is unhealthy", setup: func(f *fixture) { f.pool.SetHealth(errPoolUnhealthy) },
			id: "vol", caps: caps, confirmed: true},
		{name: "an access mode across nodes", id: "vol",
			caps:    append(slices.Clone(caps), mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY, "")),
			message: "MULTI_NODE_READER_ONLY"},
		{name: "a filesystem csi-thin does not make", id: "vol", caps: capsOf("btrfs"), message: "use ext4 or xfs"},
		{name: "an unknown parameter", id: "vol", caps: caps, params: map[string]string{"replicas": "3"}, message: "replicas"},

		{name: "a volume not here", id: "gone", caps: caps, code: codes.NotFound, says: []string{`"vol-unknown-gone"`}},
		{name: "a deleted volume", setup: func(f *fixture) { f.remove("vol") }, id: "vol", caps: caps, code: codes.NotFound},
		{name: "a snapshot's id", id: "snap", caps: caps, code: codes.NotFound, says: []string{"it is a snapshot's id; pass a volume id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.volume("vol", gib)
			f.snapshot("snap", "vol")
			if tt.setup != nil {
				tt.setup(f)
			}
			req := &csi.ValidateVolumeCapabilitiesRequest{VolumeId: f.id(tt.id), VolumeCapabilities: tt.caps, Parameters: tt.params,
				VolumeContext: map[string]string{volcap.ParamFsType: "xfs"}}
			resp, err := f.s.ValidateVolumeCapabilities(t.Context(), req)
			wantCode(t, err, tt.code, tt.says...)
			if err != nil {
				return
			}
			c := resp.GetConfirmed()
			if (c != nil) != tt.confirmed {
				t.Fatalf("confirmed %v, want %t (message %q)", c, tt.confirmed, resp.GetMessage())
			}
			if !tt.confirmed {
				if !strings.Contains(resp.GetMessage(), tt.message) {
					t.Errorf("message %q does not say %q", resp.GetMessage(), tt.message)
				}
				return
			}
			if len(c.GetVolumeCapabilities()) != len(tt.caps) || !maps.Equal(c.GetParameters(), tt.params) ||
				!maps.Equal(c.GetVolumeContext(), req.GetVolumeContext()) {
				t.Errorf("confirmed %v, want the request's capabilities, parameters and context", c)
			}
			for i, cp := range c.GetVolumeCapabilities() {
				if !proto.Equal(cp, tt.caps[i]) {
					t.Errorf("confirmed capability %d %v, asked %v", i, cp, tt.caps[i])
				}
			}
		})
	}
}
