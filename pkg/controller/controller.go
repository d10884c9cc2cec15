package controller

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// Server is the controller service of one node.
type Server struct {
	csi.UnimplementedControllerServer

	engine thinpool.Pool
	nodeID string
}

// New returns the controller service of the node nodeID over engine.
func New(engine thinpool.Pool, nodeID string) *Server {
	return &Server{engine: engine, nodeID: nodeID}
}

// capabilities are what the controller serves. Not EXPAND_VOLUME: the node
// service grows volumes (NodeExpandVolume), as the external-resizer has no
// per-node mode. Not PUBLISH_UNPUBLISH_VOLUME: nothing is attached.
var capabilities = []csi.ControllerServiceCapability_RPC_Type{
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
}

// ControllerGetCapabilities lists the controller's RPCs.
func (s *Server) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	resp := &csi.ControllerGetCapabilitiesResponse{}
	for _, c := range capabilities {
		resp.Capabilities = append(resp.Capabilities, &csi.ControllerServiceCapability{
			Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: c}},
		})
	}
	return resp, nil
}

// required refuses an empty request field with InvalidArgument.
func required(field, value string) error {
	if value == "" {
		return status.Errorf(codes.InvalidArgument, "%s is required", field)
	}
	return nil
}

// checkName refuses a missing name, or one with the control characters
// the CSI spec bans from names.
func checkName(field, name string) error {
	if err := required(field, name); err != nil {
		return err
	}
	for i, r := range name {
		if r <= 0x08 || r == 0x0b || r == 0x0c || (r >= 0x0e && r <= 0x1f) || (r >= 0x7f && r <= 0x9f) {
			return status.Errorf(codes.InvalidArgument, "%s %q holds the control character U+%04X at byte %d, which CSI names may not hold", field, name, r, i)
		}
	}
	return nil
}

// maxEntries checks a list request's max_entries.
func maxEntries(n int32) (int, error) {
	if n < 0 {
		return 0, status.Errorf(codes.InvalidArgument, "max_entries %d is negative: give 0 for every entry, or a positive page size", n)
	}
	return int(n), nil
}

// notKind is the NotFound of an id that names a record of the other kind:
// a snapshot where a volume is wanted, or the other way round.
func notKind(v *thinpool.Volume, want thinpool.Kind) error {
	return status.Errorf(codes.NotFound, "no %s has id %q: it is a %s's id; pass a %s id", want, v.ID, v.Kind, want)
}

// toInt64 converts a byte count for a CSI field, saturating.
func toInt64(n uint64) int64 {
	const maxInt64 = 1<<63 - 1
	if n > maxInt64 {
		return maxInt64
	}
	return int64(n)
}
