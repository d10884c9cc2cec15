package driver

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// Version is csi-thin's version, set at build time with
// -ldflags "-X github.com/csi-thin/csi-thin/pkg/driver.Version=...".
var Version = "dev"

// identity is the CSI identity service: of a node, whose SnapshotMetadata
// service is on with its listener, or of the forwarder, which serves the
// snapshot calls, SnapshotMetadata, or both.
type identity struct {
	csi.UnimplementedIdentityServer
	snapshotMetadata bool
	forwarder        bool
	snapshots        bool // the forwarder's snapshot and group snapshot relays
}

func (s *identity) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: volcap.DriverName, VendorVersion: Version}, nil
}

func (s *identity) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	service := func(t csi.PluginCapability_Service_Type) *csi.PluginCapability {
		return &csi.PluginCapability{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: t}}}
	}
	snapshotMetadata := service(csi.PluginCapability_Service_SNAPSHOT_METADATA_SERVICE)
	if s.forwarder {
		// It relays the nodes' snapshots as they are, each with its
		// node's accessible_topology, which the spec ties to the
		// snapshot accessibility capability. It returns no volumes.
		var caps []*csi.PluginCapability
		if s.snapshots {
			caps = append(caps, service(csi.PluginCapability_Service_CONTROLLER_SERVICE),
				service(csi.PluginCapability_Service_GROUP_CONTROLLER_SERVICE),
				service(csi.PluginCapability_Service_SNAPSHOT_ACCESSIBILITY_CONSTRAINTS))
		}
		if s.snapshotMetadata {
			caps = append(caps, snapshotMetadata)
		}
		return &csi.GetPluginCapabilitiesResponse{Capabilities: caps}, nil
	}
	caps := []*csi.PluginCapability{
		service(csi.PluginCapability_Service_CONTROLLER_SERVICE),
		// Group snapshots of volumes of one node.
		service(csi.PluginCapability_Service_GROUP_CONTROLLER_SERVICE),
		service(csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS),
		// A snapshot is usable from its node only: a restore shares its
		// blocks, in that node's pool. Every snapshot says so in its
		// accessible_topology.
		service(csi.PluginCapability_Service_SNAPSHOT_ACCESSIBILITY_CONSTRAINTS),
		{Type: &csi.PluginCapability_VolumeExpansion_{VolumeExpansion: &csi.PluginCapability_VolumeExpansion{
			Type: csi.PluginCapability_VolumeExpansion_ONLINE,
		}}},
	}
	if s.snapshotMetadata {
		caps = append(caps, snapshotMetadata)
	}
	return &csi.GetPluginCapabilitiesResponse{Capabilities: caps}, nil
}

// Probe says whether the plugin can serve, and it can once it is up: in
// every state of the pool (full, read-only, needs_check, failed) it still
// answers, deletes on a full pool included, and a restart would fix none
// of them. The pool's state is for NodeGetStorageHealth, the volume
// health calls and the metrics, so that a liveness probe never restarts
// the plugin over a full or damaged pool.
func (s *identity) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(true)}, nil
}
