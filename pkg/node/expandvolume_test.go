package node

import (
	"context"
	"fmt"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// TestNodeExpandVolume runs NodeExpandVolume over the fake pool on a
// volume staged and published: the device grows to the size asked for,
// rounded up to the pool's block size, and a mount volume's filesystem
// with it; a block volume has no filesystem step. The requests refused
// before the engine is asked are in TestRequestValidation.
func TestNodeExpandVolume(t *testing.T) {
	noSpace := fmt.Errorf("%w: pool is out of data space: delete volumes or grow the pool", thinpool.ErrNoSpace)
	type env struct{ device, staging, target string }
	tests := []struct {
		name       string
		cap        *csi.VolumeCapability // of the stage and publish
		reqCap     bool                  // the request carries it
		noStaging  bool                  // the request has no staging path
		unstaged   bool
		path       string // the volume path, if not the target
		id         string // another id than the volume's
		setup      func(f *nodeFixture)
		rng        *csi.CapacityRange
		runs       func(e env) []run
		want       codes.Code
		wantBytes  uint64 // the volume's size afterwards
		wantDevice bool   // the device has it too
		roDevice   bool
	}{
		{
			name: "ext4: the device grows, and the filesystem through it", cap: mountCap(rwo, "ext4"), reqCap: true,
			rng:  &csi.CapacityRange{RequiredBytes: 2 * gib},
			runs: func(e env) []run { return growRuns(e.device, e.staging, "ext4") },
			want: codes.OK, wantBytes: 2 * gib, wantDevice: true,
		},
		{
			name: "xfs: grown through the staging mount", cap: mountCap(rwo, "xfs"), reqCap: true,
			rng:  &csi.CapacityRange{RequiredBytes: 2 * gib},
			runs: func(e env) []run { return growRuns(e.device, e.staging, "xfs") },
			want: codes.OK, wantBytes: 2 * gib, wantDevice: true,
		},
		{
			name: "xfs without the staging path: grown through the volume path", cap: mountCap(rwo, "xfs"), reqCap: true, noStaging: true,
			rng:  &csi.CapacityRange{RequiredBytes: 2 * gib},
			runs: func(e env) []run { return growRuns(e.device, e.target, "xfs") },
			want: codes.OK, wantBytes: 2 * gib, wantDevice: true,
		},
		{
			name: "no capability: a mount volume told by its path", cap: mountCap(rwo, "ext4"),
			rng:  &csi.CapacityRange{RequiredBytes: 2 * gib},
			runs: func(e env) []run { return growRuns(e.device, e.staging, "ext4") },
			want: codes.OK, wantBytes: 2 * gib, wantDevice: true,
		},
		{
			name: "rounded up to the block size", cap: mountCap(rwo, "ext4"), reqCap: true,
			rng:  &csi.CapacityRange{RequiredBytes: 2*gib + 1, LimitBytes: 3 * gib},
			runs: func(e env) []run { return growRuns(e.device, e.staging, "ext4") },
			want: codes.OK, wantBytes: 2*gib + 64<<10, wantDevice: true,
		},
		{
			name: "less than it has: the size it has", cap: mountCap(rwo, "ext4"), reqCap: true,
			rng:  &csi.CapacityRange{RequiredBytes: gib / 2},
			runs: func(e env) []run { return growRuns(e.device, e.staging, "ext4") },
			want: codes.OK, wantBytes: gib, wantDevice: true,
		},
		{
			name: "block: no filesystem step", cap: blockCap(rwo), reqCap: true,
			rng:  &csi.CapacityRange{RequiredBytes: 2 * gib},
			want: codes.OK, wantBytes: 2 * gib, wantDevice: true,
		},
		{
			name: "block without a capability: told by its path", cap: blockCap(rwo),
			rng:  &csi.CapacityRange{RequiredBytes: 2 * gib},
			want: codes.OK, wantBytes: 2 * gib, wantDevice: true,
		},
		{
			name: "reader-only block: the device stays read-only", cap: blockCap(rox), reqCap: true,
			rng:  &csi.CapacityRange{RequiredBytes: 2 * gib},
			want: codes.OK, wantBytes: 2 * gib, wantDevice: true, roDevice: true,
		},
		{
			name: "rounded up past the limit", cap: mountCap(rwo, "ext4"), reqCap: true,
			rng:  &csi.CapacityRange{RequiredBytes: 2*gib + 1, LimitBytes: 2*gib + 1},
			want: codes.OutOfRange, wantBytes: gib, wantDevice: true,
		},
		{
			name: "unknown volume", cap: mountCap(rwo, "ext4"), reqCap: true, id: "vol-missing",
			rng:  &csi.CapacityRange{RequiredBytes: 2 * gib},
			want: codes.NotFound,
		},
		{
			name: "volume path missing", cap: mountCap(rwo, "ext4"), reqCap: true, path: "missing",
			rng:  &csi.CapacityRange{RequiredBytes: 2 * gib},
			want: codes.NotFound, wantBytes: gib, wantDevice: true,
		},
		{
			// kubelet expands an unstaged volume's filesystem once it
			// stages it; the device grows then.
			name: "not staged: the volume grows, its filesystem cannot", cap: mountCap(rwo, "ext4"), reqCap: true, unstaged: true,
			rng:  &csi.CapacityRange{RequiredBytes: 2 * gib},
			want: codes.FailedPrecondition, wantBytes: 2 * gib,
		},
		{
			name: "pool full", cap: mountCap(rwo, "ext4"), reqCap: true,
			setup: func(f *nodeFixture) { f.pool.SetHealth(noSpace) },
			rng:   &csi.CapacityRange{RequiredBytes: 2 * gib},
			want:  codes.ResourceExhausted, wantBytes: gib, wantDevice: true,
		},
		{
			name: "over the pool's budget", cap: mountCap(rwo, "ext4"), reqCap: true,
			rng:  &csi.CapacityRange{RequiredBytes: 20 * gib},
			want: codes.ResourceExhausted, wantBytes: gib, wantDevice: true,
		},
		{
			name: "growing the filesystem fails", cap: mountCap(rwo, "ext4"), reqCap: true,
			rng: &csi.CapacityRange{RequiredBytes: 2 * gib},
			runs: func(e env) []run {
				r := growRuns(e.device, e.staging, "ext4")
				r[len(r)-1].err = exitStatus(1)
				return r
			},
			want: codes.Internal, wantBytes: 2 * gib, wantDevice: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newNodeFixture(t)
			id := f.volume("pv-1")
			target := f.targetPath("a")
			if tt.unstaged {
				mkdirAll(t, target)
			} else {
				f.staged(id, tt.cap)
				if err := f.publish(id, target, tt.cap, false); err != nil {
					t.Fatal(err)
				}
			}
			if tt.setup != nil {
				tt.setup(f)
			}
			req := &csi.NodeExpandVolumeRequest{VolumeId: id, VolumePath: target, StagingTargetPath: f.stagingPath(id), CapacityRange: tt.rng}
			if tt.reqCap {
				req.VolumeCapability = tt.cap
			}
			if tt.noStaging {
				req.StagingTargetPath = ""
			}
			if tt.path != "" {
				req.VolumePath = f.targetPath(tt.path)
			}
			if tt.id != "" {
				req.VolumeId = tt.id
			}
			if tt.runs != nil {
				f.script.expect(tt.runs(env{device: f.device(id), staging: f.stagingPath(id), target: target})...)
			}
			resp, err := f.s.NodeExpandVolume(context.Background(), req)
			wantCSI(t, err, tt.want)
			if tt.want == codes.OK && uint64(resp.GetCapacityBytes()) != tt.wantBytes {
				t.Errorf("capacity %d bytes, want %d", resp.GetCapacityBytes(), tt.wantBytes)
			}
			if tt.wantBytes == 0 {
				return
			}
			if v, err := f.pool.Get(id); err != nil || v.SizeBytes != tt.wantBytes {
				t.Errorf("volume %+v (%v), want %d bytes", v, err, tt.wantBytes)
			}
			if !tt.wantDevice {
				f.wantActive(id, false, false)
				return
			}
			if n, err := f.pool.DeviceBytes(id); err != nil || n != tt.wantBytes {
				t.Errorf("device %d bytes (%v), want %d", n, err, tt.wantBytes)
			}
			f.wantActive(id, true, tt.roDevice)
		})
	}
}

