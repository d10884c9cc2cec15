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
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/pkg/controller"
	"github.com/csi-thin/csi-thin/pkg/csierr"
	"github.com/csi-thin/csi-thin/pkg/node"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// Driver is one node's csi-thin: its engine and its gRPC server.
type Driver struct {
	opts     Options
	engine   *thinpool.Engine
	server   *grpc.Server
	inflight inflight
	metrics  *metrics     // nil without --metrics-address
	listener *grpc.Server // the forwarder's calls, with mutual TLS; nil without --snapshot-metadata-address
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
	if opts.MetricsAddress != "" {
		d.metrics = newMetrics(engine)
	}
	d.server = grpc.NewServer(grpc.ChainUnaryInterceptor(d.interceptors()...), grpc.StreamInterceptor(logStreams))
	csi.RegisterIdentityServer(d.server, &identity{snapshotMetadata: opts.SnapshotMetadata.Address != ""})
	ctrl, group := controller.New(engine, opts.NodeID), controller.NewGroup(engine, opts.NodeID)
	csi.RegisterControllerServer(d.server, ctrl)
	csi.RegisterGroupControllerServer(d.server, group)
	csi.RegisterNodeServer(d.server, node.New(node.Options{Engine: engine, NodeID: opts.NodeID, MaxVolumes: opts.MaxVolumes}))
	if opts.SnapshotMetadata.Address != "" {
		sm, err := d.snapshotMetadataServer()
		if err != nil {
			engine.Close()
			return nil, err
		}
		creds, err := d.listenerTLS()
		if err != nil {
			engine.Close()
			return nil, err
		}
		csi.RegisterSnapshotMetadataServer(d.server, sm)
		d.listener = d.newListener(creds, ctrl, group, sm)
	}
	return d, nil
}

// interceptors are what every call runs through, the outermost first:
// logging, metrics, the refusal of calls already in flight, and the error
// mapping. The metrics see each call's final code: the engine's errors
// mapped, and the refusals of calls in flight.
func (d *Driver) interceptors() []grpc.UnaryServerInterceptor {
	return append([]grpc.UnaryServerInterceptor{logCalls}, d.served()...)
}

// served are the interceptors inside the logging: metrics, the refusal
// of calls in flight and the error mapping.
func (d *Driver) served() []grpc.UnaryServerInterceptor {
	var chain []grpc.UnaryServerInterceptor
	if d.metrics != nil {
		chain = append(chain, d.metrics.interceptor)
	}
	return append(chain, d.inflight.interceptor, mapErrors)
}

// Engine is the driver's pool engine.
func (d *Driver) Engine() *thinpool.Engine { return d.engine }

// Run serves CSI on the endpoint, and metrics when they have an address,
// until ctx is done, then stops taking calls, lets running ones finish (up
// to 30 s), stops the metrics server and closes the engine. The pool and
// active volumes stay up.
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
	var metricsLis net.Listener
	if d.metrics != nil {
		if metricsLis, err = net.Listen("tcp", d.opts.MetricsAddress); err != nil {
			lis.Close()
			return fmt.Errorf("listen for metrics on %s: %w", d.opts.MetricsAddress, err)
		}
	}
	var fwdLis net.Listener
	if d.listener != nil {
		if fwdLis, err = net.Listen("tcp", d.opts.SnapshotMetadata.Address); err != nil {
			lis.Close()
			if metricsLis != nil {
				metricsLis.Close()
			}
			return fmt.Errorf("listen for the forwarder on %s: %w", d.opts.SnapshotMetadata.Address, err)
		}
	}
	klog.InfoS("Serving CSI", "endpoint", d.opts.Endpoint, "node", d.opts.NodeID, "pool", d.engine.PoolName(), "version", Version)

	errc := make(chan error, 3)
	go func() { errc <- d.server.Serve(lis) }()
	if fwdLis != nil {
		klog.InfoS("Serving the forwarder's calls with mutual TLS", "address", fwdLis.Addr().String(), "client", d.opts.SnapshotMetadata.ClientName)
		go func() { errc <- d.listener.Serve(fwdLis) }()
		defer d.listener.Stop() // ends its streams once the CSI server has stopped
	}
	if metricsLis != nil {
		klog.InfoS("Serving metrics", "address", metricsLis.Addr().String(), "path", MetricsPath)
		metricsCtx, stopMetrics := context.WithCancel(context.Background())
		metricsDone := make(chan struct{})
		go func() {
			defer close(metricsDone)
			if err := d.metrics.serve(metricsCtx, metricsLis); err != nil {
				errc <- err
			}
		}()
		defer func() { stopMetrics(); <-metricsDone }()
	}
	select {
	case err := <-errc:
		d.server.Stop()
		return err
	case <-ctx.Done():
	}
	klog.InfoS("Stopping: waiting for calls in flight")
	stopped := make(chan struct{})
	go func() {
		d.server.GracefulStop()
		if d.listener != nil {
			d.listener.GracefulStop()
		}
		close(stopped)
	}()
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

// mapErrors gives every error its CSI code (csierr.Status).
func mapErrors(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	return resp, csierr.Status(err)
}
