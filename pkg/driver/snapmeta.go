package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-lib-utils/protosanitizer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"k8s.io/klog/v2"

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

// logStreams logs each streaming call at V(2), its request at V(5) with
// secrets stripped, and every failure.
func logStreams(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	method := methodName(info.FullMethod)
	start := time.Now()
	err := handler(srv, &loggedStream{ServerStream: ss, method: method})
	if err != nil {
		klog.ErrorS(err, "Call failed", "method", method, "duration", time.Since(start))
		return err
	}
	klog.V(2).InfoS("Call done", "method", method, "duration", time.Since(start))
	return nil
}

// loggedStream logs the request it receives at V(5).
type loggedStream struct {
	grpc.ServerStream
	method string
}

func (s *loggedStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		klog.V(5).InfoS("Call", "method", s.method, "request", protosanitizer.StripSecrets(m))
	}
	return err
}

// Forwarder is csi-thin in --mode=snapshot-metadata-forwarder: the
// identity and SnapshotMetadata services on the CSI socket, for the
// external-snapshot-metadata sidecar, relaying to the nodes.
type Forwarder struct {
	opts   Options
	nodes  *forward.Nodes
	server *grpc.Server
}

// NewForwarder checks the options and loads the TLS files.
func NewForwarder(opts Options) (*Forwarder, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	sm := opts.SnapshotMetadata
	peers, err := forward.ResolvePeers(sm.Nodes)
	if err != nil {
		return nil, fmt.Errorf("--snapshot-metadata-nodes: %w", err)
	}
	cfg, err := forward.ClientTLS(tlsFiles(sm), sm.serverName())
	if err != nil {
		return nil, fmt.Errorf("--snapshot-metadata-tls-*: %w", err)
	}
	f := &Forwarder{opts: opts, nodes: forward.NewNodes(peers, credentials.NewTLS(cfg))}
	f.server = grpc.NewServer(grpc.ChainUnaryInterceptor(logCalls, mapErrors), grpc.StreamInterceptor(logStreams))
	csi.RegisterIdentityServer(f.server, &identity{forwarder: true})
	csi.RegisterSnapshotMetadataServer(f.server, snapmeta.NewForwarder(f.nodes))
	return f, nil
}

// Run serves until ctx is done, then lets running streams finish for up
// to 30 s.
func (f *Forwarder) Run(ctx context.Context) error {
	defer f.nodes.Close()
	lis, err := listenUnix(f.opts.Endpoint)
	if err != nil {
		return err
	}
	klog.InfoS("Forwarding SnapshotMetadata", "endpoint", f.opts.Endpoint, "nodes", f.opts.SnapshotMetadata.Nodes, "serverName", f.opts.SnapshotMetadata.serverName(), "version", Version)
	return serveUntil(ctx, map[string]serving{"CSI": {f.server, lis}})
}

// serving is a gRPC server and its listener.
type serving struct {
	server *grpc.Server
	lis    net.Listener
}

// serveUntil serves each until ctx is done or one fails, then stops them
// all, letting calls finish for up to 30 s.
func serveUntil(ctx context.Context, servers map[string]serving) error {
	errc := make(chan error, len(servers))
	for name, s := range servers {
		go func() {
			if err := s.server.Serve(s.lis); err != nil {
				errc <- fmt.Errorf("serve %s: %w", name, err)
			}
		}()
	}
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		klog.InfoS("Stopping: waiting for calls in flight")
	}
	stopped := make(chan struct{})
	go func() {
		for _, s := range servers {
			s.server.GracefulStop()
		}
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		klog.InfoS("Calls still running after 30s; stopping them")
		for _, s := range servers {
			s.server.Stop()
		}
	}
	return err
}

// listenUnix listens on a unix:// endpoint, replacing a stale socket.
func listenUnix(endpoint string) (net.Listener, error) {
	path, err := socketPath(endpoint)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create the socket's directory: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove the stale socket %s: %w", path, err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return lis, nil
}
