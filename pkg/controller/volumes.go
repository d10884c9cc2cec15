package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// createArgs are the checked fields of a CreateVolume request.
type createArgs struct {
	volumeContext map[string]string // the parameters the node needs
	sourceID      string            // a snapshot to restore or a volume to clone, or ""
	sourceKind    thinpool.Kind
	fsMinBytes    uint64 // the smallest device its filesystem is made on, 0 for block
	fsType        string // the filesystem that needs fsMinBytes
}

// parseCreateVolume checks a CreateVolume request as far as it can without
// the engine: name, capabilities, parameters, content source and
// accessibility requirements.
func parseCreateVolume(req *csi.CreateVolumeRequest, nodeID string) (createArgs, error) {
	var a createArgs
	if err := checkName("name", req.GetName()); err != nil {
		return a, err
	}
	if err := volcap.CheckAll(req.GetVolumeCapabilities()); err != nil {
		return a, status.Errorf(codes.InvalidArgument, "volume %q: %v", req.GetName(), err)
	}
	ctx, err := volcap.Parameters(req.GetParameters())
	if err != nil {
		return a, status.Errorf(codes.InvalidArgument, "volume %q: StorageClass %v", req.GetName(), err)
	}
	a.volumeContext = ctx
	a.fsMinBytes, a.fsType, err = volcap.CheckFormat(req.GetVolumeCapabilities(), ctx)
	if err != nil {
		return a, status.Errorf(codes.InvalidArgument, "volume %q: StorageClass %v", req.GetName(), err)
	}
	if len(req.GetMutableParameters()) > 0 {
		return a, status.Errorf(codes.InvalidArgument,
			"volume %q: csi-thin has no mutable parameters: create the PersistentVolumeClaim without a VolumeAttributesClass", req.GetName())
	}
	if src := req.GetVolumeContentSource(); src != nil {
		switch t := src.GetType().(type) {
		case *csi.VolumeContentSource_Snapshot:
			a.sourceID, a.sourceKind = t.Snapshot.GetSnapshotId(), thinpool.KindSnapshot
			if err := required("volume_content_source.snapshot.snapshot_id", a.sourceID); err != nil {
				return a, err
			}
		case *csi.VolumeContentSource_Volume:
			a.sourceID, a.sourceKind = t.Volume.GetVolumeId(), thinpool.KindVolume
			if err := required("volume_content_source.volume.volume_id", a.sourceID); err != nil {
				return a, err
			}
		default:
			return a, status.Errorf(codes.InvalidArgument, "volume %q: volume_content_source names neither a snapshot nor a volume", req.GetName())
		}
	}
	if err := checkTopology(req.GetAccessibilityRequirements(), nodeID); err != nil {
		return a, err
	}
	return a, nil
}

// sourceElsewhere says what to do when a restore's or a clone's source is
// not on the node asked to create it. The scheduler knows nothing of the
// source: a claim's first pod may be placed on any node with room, and the
// provisioner there asks that node. The answer is a final error, so the
// provisioner gives the claim back to the scheduler; this message is what
// the user reads in the claim's events meanwhile.
func sourceElsewhere(kind thinpool.Kind, nodeID string) string {
	// The label is there only with distributed snapshotting (the
	// csi-snapshotter on the nodes); a snapshot is on its source volume's
	// node in either placement.
	where := "its source volume's: its VolumeSnapshotContent's label snapshot.storage.kubernetes.io/managed-by, " +
		"or its source PersistentVolume's node affinity"
	if kind == thinpool.KindVolume {
		where = "its PersistentVolume's node affinity"
	}
	return fmt.Sprintf("csi-thin %ss live on one node, and node %q has none with that id: a restore or a clone is made on its "+
		"source's node, so give the claim's first pod the nodeSelector %s: <the source's node> (the %s's node is %s), "+
		"or check the source exists", kind, nodeID, volcap.TopologyKey, kind, where)
}

// CreateVolume creates a blank volume, or restores a snapshot, or clones a
// volume, on this node.
func (s *Server) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	a, err := parseCreateVolume(req, s.nodeID)
	if err != nil {
		return nil, err
	}
	required, limit, err := capacityRange(req.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	name := req.GetName()
	klog.V(4).InfoS("CreateVolume", "name", name, "requiredBytes", required, "limitBytes", limit, "source", a.sourceID)
	// The engine answers a retry: the volume of that name when it fits
	// the request (thinpool's Volume.Answers), even once grown or once
	// its source is gone, and AlreadyExists when it does not.
	v, err := s.engine.CreateVolume(ctx, thinpool.CreateRequest{
		Name: name, RequiredBytes: required, LimitBytes: limit, SourceID: a.sourceID, SourceKind: a.sourceKind,
		Parameters: a.volumeContext, FSMinBytes: a.fsMinBytes, FSType: a.fsType,
	})
	if errors.Is(err, thinpool.ErrSourceNotFound) {
		// Asked for this node's topology, the answer is the spec's
		// "unable to provision in accessible_topology": the source may be
		// on another node, and the external-provisioner gives the claim
		// back to the scheduler on ResourceExhausted only; on NotFound it
		// would retry here for ever.
		if hasTopology(req.GetAccessibilityRequirements()) {
			return nil, status.Errorf(codes.ResourceExhausted, "volume %q from %s %s: %v: %s",
				name, a.sourceKind, a.sourceID, err, sourceElsewhere(a.sourceKind, s.nodeID))
		}
		return nil, fmt.Errorf("volume %q from %s %s: %w: %s", name, a.sourceKind, a.sourceID, err, sourceElsewhere(a.sourceKind, s.nodeID))
	}
	if err != nil {
		return nil, err
	}
	klog.V(2).InfoS("Volume created", "name", name, "volumeID", v.ID, "bytes", v.SizeBytes, "source", v.SourceID, "node", s.nodeID)
	return &csi.CreateVolumeResponse{Volume: s.volume(v, req.GetVolumeContentSource())}, nil
}

