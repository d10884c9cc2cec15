package node

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	mount "k8s.io/mount-utils"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// TestNodeStageVolume runs NodeStageVolume over the fake pool: what it
// activates, runs and mounts, its code, and that a stage that fails takes
// back the activation it made and only that. The requests refused before
// the engine is asked are in TestRequestValidation and
// TestStageRefusesVolumeContext.
func TestNodeStageVolume(t *testing.T) {
	noSpace := fmt.Errorf("%w: pool is out of data space: delete volumes or grow the pool", thinpool.ErrNoSpace)
	unhealthy := fmt.Errorf("%w: pool is read-only: repair its metadata", thinpool.ErrUnhealthy)
	// env is the case's volume's device node and staging path, which
	// its script names.
	type env struct{ device, staging string }
	tests := []struct {
		name     string
		cap      *csi.VolumeCapability
		vctx     map[string]string
		mountErr error                           // every mount fails with it
		setup    func(f *nodeFixture, id string) // before the stage
		id       string                          // another id than the volume's
		snapshot bool                            // stage a snapshot of the volume
		runs     func(e env) []run
		cancelIn bool // the request ends while the last command runs
		want     codes.Code
		// afterwards
		active, readOnly bool
		fsType           string // mounted at the staging path; "" nothing
		dir              bool   // the staging path exists
	}{
		{
			name: "blank ext4: formatted, mounted and grown", cap: mountCap(rwo, ""),
			runs: func(e env) []run { return formatRuns(e.device, e.staging, "ext4") },
			want: codes.OK, active: true, fsType: "ext4", dir: true,
		},
		{
			name: "blank xfs with the volume context's parameters", cap: mountCap(rwo, ""),
			vctx: map[string]string{volcap.ParamFsType: "xfs", volcap.ParamBlockSize: "2048"},
			runs: func(e env) []run { return formatRuns(e.device, e.staging, "xfs", "-b", "size=2048") },
			want: codes.OK, active: true, fsType: "xfs", dir: true,
		},
		{
			name: "formatted: checked, not formatted", cap: mountCap(rwo, "ext4"),
			runs: func(e env) []run { return mountRuns(e.device, e.staging, "ext4") },
			want: codes.OK, active: true, fsType: "ext4", dir: true,
		},
		{
			name: "legacy mkfsOptions on a formatted device: ignored", cap: mountCap(rwo, ""),
			vctx: map[string]string{volcap.ParamLegacyMkfsOptions: "-E nodiscard"},
			runs: func(e env) []run {
				return append([]run{{argv: blkidArgv(e.device), out: "TYPE=ext4\n"}}, mountRuns(e.device, e.staging, "ext4")...)
			},
			want: codes.OK, active: true, fsType: "ext4", dir: true,
		},
		{
			name: "legacy mkfsOptions on a blank device: refused, activation undone", cap: mountCap(rwo, ""),
			vctx: map[string]string{volcap.ParamLegacyMkfsOptions: "-E nodiscard"},
			runs: func(e env) []run { return []run{{argv: blkidArgv(e.device), err: exitStatus(2)}} },
			want: codes.InvalidArgument,
		},
		{
			// The filesystem may replay its journal: the device stays
			// writable and every publication is a read-only bind.
			name: "reader-only mount volume: device read-write", cap: mountCap(rox, ""),
			runs: func(e env) []run { return formatRuns(e.device, e.staging, "ext4") },
			want: codes.OK, active: true, fsType: "ext4", dir: true,
		},
		{
			name: "block: activated, nothing run or mounted", cap: blockCap(rwo),
			want: codes.OK, active: true,
		},
		{
			name: "reader-only block: device read-only", cap: blockCap(rox),
			want: codes.OK, active: true, readOnly: true,
		},
		{
			// A block volume's staging is its device and nothing else:
			// asked for the other mode while nothing has the device
			// open, the engine switches it.
			name: "reader-only block over a device active read-write that nothing holds: switched", cap: blockCap(rox),
			setup: func(f *nodeFixture, id string) { activate(f, id, false) },
			want:  codes.OK, active: true, readOnly: true,
		},
		{
			name: "reader-only block over a device held read-write: refused, left as it was", cap: blockCap(rox),
			setup: func(f *nodeFixture, id string) { activate(f, id, false); hold(f, id) },
			want:  codes.FailedPrecondition, active: true,
		},
		{
			name: "unknown volume", cap: mountCap(rwo, ""), id: "vol-missing",
			want: codes.NotFound,
		},
		{
			name: "a snapshot read-write", cap: mountCap(rwo, ""),
			snapshot: true,
			want:     codes.InvalidArgument,
		},
		{
			name: "mkfs fails: activation undone", cap: mountCap(rwo, ""),
			runs: func(e env) []run {
				return []run{
					{argv: blkidArgv(e.device), err: exitStatus(2)},
					{argv: []string{"mkfs.ext4", "-F", "-m0", e.device}, out: "mkfs.ext4: Device size reported to be zero", err: exitStatus(1)},
				}
			},
			want: codes.Internal,
		},
		{
			name: "mkfs fails on a device active before: left active", cap: mountCap(rwo, ""),
			setup: func(f *nodeFixture, id string) { activate(f, id, false) },
			runs: func(e env) []run {
				return []run{
					{argv: blkidArgv(e.device), err: exitStatus(2)},
					{argv: []string{"mkfs.ext4", "-F", "-m0", e.device}, err: exitStatus(1)},
				}
			},
			want: codes.Internal, active: true,
		},
		{
			name: "the request ends while mkfs fails: activation undone all the same", cap: mountCap(rwo, ""),
			runs: func(e env) []run {
				return []run{
					{argv: blkidArgv(e.device), err: exitStatus(2)},
					{argv: []string{"mkfs.ext4", "-F", "-m0", e.device}, err: exitStatus(1)},
				}
			},
			cancelIn: true,
			want:     codes.Internal,
		},
		{
			name: "mount fails: activation undone", cap: mountCap(rwo, "ext4", "no_such_option"),
			mountErr: errors.New("mount failed: exit status 32"),
			runs: func(e env) []run {
				return []run{{argv: blkidArgv(e.device), out: "TYPE=ext4\n"}, {argv: []string{"fsck", "-a", e.device}}}
			},
			want: codes.Internal,
		},
		{
			name: "growing fails: unmounted and activation undone", cap: mountCap(rwo, "ext4"),
			runs: func(e env) []run {
				r := mountRuns(e.device, e.staging, "ext4")
				r[len(r)-1].err = exitStatus(1)
				return r
			},
			want: codes.Internal,
		},
		{
			name: "another device mounted at the staging path: activation undone, the mount kept", cap: mountCap(rwo, ""),
			setup: func(f *nodeFixture, id string) {
				mkdirAll(f.t, f.stagingPath(id))
				f.m.MountPoints = append(f.m.MountPoints, mount.MountPoint{Device: "/dev/dm-99", Path: f.stagingPath(id), Type: "ext4"})
			},
			want: codes.FailedPrecondition, fsType: "ext4", dir: true,
		},
		{
			name: "pool unhealthy: the activation is refused", cap: mountCap(rwo, ""),
			setup: func(f *nodeFixture, _ string) { f.pool.FailNext("ActivateDevice", unhealthy) },
			want:  codes.Unavailable,
		},
		{
			// A full pool still reads: a formatted volume stages.
			name: "pool full: a formatted volume stages", cap: mountCap(rwo, ""),
			setup: func(f *nodeFixture, _ string) { f.pool.SetHealth(noSpace) },
			runs:  func(e env) []run { return mountRuns(e.device, e.staging, "ext4") },
			want:  codes.OK, active: true, fsType: "ext4", dir: true,
		},
		{
			name: "pool full: mkfs cannot write, activation undone", cap: mountCap(rwo, ""),
			setup: func(f *nodeFixture, _ string) { f.pool.SetHealth(noSpace) },
			runs: func(e env) []run {
				return []run{
					{argv: blkidArgv(e.device), err: exitStatus(2)},
					{argv: []string{"mkfs.ext4", "-F", "-m0", e.device}, out: "No space left on device", err: exitStatus(1)},
				}
			},
			want: codes.Internal,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newNodeFixture(t)
			if tt.mountErr != nil {
				f = newNodeFixtureOver(t, func(m *mount.FakeMounter) mount.Interface { return failingMounter{m, tt.mountErr} })
			}
			id := f.volume("pv-1")
			if tt.setup != nil {
				tt.setup(f, id)
			}
			activated := f.pool.Calls("ActivateDevice")
			if tt.id != "" {
				id = tt.id
			}
			if tt.snapshot {
				s, err := f.pool.CreateSnapshot(context.Background(), "snap-1", id, nil)
				if err != nil {
					t.Fatal(err)
				}
				id = s.ID
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.runs != nil {
				runs := tt.runs(env{device: f.device(id), staging: f.stagingPath(id)})
				if tt.cancelIn {
					runs[len(runs)-1].do = cancel
				}
				f.script.expect(runs...)
			}
			err := f.stage(ctx, id, tt.cap, tt.vctx)
			wantCSI(t, err, tt.want)
			if n := f.pool.Calls("ActivateDevice") - activated; n != 1 {
				t.Errorf("%d activations, want 1", n)
			}
			f.wantActive(id, tt.active, tt.readOnly)
			f.wantPath(f.stagingPath(id), tt.dir)
			mp := f.mountAt(f.stagingPath(id))
			switch {
			case tt.fsType == "" && mp != nil:
				t.Errorf("the staging path has %+v mounted, want nothing", *mp)
			case tt.fsType != "" && (mp == nil || mp.Type != tt.fsType):
				t.Errorf("the staging path has %+v mounted, want %s", mp, tt.fsType)
			}
			if tt.fsType == "xfs" && !slices.Contains(mp.Opts, "nouuid") {
				t.Errorf("xfs mounted with %q, want nouuid", mp.Opts)
			}
		})
	}
}

