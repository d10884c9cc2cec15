package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// NodeGetVolumeStats reports the size of a block volume, or the bytes and
// inodes of a mounted filesystem.
func (s *Server) NodeGetVolumeStats(_ context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	id, path := req.GetVolumeId(), req.GetVolumePath()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume_id is missing")
	case path == "":
		return nil, status.Error(codes.InvalidArgument, "volume_path is missing")
	}
	if _, err := s.engine.Get(id); err != nil {
		return nil, err
	}
	usage, err := s.volumeUsage(id, path)
	if err != nil {
		return nil, err
	}
	klog.V(4).InfoS("NodeGetVolumeStats", "volumeID", id, "volumePath", path, "usage", usage)
	return &csi.NodeGetVolumeStatsResponse{Usage: usage}, nil
}

// volumeUsage is the usage of the volume at path: for a block device, the
// size of the volume's active device; for a mount, its filesystem's bytes
// and inodes.
func (s *Server) volumeUsage(id, path string) ([]*csi.VolumeUsage, error) {
	fi, err := s.stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, status.Errorf(codes.NotFound, "volume %s is not at %s: the path does not exist", id, path)
	}
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if isBlockDevice(fi) {
		size, err := s.engine.DeviceBytes(id)
		if err != nil {
			return nil, fmt.Errorf("size of block volume %s at %s: %w", id, path, err)
		}
		return []*csi.VolumeUsage{{Unit: csi.VolumeUsage_BYTES, Total: int64(size)}}, nil
	}
	mp, err := s.mountPointAt(path)
	if err != nil {
		return nil, err
	}
	if mp == nil {
		return nil, status.Errorf(codes.NotFound, "volume %s is not at %s: nothing is mounted there", id, path)
	}
	return filesystemUsage(path)
}

// filesystemUsage is the bytes and inodes of the filesystem at path.
func filesystemUsage(path string) ([]*csi.VolumeUsage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := st.Bsize
	return []*csi.VolumeUsage{
		{
			Unit:      csi.VolumeUsage_BYTES,
			Total:     int64(st.Blocks) * bs,
			Available: int64(st.Bavail) * bs,
			Used:      int64(st.Blocks-st.Bfree) * bs,
		},
		{
			Unit:      csi.VolumeUsage_INODES,
			Total:     int64(st.Files),
			Available: int64(st.Ffree),
			Used:      int64(st.Files - st.Ffree),
		},
	}, nil
}
