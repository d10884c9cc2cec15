package snapmeta

import (
	"context"
	"fmt"
	"math"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/pkg/csierr"
	"github.com/csi-thin/csi-thin/pkg/forward"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// Server is a node's SnapshotMetadata service over its pool's snapshots.
type Server struct {
	csi.UnimplementedSnapshotMetadataServer
	source Source
	node   string
	style  csi.BlockMetadataType
}

// NewServer serves node's snapshots from source, in style: FIXED_LENGTH
// (one entry per pool block) or VARIABLE_LENGTH (adjacent blocks merged
// into one entry).
func NewServer(source Source, node string, style csi.BlockMetadataType) (*Server, error) {
	if style != csi.BlockMetadataType_FIXED_LENGTH && style != csi.BlockMetadataType_VARIABLE_LENGTH {
		return nil, fmt.Errorf("block metadata style %v: use FIXED_LENGTH or VARIABLE_LENGTH", style)
	}
	return &Server{source: source, node: node, style: style}, nil
}

// GetMetadataAllocated streams the data ranges snapshot_id maps. Its
// errors, the engine's included, carry their CSI codes (pkg/csierr).
func (s *Server) GetMetadataAllocated(req *csi.GetMetadataAllocatedRequest, stream csi.SnapshotMetadata_GetMetadataAllocatedServer) error {
	return csierr.Status(s.allocated(req, stream))
}

// GetMetadataDelta streams the data ranges that differ between two
// snapshots of one volume, with its errors' CSI codes.
func (s *Server) GetMetadataDelta(req *csi.GetMetadataDeltaRequest, stream csi.SnapshotMetadata_GetMetadataDeltaServer) error {
	return csierr.Status(s.delta(req, stream))
}

func (s *Server) allocated(req *csi.GetMetadataAllocatedRequest, stream csi.SnapshotMetadata_GetMetadataAllocatedServer) error {
	ctx := stream.Context()
	if req.GetSnapshotId() == "" {
		return status.Error(codes.InvalidArgument, "snapshot_id is required")
	}
	bm, err := s.blockMap(ctx, req.GetSnapshotId())
	if err != nil {
		return err
	}
	first, err := firstBlock(req.GetStartingOffset(), bm)
	if err != nil {
		return err
	}
	if err := s.found(stream); err != nil {
		return err
	}
	p := newPager(ctx, s.style, bm, first, req.GetMaxResults(), func(b []*csi.BlockMetadata) error {
		return stream.Send(&csi.GetMetadataAllocatedResponse{BlockMetadataType: s.style, VolumeCapacityBytes: int64(bm.VolumeBytes), BlockMetadata: b})
	})
	klog.V(4).InfoS("Reading allocated blocks", "snapshot", req.GetSnapshotId(), "fromBlock", first, "blockBytes", bm.BlockBytes)
	if err := s.source.Allocated(ctx, req.GetSnapshotId(), first, p.add); err != nil {
		return err
	}
	return p.finish()
}

func (s *Server) delta(req *csi.GetMetadataDeltaRequest, stream csi.SnapshotMetadata_GetMetadataDeltaServer) error {
	ctx := stream.Context()
	baseID, targetID := req.GetBaseSnapshotId(), req.GetTargetSnapshotId()
	if baseID == "" || targetID == "" {
		return status.Error(codes.InvalidArgument, "base_snapshot_id and target_snapshot_id are both required")
	}
	if baseID == targetID {
		return status.Errorf(codes.InvalidArgument, "base_snapshot_id and target_snapshot_id are both %q: the target must be a later snapshot of the base's volume", baseID)
	}
	base, err := s.blockMap(ctx, baseID)
	if err != nil {
		return err
	}
	target, err := s.blockMap(ctx, targetID)
	if err != nil {
		return err
	}
	if base.VolumeID != target.VolumeID {
		return status.Errorf(codes.InvalidArgument, "base snapshot %s is of volume %s and target snapshot %s of volume %s: a delta is between two snapshots of the same volume", baseID, base.VolumeID, targetID, target.VolumeID)
	}
	if !base.CreatedAt.Before(target.CreatedAt) {
		return status.Errorf(codes.InvalidArgument, "base snapshot %s (cut %s) is not older than target snapshot %s (cut %s): swap them", baseID, base.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000000Z"), targetID, target.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000000Z"))
	}
	first, err := firstBlock(req.GetStartingOffset(), target)
	if err != nil {
		return err
	}
	if err := s.found(stream); err != nil {
		return err
	}
	p := newPager(ctx, s.style, target, first, req.GetMaxResults(), func(b []*csi.BlockMetadata) error {
		return stream.Send(&csi.GetMetadataDeltaResponse{BlockMetadataType: s.style, VolumeCapacityBytes: int64(target.VolumeBytes), BlockMetadata: b})
	})
	klog.V(4).InfoS("Reading changed blocks", "base", baseID, "target", targetID, "fromBlock", first, "blockBytes", target.BlockBytes)
	if err := s.source.Delta(ctx, baseID, targetID, first, p.add); err != nil {
		return err
	}
	return p.finish()
}

// blockMap is snapshot id's block map, checked: NotFound names the node,
// since the snapshot may be on another one.
func (s *Server) blockMap(ctx context.Context, id string) (thinpool.BlockMap, error) {
	bm, err := s.source.BlockMap(ctx, id)
	if err != nil {
		if csierr.Code(err) == codes.NotFound {
			return bm, status.Errorf(codes.NotFound, "snapshot %s is not on node %s: %v", id, s.node, err)
		}
		return bm, err
	}
	if bm.BlockBytes == 0 || bm.VolumeBytes > math.MaxInt64 {
		return bm, fmt.Errorf("snapshot %s: block map with block size %d and size %d", id, bm.BlockBytes, bm.VolumeBytes)
	}
	return bm, nil
}

// found sends the response header naming this node (forward.NodeHeader).
func (s *Server) found(stream grpc.ServerStream) error {
	return stream.SendHeader(metadata.Pairs(forward.NodeHeader, s.node))
}

// firstBlock is the block holding starting_offset. An offset at the
// volume's end is valid and yields no entries: it is where a caller
// resumes after a stream broken after its last entry, the one reaching
// the end. A negative one, or one beyond the end, is OutOfRange, as the
// spec says for both.
func firstBlock(offset int64, bm thinpool.BlockMap) (uint64, error) {
	if offset < 0 {
		return 0, status.Errorf(codes.OutOfRange, "starting_offset %d is negative: use 0 for a whole snapshot", offset)
	}
	if uint64(offset) > bm.VolumeBytes {
		return 0, status.Errorf(codes.OutOfRange, "starting_offset %d is beyond the snapshot's size, %d bytes", offset, bm.VolumeBytes)
	}
	return uint64(offset) / bm.BlockBytes, nil
}
