package driver

import (
	"context"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// inflight refuses, with Aborted, a call on what another call in flight
// is changing (see the package doc).
type inflight struct {
	mu   sync.Mutex
	keys map[key]string // key -> method holding it
}

// A key is what a call changes: a name being created, or the id of a
// volume or snapshot. Creates of a volume and of a snapshot with the same
// name are different keys.
type key struct{ kind, id string }

func (k key) String() string { return k.kind + " " + k.id }

// keyOf is what a request changes. ok is false for a read, which is not
// tracked, and for a request without its name or id, which the service
// refuses with InvalidArgument. Every node call on a volume has the
// volume's id alone, whatever its paths: the CSI spec allows one call in
// flight per volume, and DeleteVolume has the same key.
func keyOf(req any) (k key, ok bool) {
	switch r := req.(type) {
	case *csi.CreateVolumeRequest:
		k = key{"volume name", r.GetName()}
	case *csi.CreateSnapshotRequest:
		k = key{"snapshot name", r.GetName()}
	case *csi.DeleteVolumeRequest:
		k = key{"volume", r.GetVolumeId()}
	case *csi.DeleteSnapshotRequest:
		k = key{"snapshot", r.GetSnapshotId()}
	case *csi.CreateVolumeGroupSnapshotRequest:
		k = key{"group snapshot name", r.GetName()}
	case *csi.DeleteVolumeGroupSnapshotRequest:
		k = key{"group snapshot", r.GetGroupSnapshotId()}
	case *csi.NodeStageVolumeRequest:
		k = key{"volume", r.GetVolumeId()}
	case *csi.NodeUnstageVolumeRequest:
		k = key{"volume", r.GetVolumeId()}
	case *csi.NodePublishVolumeRequest:
		k = key{"volume", r.GetVolumeId()}
	case *csi.NodeUnpublishVolumeRequest:
		k = key{"volume", r.GetVolumeId()}
	case *csi.NodeExpandVolumeRequest:
		k = key{"volume", r.GetVolumeId()}
	default:
		return key{}, false
	}
	return k, k.id != ""
}

func (f *inflight) interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	k, ok := keyOf(req)
	if !ok {
		return handler(ctx, req)
	}
	method := methodName(info.FullMethod)
	f.mu.Lock()
	if f.keys == nil {
		f.keys = map[key]string{}
	}
	if holder, busy := f.keys[k]; busy {
		f.mu.Unlock()
		klog.V(2).InfoS("Refusing a call already in flight", "method", method, "key", k.String(), "inFlight", holder)
		return nil, status.Errorf(codes.Aborted, "%s is already in flight for %s: retry once it completes", holder, k)
	}
	f.keys[k] = method
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.keys, k)
		f.mu.Unlock()
	}()
	return handler(ctx, req)
}
