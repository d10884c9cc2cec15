package controller

import (
	"math"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

// The range goes to the engine as it is, which sizes the volume; only a
// negative field is the controller's to refuse.
func TestCapacityRange(t *testing.T) {
	tests := []struct {
		name          string
		r             *csi.CapacityRange
		req, lim      uint64
		invalidSaying string
	}{
		{name: "no range", r: nil},
		{name: "empty range", r: &csi.CapacityRange{}},
		{name: "required and limit", r: &csi.CapacityRange{RequiredBytes: gib, LimitBytes: 2 * gib}, req: gib, lim: 2 * gib},
		{name: "limit below required: the engine's to refuse", r: &csi.CapacityRange{RequiredBytes: 2 * gib, LimitBytes: gib}, req: 2 * gib, lim: gib},
		{name: "the largest", r: &csi.CapacityRange{RequiredBytes: math.MaxInt64}, req: math.MaxInt64},
		{name: "negative required", r: &csi.CapacityRange{RequiredBytes: -1},
			invalidSaying: "capacity range: required_bytes -1 and limit_bytes 0 may not be negative"},
		{name: "negative limit", r: &csi.CapacityRange{LimitBytes: -1},
			invalidSaying: "capacity range: required_bytes 0 and limit_bytes -1 may not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, lim, err := capacityRange(tt.r)
			if tt.invalidSaying != "" {
				if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != tt.invalidSaying {
					t.Fatalf("capacityRange = %v, want InvalidArgument %q", err, tt.invalidSaying)
				}
				return
			}
			if err != nil || req != tt.req || lim != tt.lim {
				t.Fatalf("capacityRange = %d, %d, %v; want %d, %d", req, lim, err, tt.req, tt.lim)
			}
		})
	}
}
