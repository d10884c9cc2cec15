package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
	mount "k8s.io/mount-utils"
	"k8s.io/utils/exec"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// Options configure a node server.
type Options struct {
	Engine     thinpool.Pool
	NodeID     string
	MaxVolumes int64                     // NodeGetInfo max_volumes_per_node; 0 = unset
	Mounter    *mount.SafeFormatAndMount // nil: mount.New("") with exec.New()
}

// Server serves the CSI node service of one node.
type Server struct {
	csi.UnimplementedNodeServer

	engine     thinpool.Pool
	nodeID     string
	maxVolumes int64
	mounter    *mount.SafeFormatAndMount
	resizer    *mount.ResizeFs
	// stat is os.Stat. A block volume's target is a block device once the
	// device node is bind-mounted onto it, which a fake mounter cannot
	// make: the unit tests stat through their own.
	stat func(string) (fs.FileInfo, error)
}

// New returns a node server.
func New(o Options) *Server {
	m := o.Mounter
	if m == nil {
		m = mount.NewSafeFormatAndMount(mount.New(""), exec.New())
	}
	return &Server{
		engine:     o.Engine,
		nodeID:     o.NodeID,
		maxVolumes: o.MaxVolumes,
		mounter:    m,
		resizer:    mount.NewResizeFs(m.Exec),
		stat:       os.Stat,
	}
}

var nodeCapabilities = []csi.NodeServiceCapability_RPC_Type{
	csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
	csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
	csi.NodeServiceCapability_RPC_EXPAND_VOLUME,
	csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
	csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
	csi.NodeServiceCapability_RPC_GET_STORAGE_HEALTH,
}

// NodeGetCapabilities lists what the node service does.
func (s *Server) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	resp := &csi.NodeGetCapabilitiesResponse{}
	for _, c := range nodeCapabilities {
		resp.Capabilities = append(resp.Capabilities, &csi.NodeServiceCapability{
			Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: c}},
		})
	}
	return resp, nil
}

// NodeGetInfo names the node and its topology segment.
func (s *Server) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{
		NodeId:             s.nodeID,
		MaxVolumesPerNode:  s.maxVolumes,
		AccessibleTopology: volcap.Topology(s.nodeID),
	}, nil
}

// NodeGetVolumeHealth reports the engine's condition of a volume: healthy;
// degraded while its pool is full (it reads, but new blocks cannot be
// written); or inaccessible when its pool or its thin device has failed,
// with a reason that says which.
func (s *Server) NodeGetVolumeHealth(_ context.Context, req *csi.NodeGetVolumeHealthRequest) (*csi.NodeGetVolumeHealthResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is missing")
	}
	health, err := volcap.VolumeHealth(id, s.engine.Condition(id))
	if err != nil {
		return nil, err
	}
	for _, e := range health.GetHealthStatuses() {
		klog.V(2).InfoS("Volume is not healthy", "volumeID", id, "status", e.GetStatus(), "reason", e.GetReason(), "message", e.GetMessage())
	}
	return &csi.NodeGetVolumeHealthResponse{VolumeHealth: health}, nil
}

// mountPointAt returns the mount at path, or nil when path is not a mount
// point or does not exist.
func (s *Server) mountPointAt(path string) (*mount.MountPoint, error) {
	ok, err := s.mounter.IsMountPoint(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("check whether %s is a mount point: %w", path, err)
	}
	if !ok {
		return nil, nil
	}
	mps, err := s.mounter.List()
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	resolved := resolve(path)
	if abs, err := filepath.Abs(resolved); err == nil {
		resolved = abs
	}
	// The last mount on a path is the one on top.
	for i := len(mps) - 1; i >= 0; i-- {
		if filepath.Clean(mps[i].Path) == resolved {
			mp := mps[i]
			return &mp, nil
		}
	}
	return &mount.MountPoint{Path: resolved}, nil
}

// sameDevice reports whether two paths name the same device: the same
// path once symlinks are resolved, or block device nodes with the same
// device number.
func sameDevice(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	if resolve(a) == resolve(b) {
		return true
	}
	ra, okA := blockRdev(a)
	rb, okB := blockRdev(b)
	return okA && okB && ra == rb
}

// resolve is p with symlinks resolved, or p cleaned when that fails.
func resolve(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

// blockRdev returns the device number of a block device node.
func blockRdev(path string) (uint64, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, false
	}
	return st.Rdev, true
}

// isBlockDevice reports whether a file is a block device node, as a block
// volume's target file is once the device node is bind-mounted onto it.
func isBlockDevice(fi os.FileInfo) bool {
	return fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0
}

// NodeGetStorageHealth reports the node's pool: no entries while it is
// healthy; one STORAGE_DEGRADED entry, with the reason and what to do,
// while it is not, since the volumes already on it may still be read:
// PoolFull while it is out of data space (deletes still work),
// PoolUnhealthy while it is read-only, needs_check or failed.
func (s *Server) NodeGetStorageHealth(context.Context, *csi.NodeGetStorageHealthRequest) (*csi.NodeGetStorageHealthResponse, error) {
	return &csi.NodeGetStorageHealthResponse{BackendHealth: volcap.StorageHealth(s.engine.Health())}, nil
}
