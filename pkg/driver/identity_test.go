package driver

import (
	"context"
	"slices"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/protobuf/proto"

	"github.com/csi-thin/csi-thin/pkg/volcap"
)

func serviceCap(t csi.PluginCapability_Service_Type) *csi.PluginCapability {
	return &csi.PluginCapability{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: t}}}
}

func expansionCap(t csi.PluginCapability_VolumeExpansion_Type) *csi.PluginCapability {
	return &csi.PluginCapability{Type: &csi.PluginCapability_VolumeExpansion_{VolumeExpansion: &csi.PluginCapability_VolumeExpansion{Type: t}}}
}

// TestGetPluginCapabilities: what csi-thin claims, each once, and what it
// does not implement, never.
func TestGetPluginCapabilities(t *testing.T) {
	resp, err := (&identity{}).GetPluginCapabilities(t.Context(), &csi.GetPluginCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := resp.GetCapabilities()
	count := func(c *csi.PluginCapability) int {
		n := 0
		for _, g := range got {
			if proto.Equal(g, c) {
				n++
			}
		}
		return n
	}
	tests := []struct {
		name string
		cap  *csi.PluginCapability
		want bool
	}{
		{"the controller service", serviceCap(csi.PluginCapability_Service_CONTROLLER_SERVICE), true},
		{"volumes on one node", serviceCap(csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS), true},
		{"snapshots usable from one node", serviceCap(csi.PluginCapability_Service_SNAPSHOT_ACCESSIBILITY_CONSTRAINTS), true},
		{"online expansion", expansionCap(csi.PluginCapability_VolumeExpansion_ONLINE), true},
		{"no offline expansion", expansionCap(csi.PluginCapability_VolumeExpansion_OFFLINE), false},
		{"the group controller service", serviceCap(csi.PluginCapability_Service_GROUP_CONTROLLER_SERVICE), true},
		{"no snapshot metadata service", serviceCap(csi.PluginCapability_Service_SNAPSHOT_METADATA_SERVICE), false},
	}
	claimed := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := 0
			if tt.want {
				want = 1
			}
			if n := count(tt.cap); n != want {
				t.Errorf("%v advertised %d times, want %d; all: %v", tt.cap, n, want, got)
			}
		})
		if tt.want {
			claimed++
		}
	}
	if len(got) != claimed {
		t.Errorf("capabilities %v: %d, want the %d above", got, len(got), claimed)
	}
}

func TestGetPluginInfo(t *testing.T) {
	resp, err := (&identity{}).GetPluginInfo(t.Context(), &csi.GetPluginInfoRequest{})
	if err != nil || resp.GetName() != volcap.DriverName || resp.GetVendorVersion() != Version {
		t.Fatalf("GetPluginInfo = %v, %v; want %s %s", resp, err, volcap.DriverName, Version)
	}
}

var nodeServices = []csi.PluginCapability_Service_Type{
	csi.PluginCapability_Service_CONTROLLER_SERVICE,
	csi.PluginCapability_Service_GROUP_CONTROLLER_SERVICE,
	csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS,
	csi.PluginCapability_Service_SNAPSHOT_ACCESSIBILITY_CONSTRAINTS,
}

// forwarderServices are what a forwarder of snapshots claims: the
// services it relays, and the snapshots' topology it passes on; not
// volume topology, since it returns no volumes.
var forwarderServices = []csi.PluginCapability_Service_Type{
	csi.PluginCapability_Service_CONTROLLER_SERVICE,
	csi.PluginCapability_Service_GROUP_CONTROLLER_SERVICE,
	csi.PluginCapability_Service_SNAPSHOT_ACCESSIBILITY_CONSTRAINTS,
}

// TestPluginServices: the services each mode claims, in order.
func TestPluginServices(t *testing.T) {
	cases := []struct {
		name string
		id   identity
		want []csi.PluginCapability_Service_Type
	}{
		{"node", identity{}, nodeServices},
		{"node with snapshot metadata", identity{snapshotMetadata: true}, append(slices.Clip(nodeServices), csi.PluginCapability_Service_SNAPSHOT_METADATA_SERVICE)},
		{"forwarder of snapshot metadata", identity{forwarder: true, snapshotMetadata: true}, []csi.PluginCapability_Service_Type{csi.PluginCapability_Service_SNAPSHOT_METADATA_SERVICE}},
		{"forwarder of snapshots", identity{forwarder: true, snapshots: true}, forwarderServices},
		{"forwarder of both", identity{forwarder: true, snapshots: true, snapshotMetadata: true},
			append(slices.Clip(forwarderServices), csi.PluginCapability_Service_SNAPSHOT_METADATA_SERVICE)},
	}
	for _, c := range cases {
		resp, err := c.id.GetPluginCapabilities(context.Background(), &csi.GetPluginCapabilitiesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var got []csi.PluginCapability_Service_Type
		for _, pc := range resp.GetCapabilities() {
			if s := pc.GetService(); s != nil {
				got = append(got, s.GetType())
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: services %v, want %v", c.name, got, c.want)
		}
	}
}
