package thinmeta_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/csi-thin/csi-thin/internal/kerneltest"
	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
	"github.com/csi-thin/csi-thin/pkg/thinmeta"
)

const (
	kernelBlockBytes = 64 << 10 // the pool's data block
	kernelThinBlocks = 16384    // 1 GiB thin devices
)

// kernelPool is a live pool over loop devices, removed with its devices
// when the test ends.
type kernelPool struct {
	ctl     *dm.Control
	name    string
	dev     dm.Dev
	metaDev string // the metadata loop device's node
}

func newKernelPool(t *testing.T) *kernelPool {
	kerneltest.Require(t)
	ctl, err := dm.Open()
	if err != nil {
		t.Fatalf("open control: %v", err)
	}
	t.Cleanup(func() { ctl.Close() })
	// The data on disk, not in the kernel's memory; the metadata may be.
	dataFile := filepath.Join(kerneltest.ScratchDir(t), "data")
	if err := os.WriteFile(dataFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(dataFile, 2<<30); err != nil {
		t.Fatal(err)
	}
	metaFile := kerneltest.SparseFile(t, "meta", 64<<20)
	var loops []*dm.LoopDevice
	for _, f := range []string{dataFile, metaFile} {
		l, err := dm.AttachLoop(f, dm.LoopOptions{})
		if err != nil {
			t.Fatalf("attach %s: %v", f, err)
		}
		t.Cleanup(func() {
			if err := l.Detach(); err != nil {
				t.Errorf("detach %s: %v", l.Path, err)
			}
		})
		loops = append(loops, l)
	}
	p := &kernelPool{ctl: ctl, name: "csi-thin-test-" + strings.ReplaceAll(t.Name(), "/", "-"), metaDev: loops[1].Path}
	table := dm.PoolTable{MetadataDev: loops[1].DevNo(), DataDev: loops[0].DevNo(), DataBlockSize: kernelBlockBytes / 512,
		// Only the 4 KiB written of each block, not the whole block.
		Features: dm.PoolFeatures{SkipBlockZeroing: true}}
	if p.dev, err = ctl.CreatePool(p.name, "", table, 2<<30/512); err != nil {
		t.Fatalf("create pool: %v", err)
	}
	t.Cleanup(func() {
		for _, name := range []string{p.name + "-1", p.name} {
			if err := ctl.Remove(name, dm.RemoveOptions{}); err != nil && !errors.Is(err, dm.ErrNotFound) {
				t.Errorf("remove %s: %v", name, err)
			}
		}
	})
	return p
}

// activate activates thin id and returns its dm name and device node.
func (p *kernelPool) activate(t *testing.T, id uint32) (string, string) {
	t.Helper()
	name := fmt.Sprintf("%s-%d", p.name, id)
	dev, err := p.ctl.ActivateThin(name, "", dm.ThinTable{PoolDev: p.dev.String(), DeviceID: id}, kernelThinBlocks*kernelBlockBytes/512, false)
	if err != nil {
		t.Fatalf("activate thin %d: %v", id, err)
	}
	node, err := dm.DeviceNode(dev.Major, dev.Minor)
	if err != nil {
		t.Fatal(err)
	}
	return name, node
}

// writeBlocks writes 4 KiB at the start of each of the thin device's
// blocks, which maps them, and flushes, which commits the mappings.
func writeBlocks(t *testing.T, node string, blocks []uint64) {
	t.Helper()
	f, err := os.OpenFile(node, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for _, b := range blocks {
		buf[0], buf[1] = byte(b), byte(b>>8)
		if _, err := f.WriteAt(buf, int64(b)*kernelBlockBytes); err != nil {
			t.Fatalf("write block %d of %s: %v", b, node, err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func blockRange(from, to uint64) []uint64 {
	var out []uint64
	for b := from; b < to; b++ {
		out = append(out, b)
	}
	return out
}

// The pool's own metadata snapshot, read while the pool goes on: the
// mappings and the delta of a snapshot and its origin are what was written
// before the snapshot was reserved, whatever is written after, and the
// delta reads a small part of what the two trees hold.
func TestHeldMetadataSnapshot(t *testing.T) {
	p := newKernelPool(t)
	ctx := context.Background()
	if err := p.ctl.CreateThin(p.name, 1); err != nil {
		t.Fatal(err)
	}
	origin, node := p.activate(t, 1)
	snapBlocks := blockRange(0, 12000)
	writeBlocks(t, node, snapBlocks)

	// Thin 2, a snapshot of the active thin 1.
	if err := p.ctl.Suspend(origin, dm.SuspendOptions{}); err != nil {
		t.Fatal(err)
	}
	snapErr := p.ctl.CreateSnap(p.name, 2, 1)
	if err := p.ctl.Resume(origin, 0); err != nil {
		t.Fatal(err)
	}
	if snapErr != nil {
		t.Fatalf("create_snap: %v", snapErr)
	}

	// Writes over shared blocks, new blocks, and a discard.
	changed := []uint64{1, 700, 3000, 13000, 15000, 15001, 15002}
	writeBlocks(t, node, changed)
	if err := dm.Discard(node, 1400*kernelBlockBytes, kernelBlockBytes); err != nil {
		t.Fatalf("discard block 1400: %v", err)
	}
	originBlocks := slices.DeleteFunc(slices.Concat(snapBlocks, changed[3:]), func(b uint64) bool { return b == 1400 })
	slices.Sort(originBlocks)
	changed = append(changed, 1400)
	slices.Sort(changed)

	if err := p.ctl.ReserveMetadataSnap(p.name); err != nil {
		t.Fatalf("reserve_metadata_snap: %v", err)
	}
	released := false
	t.Cleanup(func() {
		if !released {
			p.ctl.ReleaseMetadataSnap(p.name)
		}
	})
	// What the pool does after the reservation is not in the snapshot.
	writeBlocks(t, node, []uint64{2, 14000})
	if err := dm.Discard(node, 5*kernelBlockBytes, kernelBlockBytes); err != nil {
		t.Fatalf("discard block 5: %v", err)
	}
	st, err := p.ctl.PoolStatus(p.name)
	if err != nil || !st.HasHeldMetadataRoot {
		t.Fatalf("pool status %+v, %v: want a held metadata root", st, err)
	}

	r, err := thinmeta.Open(p.metaDev)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.DirectIO() {
		t.Fatalf("%s, a block device, is read through the page cache", p.metaDev)
	}
	root, err := r.HeldRoot()
	if err != nil || root != st.HeldMetadataRoot {
		t.Fatalf("held root %d, %v; the pool status says %d", root, err, st.HeldMetadataRoot)
	}
	tr, err := r.Snapshot(root)
	if err != nil {
		t.Fatal(err)
	}
	if sb := tr.Superblock(); sb.DataBlockBytes() != kernelBlockBytes || sb.Block != root {
		t.Fatalf("snapshot superblock %v", sb)
	}
	devs, err := tr.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 || devs[0].ID != 1 || devs[1].ID != 2 ||
		devs[0].MappedBlocks != uint64(len(originBlocks)) || devs[1].MappedBlocks != uint64(len(snapBlocks)) {
		t.Fatalf("devices %+v, want 1 with %d blocks mapped and 2 with %d", devs, len(originBlocks), len(snapBlocks))
	}

	before := r.BlocksRead()
	checkExtents(t, "mappings of the origin", mappings(t, tr, 1, 0), blockExtents(originBlocks, 0))
	checkExtents(t, "mappings of the snapshot", mappings(t, tr, 2, 0), blockExtents(snapBlocks, 0))
	walkReads := r.BlocksRead() - before
	checkExtents(t, "mappings of the origin from 11999", mappings(t, tr, 1, 11999), blockExtents(originBlocks, 11999))

	tr, err = r.Snapshot(root) // a cold cache
	if err != nil {
		t.Fatal(err)
	}
	before = r.BlocksRead()
	checkExtents(t, "delta", delta(t, tr, 2, 1, 0), blockExtents(changed, 0))
	deltaReads := r.BlocksRead() - before
	t.Logf("the delta read %d blocks, the walks of both devices' mappings %d", deltaReads, walkReads)
	if deltaReads*3 > walkReads {
		t.Fatalf("the delta read %d blocks, more than a third of the %d of both trees: it does not skip what they share", deltaReads, walkReads)
	}
	checkExtents(t, "delta from 2000", delta(t, tr, 2, 1, 2000), blockExtents(changed, 2000))

	if err := p.ctl.ReleaseMetadataSnap(p.name); err != nil {
		t.Fatalf("release_metadata_snap: %v", err)
	}
	released = true
	if _, err := r.HeldRoot(); !errors.Is(err, thinmeta.ErrNoHeldRoot) {
		t.Fatalf("held root after release_metadata_snap: got %v, want ErrNoHeldRoot", err)
	}
}