// TestNodeExpandVolumeAgain: asked again for the size it has, an expand
// answers that size and changes nothing; the filesystem's grow finds
// nothing to do.
func TestNodeExpandVolumeAgain(t *testing.T) {
	for _, c := range []*csi.VolumeCapability{mountCap(rwo, "ext4"), blockCap(rwo)} {
		block := c.GetBlock() != nil
		t.Run(map[bool]string{false: "mount", true: "block"}[block], func(t *testing.T) {
			f := newNodeFixture(t)
			id := f.volume("pv-1")
			f.staged(id, c)
			target := f.targetPath("a")
			if err := f.publish(id, target, c, false); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				if !block {
					f.script.expect(growRuns(f.device(id), f.stagingPath(id), "ext4")...)
				}
				resp, err := f.s.NodeExpandVolume(context.Background(), &csi.NodeExpandVolumeRequest{
					VolumeId: id, VolumePath: target, StagingTargetPath: f.stagingPath(id),
					CapacityRange: &csi.CapacityRange{RequiredBytes: 2 * gib}, VolumeCapability: c,
				})
				if err != nil || resp.GetCapacityBytes() != 2*gib {
					t.Fatalf("expand %d: %v %v, want %d bytes", i, resp, err, 2*gib)
				}
			}
			if v, err := f.pool.Get(id); err != nil || v.SizeBytes != 2*gib {
				t.Errorf("volume %+v (%v), want %d bytes", v, err, 2*gib)
			}
		})
	}
}
