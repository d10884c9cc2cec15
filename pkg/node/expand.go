package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// NodeExpandVolume grows a volume's thin device to the size asked for and
// then, for a mount volume, its filesystem, online.
//
// csi-thin does not advertise the controller's EXPAND_VOLUME: a volume
// lives on one node, and the external-resizer cannot reach that node's
// csi-thin. The resizer then only marks the claim for node expansion, and
// kubelet calls NodeExpandVolume on the node that has the volume: online
// while it is mounted, or when it is next staged.
func (s *Server) NodeExpandVolume(ctx context.Context, req *csi.NodeExpandVolumeRequest) (*csi.NodeExpandVolumeResponse, error) {
	id, path := req.GetVolumeId(), req.GetVolumePath()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume_id is missing")
	case path == "":
		return nil, status.Error(codes.InvalidArgument, "volume_path is missing")
	}
	required, err := requiredBytes(req.GetCapacityRange())
	if err != nil {
		return nil, err
	}
	if c := req.GetVolumeCapability(); c != nil {
		if err := volcap.Check(c); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}

	klog.V(2).InfoS("NodeExpandVolume", "volumeID", id, "volumePath", path, "requiredBytes", required)
	if _, err := s.engine.Get(id); err != nil {
		return nil, err
	}
	fi, err := s.stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, status.Errorf(codes.NotFound, "volume %s is not at %s: the path does not exist", id, path)
	}
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if limit := req.GetCapacityRange().GetLimitBytes(); limit > 0 && thinpool.RoundUp(required, s.engine.BlockSizeBytes()) > uint64(limit) {
		return nil, status.Errorf(codes.OutOfRange, "%d bytes rounded up to the pool's block size of %d bytes exceed the limit of %d bytes",
			required, s.engine.BlockSizeBytes(), limit)
	}
	// Asked for no more than the volume has, the engine still makes an
	// active device as large as the volume's record.
	v, err := s.engine.Expand(ctx, id, required)
	if err != nil {
		return nil, err
	}
	if req.GetVolumeCapability().GetBlock() == nil && !isBlockDevice(fi) {
		device, err := s.activeDevice(id)
		if err != nil {
			return nil, err
		}
		if err := s.growFilesystem(device, s.resizePath(path, req.GetStagingTargetPath())); err != nil {
			return nil, err
		}
	}
	klog.V(2).InfoS("Expanded volume", "volumeID", id, "bytes", v.SizeBytes)
	return &csi.NodeExpandVolumeResponse{CapacityBytes: int64(v.SizeBytes)}, nil
}

// requiredBytes is the size a capacity range asks for; 0 when it asks for
// none. A range whose required_bytes exceed its limit_bytes can be met by
// no size: OutOfRange, as the CSI spec has it.
func requiredBytes(r *csi.CapacityRange) (uint64, error) {
	req, limit := r.GetRequiredBytes(), r.GetLimitBytes()
	switch {
	case req < 0 || limit < 0:
		return 0, status.Error(codes.InvalidArgument, "capacity_range bytes must not be negative")
	case limit > 0 && req > limit:
		return 0, status.Errorf(codes.OutOfRange, "capacity_range required_bytes %d exceed limit_bytes %d: ask for at most the limit", req, limit)
	}
	return uint64(req), nil
}

// resizePath is the mount path to grow a filesystem through. xfs_growfs
// needs a writable mount, and the volume path may be a read-only
// publication, so the staging mount is preferred when the CO gives it.
func (s *Server) resizePath(volumePath, stagingPath string) string {
	if stagingPath != "" && stagingPath != volumePath {
		if mp, err := s.mountPointAt(stagingPath); err == nil && mp != nil {
			return stagingPath
		}
	}
	return volumePath
}
