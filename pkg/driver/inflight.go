package driver

import (
	"context"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// inflight refuses a call on a volume or snapshot that already has one
// running, with Aborted, so that a caller that timed out and retried does
// not queue a second copy behind the first: the sidecars and kubelet retry
// with backoff, and the retry finds the first call's result.
type inflight struct {
	mu   sync.Mutex
	keys map[string]string // key -> method holding it
}

// The request fields that name what a call changes. Reads are not
// tracked.
type (
	hasName       interface{ GetName() string }
	hasVolumeID   interface{ GetVolumeId() string }
	hasSnapshotID interface{ GetSnapshotId() string }
	hasTargetPath interface{ GetTargetPath() string }
)

var trackedMethods = map[string]bool{
	"CreateVolume": true, "DeleteVolume": true, "CreateSnapshot": true, "DeleteSnapshot": true,
	"NodeStageVolume": true, "NodeUnstageVolume": true, "NodePublishVolume": true,
	"NodeUnpublishVolume": true, "NodeExpandVolume": true,
}

// key names what a call changes: a name for creates, an id for deletes and
// node calls, with the target path for publishes (one volume may be
// published to several targets at once).
func key(method string, req any) string {
	switch method {
	case "CreateVolume", "CreateSnapshot":
		if r, ok := req.(hasName); ok {
			return method + "/" + r.GetName()
		}
	case "DeleteSnapshot":
		if r, ok := req.(hasSnapshotID); ok {
			return "snapshot/" + r.GetSnapshotId()
		}
	case "NodePublishVolume", "NodeUnpublishVolume":
		v, _ := req.(hasVolumeID)
		p, _ := req.(hasTargetPath)
		if v != nil && p != nil {
			return "publish/" + v.GetVolumeId() + "/" + p.GetTargetPath()
		}
	default:
		if r, ok := req.(hasVolumeID); ok {
			return "volume/" + r.GetVolumeId()
		}
	}
	return ""
}

func (f *inflight) interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := methodName(info.FullMethod)
	if !trackedMethods[method] {
		return handler(ctx, req)
	}
	k := key(method, req)
	if k == "" || strings.HasSuffix(k, "/") {
		return handler(ctx, req) // a missing id: the service refuses it
	}
	f.mu.Lock()
	if f.keys == nil {
		f.keys = map[string]string{}
	}
	if holder, busy := f.keys[k]; busy {
		f.mu.Unlock()
		klog.V(2).InfoS("Refusing a call already in flight", "method", method, "key", k, "inFlight", holder)
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
