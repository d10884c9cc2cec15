package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// sidecarPrefix marks the parameters the csi-snapshotter adds with
// --extra-create-metadata: accepted, not kept.
const sidecarPrefix = "csi.storage.k8s.io/"

// checkSnapshotParameters refuses VolumeSnapshotClass parameters: csi-thin
// takes none, and a typo should not pass unnoticed.
func checkSnapshotParameters(params map[string]string) error {
	var unknown []string
	for k := range params {
		if !strings.HasPrefix(k, sidecarPrefix) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return status.Errorf(codes.InvalidArgument,
		"unknown snapshot parameters %s: csi-thin takes no VolumeSnapshotClass parameters; remove them", strings.Join(unknown, ", "))
}

// checkCreateSnapshot checks a CreateSnapshot request as far as it can
// without the engine.
func checkCreateSnapshot(req *csi.CreateSnapshotRequest, nodeID string) error {
	if err := checkName("name", req.GetName()); err != nil {
		return err
	}
	if err := required("source_volume_id", req.GetSourceVolumeId()); err != nil {
		return err
	}
	if err := checkSnapshotParameters(req.GetParameters()); err != nil {
		return err
	}
	return checkTopology(req.GetAccessibilityRequirements(), nodeID)
}

// CreateSnapshot takes a snapshot of a volume. It is ready at once: a
// thin snapshot shares the volume's blocks.
func (s *Server) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if err := checkCreateSnapshot(req, s.nodeID); err != nil {
		return nil, err
	}
	v, err := s.engine.CreateSnapshot(ctx, req.GetName(), req.GetSourceVolumeId(), nil)
	if err != nil {
		return nil, err
	}
	klog.V(2).InfoS("Snapshot created", "name", v.Name, "snapshotID", v.ID, "source", v.SourceID, "bytes", v.SizeBytes)
	return &csi.CreateSnapshotResponse{Snapshot: s.snapshot(v)}, nil
}

// snapshot is the CSI form of a snapshot record. A snapshot is usable
// from this node only: a volume restored from it shares its blocks, so it
// is made in this node's pool (SNAPSHOT_ACCESSIBILITY_CONSTRAINTS).
func (s *Server) snapshot(v *thinpool.Volume) *csi.Snapshot {
	return &csi.Snapshot{
		SizeBytes:          toInt64(v.SizeBytes),
		SnapshotId:         v.ID,
		SourceVolumeId:     v.SourceID,
		CreationTime:       timestamppb.New(v.CreatedAt),
		ReadyToUse:         true,
		AccessibleTopology: []*csi.Topology{volcap.Topology(s.nodeID)},
		// A member of a group snapshot is deleted with its group only.
		GroupSnapshotId: v.GroupID,
	}
}

// DeleteSnapshot deletes a snapshot; volumes restored from it live on. An
// unknown id succeeds: the snapshot is gone.
func (s *Server) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if err := required("snapshot_id", id); err != nil {
		return nil, err
	}
	if err := s.delete(ctx, id, thinpool.KindSnapshot); err != nil {
		return nil, err
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

// ListSnapshots lists snapshots a page at a time: all of them, those of a
// source volume (which may be deleted since), or one by id. A filter that
// matches nothing gives an empty list.
func (s *Server) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	n, err := maxEntries(req.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	source := req.GetSourceVolumeId()
	if id := req.GetSnapshotId(); id != "" {
		v, err := s.engine.Get(id)
		switch {
		case errors.Is(err, thinpool.ErrNotFound):
			return &csi.ListSnapshotsResponse{}, nil
		case err != nil:
			return nil, fmt.Errorf("list snapshot %s: %w", id, err)
		case v.Kind != thinpool.KindSnapshot || (source != "" && v.SourceID != source):
			return &csi.ListSnapshotsResponse{}, nil
		}
		return &csi.ListSnapshotsResponse{Entries: []*csi.ListSnapshotsResponse_Entry{{Snapshot: s.snapshot(v)}}}, nil
	}
	entries, next, err := page(s.lister(thinpool.KindSnapshot), req.GetStartingToken(), n,
		func(v *thinpool.Volume) (*csi.ListSnapshotsResponse_Entry, bool, error) {
			if source != "" && v.SourceID != source {
				return nil, false, nil
			}
			return &csi.ListSnapshotsResponse_Entry{Snapshot: s.snapshot(v)}, true, nil
		})
	if err != nil {
		return nil, err
	}
	klog.V(4).InfoS("ListSnapshots", "source", source, "token", req.GetStartingToken(), "max", n, "entries", len(entries), "next", next)
	return &csi.ListSnapshotsResponse{Entries: entries, NextToken: next}, nil
}

// GetSnapshot returns a snapshot.
func (s *Server) GetSnapshot(ctx context.Context, req *csi.GetSnapshotRequest) (*csi.GetSnapshotResponse, error) {
	id := req.GetSnapshotId()
	if err := required("snapshot_id", id); err != nil {
		return nil, err
	}
	v, err := s.get(id, thinpool.KindSnapshot)
	if err != nil {
		return nil, err
	}
	return &csi.GetSnapshotResponse{Snapshot: s.snapshot(v)}, nil
}
