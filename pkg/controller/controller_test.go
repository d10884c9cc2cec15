package controller

import (
	"context"
	"math"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

func TestControllerGetCapabilities(t *testing.T) {
	resp, err := New(nil, "n1").ControllerGetCapabilities(context.Background(), &csi.ControllerGetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[csi.ControllerServiceCapability_RPC_Type]bool{}
	for _, c := range resp.GetCapabilities() {
		got[c.GetRpc().GetType()] = true
	}
	for _, c := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_LIST_VOLUMES,
		csi.ControllerServiceCapability_RPC_GET_CAPACITY,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
		csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
		csi.ControllerServiceCapability_RPC_GET_VOLUME,
		csi.ControllerServiceCapability_RPC_GET_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
		csi.ControllerServiceCapability_RPC_GET_VOLUME_HEALTH,
		csi.ControllerServiceCapability_RPC_LIST_VOLUME_HEALTH,
	} {
		if !got[c] {
			t.Errorf("%s is not advertised", c)
		}
	}
	// Expansion is the node's; nothing is attached or modified.
	for _, c := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_EXPAND_VOLUME,
		csi.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME,
		csi.ControllerServiceCapability_RPC_PUBLISH_READONLY,
		csi.ControllerServiceCapability_RPC_LIST_VOLUMES_PUBLISHED_NODES,
		csi.ControllerServiceCapability_RPC_MODIFY_VOLUME,
	} {
		if got[c] {
			t.Errorf("%s is advertised", c)
		}
	}
	if len(resp.GetCapabilities()) != len(got) {
		t.Errorf("capabilities repeat: %v", resp.GetCapabilities())
	}
}

func TestCapacity(t *testing.T) {
	const block = 64 * kib
	tests := []struct {
		available    uint64
		wantMaxBytes int64
	}{
		{0, 0},
		{block - 1, 0},
		{10 * gib, 10 * gib},
		{10*gib + 1000, 10 * gib}, // a required_bytes of all of it would round up past it
		{math.MaxUint64, math.MaxInt64 / block * block},
	}
	for _, tt := range tests {
		c := capacity(tt.available, block)
		if c.GetAvailableCapacity() != toInt64(tt.available) || c.GetMaximumVolumeSize().GetValue() != tt.wantMaxBytes ||
			c.GetMinimumVolumeSize().GetValue() != block {
			t.Errorf("capacity(%d) = %v, want maximum %d", tt.available, c, tt.wantMaxBytes)
		}
		if c.GetMaximumVolumeSize() == nil || c.GetMaximumVolumeSize().GetValue()%block != 0 {
			t.Errorf("capacity(%d): maximum %v is not whole blocks", tt.available, c.GetMaximumVolumeSize())
		}
	}
}

func TestToInt64(t *testing.T) {
	for in, want := range map[uint64]int64{0: 0, 1: 1, math.MaxInt64: math.MaxInt64, math.MaxInt64 + 1: math.MaxInt64, math.MaxUint64: math.MaxInt64} {
		if got := toInt64(in); got != want {
			t.Errorf("toInt64(%d) = %d, want %d", in, got, want)
		}
	}
}
