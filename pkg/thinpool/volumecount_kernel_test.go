package thinpool_test

import (
	"fmt"
	"testing"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// TestEngineManyVolumesOnASmallPool: a small loopback pool holds thousands
// of volumes. Each thin device costs about 4 KiB of metadata whatever its
// size, so metadata sized by data blocks alone (5 MiB here) ran out at
// about 1,000 volumes on this pool.
func TestEngineManyVolumesOnASmallPool(t *testing.T) {
	cfg := ekLoopConfig(t, 256*ekMiB)
	e := ekOpen(t, cfg)
	defer ekClose(t, e)
	const n = 2000
	for i := 0; i < n; i++ {
		if _, err := e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: fmt.Sprint("v", i), RequiredBytes: ekMiB}); err != nil {
			t.Fatalf("volume %d of %d: %v", i+1, n, err)
		}
	}
	c, err := e.Capacity()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d volumes use %d of %d metadata bytes", n, c.MetadataUsedBytes, c.MetadataBytes)
	if c.AvailableBytes == 0 {
		t.Fatalf("no room left after %d volumes: %+v", n, c)
	}
}
