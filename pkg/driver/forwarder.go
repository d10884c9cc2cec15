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
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/pkg/forward"
	"github.com/csi-thin/csi-thin/pkg/snapmeta"
)

// Forwarder is csi-thin in --mode=forwarder: on the CSI socket, for the
// sidecars beside it, the identity service and what --forward names,
// each call relayed to the node that holds its volume, snapshot or group
// (package forward): the snapshot calls of the controller and group
// controller services, for a csi-snapshotter that is not per node, and
// SnapshotMetadata, for the external-snapshot-metadata sidecar. Both
// share one lookup of the nodes and one connection to each.
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
	id := &identity{forwarder: true, snapshots: opts.forwards(ForwardSnapshots), snapshotMetadata: opts.forwards(ForwardSnapshotMetadata)}
	csi.RegisterIdentityServer(f.server, id)
	if id.snapshots {
		csi.RegisterControllerServer(f.server, forward.NewController(f.nodes))
		csi.RegisterGroupControllerServer(f.server, forward.NewGroupController(f.nodes))
	}
	if id.snapshotMetadata {
		csi.RegisterSnapshotMetadataServer(f.server, snapmeta.NewForwarder(f.nodes))
	}
	return f, nil
}

// Run serves until ctx is done, then lets running calls finish for up to
// 30 s.
func (f *Forwarder) Run(ctx context.Context) error {
	defer f.nodes.Close()
	lis, err := listenUnix(f.opts.Endpoint)
	if err != nil {
		return err
	}
	klog.InfoS("Forwarding", "serves", f.opts.Forward, "endpoint", f.opts.Endpoint, "nodes", f.opts.SnapshotMetadata.Nodes,
		"serverName", f.opts.SnapshotMetadata.serverName(), "version", Version)
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
