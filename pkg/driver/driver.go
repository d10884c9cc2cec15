package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-lib-utils/protosanitizer"
	"google.golang.org/grpc"
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/pkg/controller"
	"github.com/csi-thin/csi-thin/pkg/node"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// Driver is one node's csi-thin: its engine and its gRPC server.
type Driver struct {
	opts     Options
	engine   *thinpool.Engine
	server   *grpc.Server
	inflight inflight
}

// New checks privileges, opens the node's pool (creating it on the first
// start) and builds the services. Close the driver, or Run it, to release
// the pool's database.
func New(opts Options) (*Driver, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	engine, err := thinpool.Open(opts.engineConfig())
	if err != nil {
		return nil, fmt.Errorf("open the pool: %w", err)
	}
	d := &Driver{opts: opts, engine: engine}
	d.server = grpc.NewServer(grpc.ChainUnaryInterceptor(logCalls, d.inflight.interceptor, mapErrors))
	csi.RegisterIdentityServer(d.server, &identity{engine: engine})
	csi.RegisterControllerServer(d.server, controller.New(engine, opts.NodeID))
	csi.RegisterNodeServer(d.server, node.New(node.Options{Engine: engine, NodeID: opts.NodeID, MaxVolumes: opts.MaxVolumes}))
	return d, nil
}

// Engine is the driver's pool engine.
func (d *Driver) Engine() *thinpool.Engine { return d.engine }

// Run serves CSI on the endpoint until ctx is done, then stops taking
// calls, lets running ones finish (up to 30 s) and closes the engine. The
// pool and active volumes stay up.
func (d *Driver) Run(ctx context.Context) error {
	defer d.engine.Close()
	path, err := socketPath(d.opts.Endpoint)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create the socket's directory: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the stale socket %s: %w", path, err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	klog.InfoS("Serving CSI", "endpoint", d.opts.Endpoint, "node", d.opts.NodeID, "pool", d.engine.PoolName(), "version", Version)

	errc := make(chan error, 1)
	go func() { errc <- d.server.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	klog.InfoS("Stopping: waiting for calls in flight")
	stopped := make(chan struct{})
	go func() { d.server.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		klog.InfoS("Calls still running after 30s; stopping them")
		d.server.Stop()
	}
	return nil
}

// Close releases the engine of a driver that was not Run.
func (d *Driver) Close() error { return d.engine.Close() }

// logCalls logs each call at V(2), its payload at V(5) with secrets
// stripped, and every failure.
func logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	start := time.Now()
	klog.V(5).InfoS("Call", "method", method, "request", protosanitizer.StripSecrets(req))
	resp, err := handler(ctx, req)
	if err != nil {
		klog.ErrorS(err, "Call failed", "method", method, "duration", time.Since(start))
		return resp, err
	}
	klog.V(2).InfoS("Call done", "method", method, "duration", time.Since(start))
	klog.V(5).InfoS("Reply", "method", method, "response", protosanitizer.StripSecrets(resp))
	return resp, nil
}

// mapErrors gives every error its CSI code (toStatus).
func mapErrors(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, toStatus(err)
}
