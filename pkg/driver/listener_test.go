package driver

import (
	"context"
	"crypto/x509"
	"net"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/csi-thin/csi-thin/internal/fakepool"
	"github.com/csi-thin/csi-thin/internal/testcerts"
	"github.com/csi-thin/csi-thin/pkg/controller"
	"github.com/csi-thin/csi-thin/pkg/forward"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// listenerClient serves d's listener, over a fake pool with volume
// vol-a, on loopback TCP with mutual TLS, and returns a connection to it
// with the forwarder's certificate.
func listenerClient(t *testing.T, d *Driver) *grpc.ClientConn {
	t.Helper()
	const nodesName = "csi-thin-nodes.test"
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "csi-thin CA")
	nodeFiles := forward.TLSFiles(ca.Issue(t, dir, nodesName, x509.ExtKeyUsageServerAuth))
	fwdFiles := forward.TLSFiles(ca.Issue(t, dir, d.opts.SnapshotMetadata.ClientName, x509.ExtKeyUsageClientAuth))
	srvCfg, err := forward.ServerTLS(nodeFiles, d.opts.SnapshotMetadata.ClientName)
	if err != nil {
		t.Fatal(err)
	}
	pool := fakepool.NewT(t, fakepool.Options{})
	pool.Put(&thinpool.Volume{ID: "vol-a", Kind: thinpool.KindVolume, Name: "pvc-a", SizeBytes: 1 << 30})
	s := d.newListener(credentials.NewTLS(srvCfg), controller.New(pool, d.opts.NodeID), controller.NewGroup(pool, d.opts.NodeID), nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	cliCfg, err := forward.ClientTLS(fwdFiles, nodesName)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(cliCfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestListener: the node's listener serves the forwarder's calls through
// the socket's interceptors, names the node in each reply, and refuses
// every other call, of a registered service or not, with
// PermissionDenied.
func TestListener(t *testing.T) {
	d := &Driver{opts: DefaultOptions()}
	d.opts.NodeID = "node-a"
	conn := listenerClient(t, d)
	ctrl, group := csi.NewControllerClient(conn), csi.NewGroupControllerClient(conn)
	node, identity := csi.NewNodeClient(conn), csi.NewIdentityClient(conn)
	caps := []*csi.VolumeCapability{{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}}
	cases := []struct {
		name string
		call func(ctx context.Context, opts ...grpc.CallOption) error
		code codes.Code
		says string
	}{
		{"CreateSnapshot", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := ctrl.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "snap-1", SourceVolumeId: "vol-a"}, o...)
			return err
		}, codes.OK, ""},
		{"ControllerGetVolume", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := ctrl.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: "vol-a"}, o...)
			return err
		}, codes.OK, ""},
		{"ControllerGetCapabilities", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := ctrl.ControllerGetCapabilities(ctx, &csi.ControllerGetCapabilitiesRequest{}, o...)
			return err
		}, codes.OK, ""},
		{"ListSnapshots", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := ctrl.ListSnapshots(ctx, &csi.ListSnapshotsRequest{}, o...)
			return err
		}, codes.OK, ""},
		{"GetVolumeGroupSnapshot of none, its error mapped", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := group.GetVolumeGroupSnapshot(ctx, &csi.GetVolumeGroupSnapshotRequest{GroupSnapshotId: "grp-x"}, o...)
			return err
		}, codes.NotFound, ""},
		{"CreateVolume", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-b", VolumeCapabilities: caps}, o...)
			return err
		}, codes.PermissionDenied, "CreateVolume is not served on this listener"},
		{"DeleteVolume", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: "vol-a"}, o...)
			return err
		}, codes.PermissionDenied, "not served on this listener"},
		{"GetCapacity", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := ctrl.GetCapacity(ctx, &csi.GetCapacityRequest{}, o...)
			return err
		}, codes.PermissionDenied, "not served on this listener"},
		{"NodePublishVolume, of a service it does not register", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "vol-a", TargetPath: "/x"}, o...)
			return err
		}, codes.PermissionDenied, "NodePublishVolume is not served on this listener"},
		{"GetPluginInfo", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := identity.GetPluginInfo(ctx, &csi.GetPluginInfoRequest{}, o...)
			return err
		}, codes.PermissionDenied, "not served on this listener"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var md metadata.MD
			err := c.call(t.Context(), grpc.Header(&md))
			if status.Code(err) != c.code || !strings.Contains(status.Convert(err).Message(), c.says) {
				t.Fatalf("got %v, want %v saying %q", err, c.code, c.says)
			}
			if c.code == codes.OK {
				if got := md.Get(forward.NodeHeader); len(got) != 1 || got[0] != "node-a" {
					t.Errorf("header %s = %q, want node-a", forward.NodeHeader, got)
				}
			}
		})
	}
	if _, err := ctrl.ControllerGetVolume(t.Context(), &csi.ControllerGetVolumeRequest{VolumeId: "vol-a"}); err != nil {
		t.Errorf("the refused DeleteVolume deleted the volume: %v", err)
	}
}

// TestListenerSharesInflight: a call on the listener is refused while the
// socket has a call in flight on the same snapshot name, since both go
// through the driver's one in-flight table.
func TestListenerSharesInflight(t *testing.T) {
	d := &Driver{opts: DefaultOptions()}
	d.opts.NodeID = "node-a"
	conn := listenerClient(t, d)
	d.inflight.keys = map[key]string{{"snapshot name", "snap-1"}: "CreateSnapshot"}
	_, err := csi.NewControllerClient(conn).CreateSnapshot(t.Context(), &csi.CreateSnapshotRequest{Name: "snap-1", SourceVolumeId: "vol-a"})
	if status.Code(err) != codes.Aborted {
		t.Fatalf("got %v, want Aborted: the call on the socket is in flight", err)
	}
}
