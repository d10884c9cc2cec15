package driver

import (
	"fmt"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/csi-thin/csi-thin/pkg/forward"
	"github.com/csi-thin/csi-thin/pkg/snapmeta"
)

// snapshotMetadataServer is a node's SnapshotMetadata service over its
// engine, served on the CSI socket and on the listener the forwarder
// calls.
func (d *Driver) snapshotMetadataServer() (*snapmeta.Server, error) {
	style := csi.BlockMetadataType_VARIABLE_LENGTH
	if d.opts.SnapshotMetadata.Format == "fixed" {
		style = csi.BlockMetadataType_FIXED_LENGTH
	}
	return snapmeta.NewServer(d.engine, d.opts.NodeID, style)
}

// newListener is the server of the node's listener, with mutual TLS
// (creds): the same controller, group controller and SnapshotMetadata
// services as the CSI socket's (sm nil: none), so that a call through the
// forwarder and one on the socket are ordered by the same in-flight
// keys, each through the socket's logging, metrics and error mapping, and
// refused with PermissionDenied unless it is one the forwarder makes
// (forward.Guard). Every reply names this node (forward.NameNode).
func (d *Driver) newListener(creds credentials.TransportCredentials, ctrl csi.ControllerServer, group csi.GroupControllerServer, sm csi.SnapshotMetadataServer) *grpc.Server {
	unary := append([]grpc.UnaryServerInterceptor{forward.NameNode(d.opts.NodeID), logCalls, forward.Guard}, d.served()...)
	s := grpc.NewServer(grpc.Creds(creds),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(logStreams, forward.GuardStream),
		grpc.UnknownServiceHandler(forward.RefuseUnknown))
	csi.RegisterControllerServer(s, ctrl)
	csi.RegisterGroupControllerServer(s, group)
	if sm != nil {
		csi.RegisterSnapshotMetadataServer(s, sm)
	}
	return s
}

// listenerTLS is the listener's mutual TLS.
func (d *Driver) listenerTLS() (credentials.TransportCredentials, error) {
	sm := d.opts.SnapshotMetadata
	cfg, err := forward.ServerTLS(tlsFiles(sm), sm.ClientName)
	if err != nil {
		return nil, fmt.Errorf("--snapshot-metadata-tls-*: %w", err)
	}
	return credentials.NewTLS(cfg), nil
}

func tlsFiles(sm SnapshotMetadataOptions) forward.TLSFiles {
	return forward.TLSFiles{Cert: sm.TLSCert, Key: sm.TLSKey, CA: sm.TLSCA}
}