// TestNodeStageVolumeAgain stages a volume, then asks again at the same
// staging path: the same request is OK and neither formats nor mounts a
// second time; an incompatible one gets the code the CSI spec names,
// ALREADY_EXISTS, and leaves the staging as it was.
func TestNodeStageVolumeAgain(t *testing.T) {
	tests := []struct {
		name        string
		first, then *csi.VolumeCapability
		thenCtx     map[string]string
		runs        func(device, staging string) []run // of the second stage
		want        codes.Code
		readOnly    bool // the device's mode afterwards
	}{
		{
			name: "mount, the same", first: mountCap(rwo, "ext4"), then: mountCap(rwo, "ext4"),
			runs: func(device, staging string) []run { return growRuns(device, staging, "ext4") },
			want: codes.OK,
		},
		{
			name: "mount, its filesystem from the volume context", first: mountCap(rwo, "xfs"), then: mountCap(rwo, ""),
			thenCtx: map[string]string{volcap.ParamFsType: "xfs"},
			runs:    func(device, staging string) []run { return growRuns(device, staging, "xfs") },
			want:    codes.OK,
		},
		{
			// The staging mount is read-write for readers too: they are
			// kept from writing by their publications.
			name: "mount, reader-only after read-write", first: mountCap(rwo, "ext4"), then: mountCap(rox, "ext4"),
			runs: func(device, staging string) []run { return growRuns(device, staging, "ext4") },
			want: codes.OK,
		},
		{
			name: "mount, another filesystem", first: mountCap(rwo, "ext4"), then: mountCap(rwo, "xfs"),
			want: codes.AlreadyExists,
		},
		{
			name: "block at the staging path of a mount volume", first: mountCap(rwo, "ext4"), then: blockCap(rwo),
			want: codes.AlreadyExists,
		},
		{
			name: "block, the same", first: blockCap(rwo), then: blockCap(rwo),
			want: codes.OK,
		},
		{
			name: "reader-only block, the same", first: blockCap(rox), then: blockCap(rox),
			want: codes.OK, readOnly: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newNodeFixture(t)
			id := f.volume("pv-1")
			device, staging := f.device(id), f.stagingPath(id)
			block := tt.first.GetBlock() != nil
			if !block {
				f.script.expect(formatRuns(device, staging, volcap.FsType(tt.first, nil))...)
			}
			if err := f.stage(context.Background(), id, tt.first, nil); err != nil {
				t.Fatal(err)
			}
			before := slices.Clone(f.m.MountPoints)
			if tt.runs != nil {
				f.script.expect(tt.runs(device, staging)...)
			}
			wantCSI(t, f.stage(context.Background(), id, tt.then, tt.thenCtx), tt.want)

			f.wantActive(id, true, tt.readOnly)
			if n := f.pool.Calls("Deactivate"); n != 0 {
				t.Errorf("%d deactivations, want none", n)
			}
			if !reflect.DeepEqual(f.m.MountPoints, before) {
				t.Errorf("mounts %+v, want them as the first stage left them: %+v", f.m.MountPoints, before)
			}
			if want := map[bool]int{false: 1}[block]; f.mounts() != want {
				t.Errorf("%d mounts, want %d", f.mounts(), want)
			}
			f.wantPath(staging, !block)
		})
	}
}
