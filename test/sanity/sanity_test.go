// Package sanity runs the CSI community's conformance suite, csi-test's
// pkg/sanity, against the real csi-thin driver with a real pool. It needs
// a kernel with dm-thin: `make test-kernel` runs it inside one.
package sanity

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"

	"github.com/csi-thin/csi-thin/internal/kerneltest"
	"github.com/csi-thin/csi-thin/internal/testpool"
	"github.com/csi-thin/csi-thin/pkg/driver"
)

func TestSanity(t *testing.T) {
	kerneltest.Require(t)
	dir := t.TempDir()
	opts := driver.DefaultOptions()
	opts.Endpoint = "unix://" + filepath.Join(dir, "csi.sock")
	opts.NodeID = "sanity-node"
	opts.StateDir = filepath.Join(dir, "state")
	opts.PoolName = "csi-thin-sanity"
	opts.PoolSize = 2 << 30
	d, err := driver.New(opts)
	if err != nil {
		t.Fatalf("start the driver: %v", err)
	}
	t.Cleanup(func() { testpool.RemovePool(t, opts.PoolName, opts.StateDir) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("driver: %v", err)
		}
	})

	cfg := sanity.NewTestConfig()
	cfg.Address = opts.Endpoint
	cfg.TargetPath = filepath.Join(dir, "target")
	cfg.StagingPath = filepath.Join(dir, "staging")
	cfg.TestVolumeSize = 64 << 20
	cfg.TestVolumeExpandSize = 128 << 20
	cfg.IdempotentCount = 2
	cfg.TestVolumeParameters = map[string]string{"fsType": "ext4"}
	sanity.Test(t, cfg)
}
