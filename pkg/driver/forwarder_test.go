package driver

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/csi-thin/csi-thin/internal/testcerts"
	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// TestForwarderServes runs csi-thin --mode=forwarder with each --forward
// and checks, on its socket, the driver name the nodes have, the
// services it claims and that it serves those and no others.
func TestForwarderServes(t *testing.T) {
	cases := []struct {
		forward          string
		services         []csi.PluginCapability_Service_Type
		snapshots, smeta bool
	}{
		{"snapshots", forwarderServices, true, false},
		{"snapshot-metadata", []csi.PluginCapability_Service_Type{csi.PluginCapability_Service_SNAPSHOT_METADATA_SERVICE}, false, true},
		{"snapshots,snapshot-metadata", append(slices.Clip(forwarderServices), csi.PluginCapability_Service_SNAPSHOT_METADATA_SERVICE), true, true},
	}
	for _, c := range cases {
		t.Run(c.forward, func(t *testing.T) {
			dir := t.TempDir()
			files := testcerts.NewCA(t, "ca").Issue(t, dir, "csi-thin-snapshot-metadata-forwarder", x509.ExtKeyUsageClientAuth)
			sock := filepath.Join(dir, "csi.sock")
			opts, err := parse(t, "--mode", "forwarder", "--forward", c.forward, "--endpoint", "unix://"+sock,
				"--snapshot-metadata-nodes", "127.0.0.1:1", "--snapshot-metadata-server-name", "nodes.test",
				"--snapshot-metadata-tls-cert", files.Cert, "--snapshot-metadata-tls-key", files.Key, "--snapshot-metadata-tls-ca", files.CA)
			if err != nil {
				t.Fatal(err)
			}
			f, err := NewForwarder(opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- f.Run(ctx) }()
			t.Cleanup(func() {
				stop()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			})
			conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()

			info, err := csi.NewIdentityClient(conn).GetPluginInfo(callCtx, &csi.GetPluginInfoRequest{}, grpc.WaitForReady(true))
			if err != nil || info.GetName() != volcap.DriverName {
				t.Fatalf("GetPluginInfo: %v %v, want the nodes' driver name %s", info, err, volcap.DriverName)
			}
			pc, err := csi.NewIdentityClient(conn).GetPluginCapabilities(callCtx, &csi.GetPluginCapabilitiesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var got []csi.PluginCapability_Service_Type
			for _, p := range pc.GetCapabilities() {
				got = append(got, p.GetService().GetType())
			}
			if !slices.Equal(got, c.services) {
				t.Errorf("services %v, want %v", got, c.services)
			}
			served := func(err error) bool { return status.Code(err) != codes.Unimplemented }
			_, err = csi.NewControllerClient(conn).ControllerGetCapabilities(callCtx, &csi.ControllerGetCapabilitiesRequest{})
			if served(err) != c.snapshots {
				t.Errorf("ControllerGetCapabilities: %v, want served %v", err, c.snapshots)
			}
			_, err = csi.NewGroupControllerClient(conn).GroupControllerGetCapabilities(callCtx, &csi.GroupControllerGetCapabilitiesRequest{})
			if served(err) != c.snapshots {
				t.Errorf("GroupControllerGetCapabilities: %v, want served %v", err, c.snapshots)
			}
			stream, err := csi.NewSnapshotMetadataClient(conn).GetMetadataAllocated(callCtx, &csi.GetMetadataAllocatedRequest{})
			if err == nil {
				_, err = stream.Recv()
			}
			if served(err) != c.smeta {
				t.Errorf("GetMetadataAllocated: %v, want served %v", err, c.smeta)
			}
		})
	}
}