// get returns the record with id if it is of the kind: an engine error
// as is, NotFound for a record of the other kind.
func (s *Server) get(id string, kind thinpool.Kind) (*thinpool.Volume, error) {
	v, err := s.engine.Get(id)
	if err != nil {
		return nil, err
	}
	if v.Kind != kind {
		return nil, notKind(v, kind)
	}
	return v, nil
}

// volume is the CSI form of a volume record. The content source is known
// only to CreateVolume, which echoes the request's.
func (s *Server) volume(v *thinpool.Volume, src *csi.VolumeContentSource) *csi.Volume {
	return &csi.Volume{
		VolumeId:           v.ID,
		CapacityBytes:      toInt64(v.SizeBytes),
		VolumeContext:      v.Parameters,
		ContentSource:      src,
		AccessibleTopology: []*csi.Topology{volcap.Topology(s.nodeID)},
	}
}

// DeleteVolume deletes a volume. Its snapshots and copies live on. An
// unknown id succeeds: the volume is gone.
func (s *Server) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if err := required("volume_id", id); err != nil {
		return nil, err
	}
	if err := s.delete(ctx, id, thinpool.KindVolume); err != nil {
		return nil, err
	}
	return &csi.DeleteVolumeResponse{}, nil
}

// delete deletes the record id if it is of the kind; one that does not
// exist, or is of the other kind, is left alone and is no error.
func (s *Server) delete(ctx context.Context, id string, kind thinpool.Kind) error {
	v, err := s.engine.Get(id)
	switch {
	case errors.Is(err, thinpool.ErrNotFound):
		klog.V(4).InfoS("Nothing to delete", "kind", kind, "id", id)
		return nil
	case err != nil:
		return fmt.Errorf("delete %s %s: %w", kind, id, err)
	case v.Kind != kind:
		klog.V(2).InfoS("Not deleting: the id is of another kind", "id", id, "want", kind, "kind", v.Kind)
		return nil
	}
	if err := s.engine.Delete(ctx, id); err != nil && !errors.Is(err, thinpool.ErrNotFound) {
		return err
	}
	klog.V(2).InfoS("Deleted", "kind", kind, "id", id, "name", v.Name)
	return nil
}

// ValidateVolumeCapabilities confirms capabilities and parameters when
// csi-thin supports every one of them.
func (s *Server) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	id := req.GetVolumeId()
	if err := required("volume_id", id); err != nil {
		return nil, err
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume_capabilities are required")
	}
	if _, err := s.get(id, thinpool.KindVolume); err != nil {
		return nil, err
	}
	resp := confirm(req)
	klog.V(4).InfoS("ValidateVolumeCapabilities", "volumeID", id, "confirmed", resp.Confirmed != nil, "message", resp.Message)
	return resp, nil
}

// confirm is ValidateVolumeCapabilities' answer for an existing volume:
// Confirmed when every capability and parameter is supported, else a
// message saying which is not.
func confirm(req *csi.ValidateVolumeCapabilitiesRequest) *csi.ValidateVolumeCapabilitiesResponse {
	if err := volcap.CheckAll(req.GetVolumeCapabilities()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}
	}
	ctx, err := volcap.Parameters(req.GetParameters())
	if err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}
	}
	if _, _, err := volcap.CheckFormat(req.GetVolumeCapabilities(), ctx); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}
	}
	if len(req.GetMutableParameters()) > 0 {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: "csi-thin has no mutable parameters"}
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}
}

// ListVolumes lists this node's volumes a page at a time.
func (s *Server) ListVolumes(ctx context.Context, req *csi.ListVolumesRequest) (*csi.ListVolumesResponse, error) {
	n, err := maxEntries(req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	entries, next, err := page(s.lister(thinpool.KindVolume), req.GetStartingToken(), n,
		func(v *thinpool.Volume) (*csi.ListVolumesResponse_Entry, bool, error) {
			return &csi.ListVolumesResponse_Entry{
				Volume: s.volume(v, nil),
				Status: &csi.ListVolumesResponse_VolumeStatus{},
			}, true, nil
		})
	if err != nil {
		return nil, err
	}
	klog.V(4).InfoS("ListVolumes", "token", req.GetStartingToken(), "max", n, "entries", len(entries), "next", next)
	return &csi.ListVolumesResponse{Entries: entries, NextToken: next}, nil
}

// ControllerGetVolume returns a volume.
func (s *Server) ControllerGetVolume(ctx context.Context, req *csi.ControllerGetVolumeRequest) (*csi.ControllerGetVolumeResponse, error) {
	id := req.GetVolumeId()
	if err := required("volume_id", id); err != nil {
		return nil, err
	}
	v, err := s.get(id, thinpool.KindVolume)
	if err != nil {
		return nil, err
	}
	return &csi.ControllerGetVolumeResponse{
		Volume: s.volume(v, nil),
		Status: &csi.ControllerGetVolumeResponse_VolumeStatus{},
	}, nil
}
