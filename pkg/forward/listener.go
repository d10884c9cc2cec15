package forward

import (
	"context"
	"slices"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// relayed are the methods a node's listener serves: those the forwarder
// relays, and the ones it probes with. Nothing that creates, changes or
// mounts a volume.
var relayed = []string{
	csi.Controller_CreateSnapshot_FullMethodName,
	csi.Controller_DeleteSnapshot_FullMethodName,
	csi.Controller_ListSnapshots_FullMethodName,
	csi.Controller_GetSnapshot_FullMethodName,
	csi.Controller_ControllerGetVolume_FullMethodName, // the probe for volumes
	csi.Controller_ControllerGetCapabilities_FullMethodName,
	csi.GroupController_CreateVolumeGroupSnapshot_FullMethodName,
	csi.GroupController_DeleteVolumeGroupSnapshot_FullMethodName,
	csi.GroupController_GetVolumeGroupSnapshot_FullMethodName,
	csi.GroupController_GroupControllerGetCapabilities_FullMethodName,
	csi.SnapshotMetadata_GetMetadataAllocated_FullMethodName,
	csi.SnapshotMetadata_GetMetadataDelta_FullMethodName,
}

// Relayed reports whether a node's listener serves the gRPC method
// fullMethod ("/csi.v1.Controller/CreateSnapshot").
func Relayed(fullMethod string) bool {
	return slices.Contains(relayed, fullMethod)
}

// refusal is the error of a method the listener does not serve. The
// listener's logging interceptors, outside the guard, log it.
func refusal(fullMethod string) error {
	var names []string
	for _, m := range relayed {
		names = append(names, m[strings.LastIndex(m, "/")+1:])
	}
	return status.Errorf(codes.PermissionDenied, "%s is not served on this listener: it serves the forwarder's calls only (%s); "+
		"call the node's CSI socket for anything else", fullMethod, strings.Join(names, ", "))
}

// Guard is the listener's unary interceptor that refuses, with
// PermissionDenied, every method but those the forwarder calls.
func Guard(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !Relayed(info.FullMethod) {
		return nil, refusal(info.FullMethod)
	}
	return handler(ctx, req)
}

// GuardStream is Guard for streaming methods. With RefuseUnknown as the
// server's unknown service handler it also sees, and refuses, methods of
// services the listener does not register (Node, Identity).
func GuardStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !Relayed(info.FullMethod) {
		return refusal(info.FullMethod)
	}
	return handler(srv, ss)
}

// RefuseUnknown is the listener's handler of services it does not
// register (grpc.UnknownServiceHandler): PermissionDenied, as Guard.
func RefuseUnknown(_ any, ss grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(ss)
	return refusal(method)
}

// NameNode is the listener's unary interceptor that names node in the
// header of every reply (NodeHeader).
func NameNode(node string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := grpc.SetHeader(ctx, metadata.Pairs(NodeHeader, node)); err != nil {
			return nil, status.Errorf(codes.Internal, "name the node in the reply: %v", err)
		}
		return handler(ctx, req)
	}
}
