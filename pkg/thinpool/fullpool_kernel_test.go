package thinpool_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// ekSyncedWriter writes mib MiB of pattern seed to a device a MiB at a
// time with O_DIRECT and O_DSYNC, as a database does: each write is on
// the device when it returns, and its error is the write's own. It counts
// the MiB written.
type ekSyncedWriter struct {
	path   string
	mib    int
	seed   byte
	synced int
	err    error
	failed time.Time // when the write that failed returned
	done   chan struct{}
}

func ekStartSyncedWriter(path string, mib int, seed byte) *ekSyncedWriter {
	w := &ekSyncedWriter{path: path, mib: mib, seed: seed, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		f, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT|unix.O_DSYNC, 0)
		if err != nil {
			w.err = err
			return
		}
		defer f.Close()
		// O_DIRECT wants an aligned buffer: a mapping is page-aligned.
		buf, err := unix.Mmap(-1, 0, ekMiB, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			w.err = err
			return
		}
		defer unix.Munmap(buf)
		for i := range mib {
			copy(buf, ekPattern(seed+byte(i), ekMiB))
			if _, err := f.Write(buf); err != nil {
				w.err, w.failed = err, time.Now()
				return
			}
			w.synced++
		}
	}()
	return w
}

// ekCheckSynced reads back what a writer synced.
func ekCheckSynced(t testing.TB, w *ekSyncedWriter) {
	t.Helper()
	for i := range w.synced {
		if got := ekReadDevice(t, w.path, int64(i)*ekMiB, ekMiB); !bytes.Equal(got, ekPattern(w.seed+byte(i), ekMiB)) {
			t.Fatalf("%s: MiB %d, synced before the pool filled, does not read back", w.path, i)
		}
	}
}

// ekCheckFull checks that a full pool says so and refuses what needs space
// with ErrNoSpace: a volume, a snapshot, a clone, a restore and an
// expansion; v is a volume in it and s a snapshot.
func ekCheckFull(t testing.TB, e *thinpool.Engine, v, s *thinpool.Volume) {
	t.Helper()
	err := e.Health()
	if !errors.Is(err, thinpool.ErrNoSpace) || errors.Is(err, thinpool.ErrUnhealthy) || thinpool.PoolState(err) != thinpool.StateOutOfDataSpace {
		t.Fatalf("health of the full pool: %v (state %s), want ErrNoSpace in state out_of_data_space", err, thinpool.PoolState(err))
	}
	refused := []struct {
		op string
		f  func() error
	}{
		{"create", func() error {
			_, err := e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: "refused", RequiredBytes: ekMiB})
			return err
		}},
		{"snapshot", func() error { _, err := e.CreateSnapshot(t.Context(), "refused", v.ID, nil); return err }},
		{"clone", func() error {
			_, err := e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: "refused-clone", SourceID: v.ID})
			return err
		}},
		{"expand", func() error { _, err := e.Expand(t.Context(), v.ID, v.SizeBytes*2); return err }},
	}
	if s != nil {
		refused = append(refused, struct {
			op string
			f  func() error
		}{"restore", func() error {
			_, err := e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: "refused-restore", SourceID: s.ID})
			return err
		}})
	}
	for _, r := range refused {
		err := r.f()
		ekIs(t, r.op+" on the full pool", err, thinpool.ErrNoSpace)
		if !strings.Contains(err.Error(), "delete volumes or snapshots") {
			t.Fatalf("%s on the full pool does not say what to do: %v", r.op, err)
		}
	}
	if got, err := e.Get(v.ID); err != nil || got.SizeBytes != v.SizeBytes {
		t.Fatalf("a refused expansion changed %s: %+v %v", v.ID, got, err)
	}
	if c, err := e.Capacity(); err != nil || c.AvailableBytes != 0 {
		t.Fatalf("the full pool's capacity %+v (%v): want nothing available", c, err)
	}
	ekCheckPromised(t, e)
}

// ekNoSpaceTimeout is how long the kernel queues writes to a full pool in
// queue mode before it fails them (dm-thin-pool's no_space_timeout; 0:
// forever).
func ekNoSpaceTimeout(t testing.TB) time.Duration {
	t.Helper()
	b, err := os.ReadFile("/sys/module/dm_thin_pool/parameters/no_space_timeout")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(n) * time.Second
}

// A 64 MiB loopback pool filled by two concurrent writers goes
// out_of_data_space. The engine says so (ErrNoSpace, not ErrUnhealthy),
// refuses creates of every kind and takes deletes: a snapshot's (which
// frees nothing, its blocks being shared) and then a volume's, which frees
// its blocks; the kernel puts the pool back in write mode at the delete's
// commit, and creates work again. The writers write synchronously
// (O_DIRECT, O_DSYNC). With error_if_no_space the writes past the end fail
// at once (the kernel gives ENOSPC); without it they wait in the kernel
// and finish once the delete freed space, well within no_space_timeout.
// What was written before reads back either way.
func TestEngineFullPoolDeletesFreeSpace(t *testing.T) {
	for _, errorIfNoSpace := range []bool{true, false} {
		t.Run(fmt.Sprintf("error_if_no_space=%v", errorIfNoSpace), func(t *testing.T) {
			cfg := ekLoopConfig(t, 64*ekMiB)
			cfg.ErrorIfNoSpace = errorIfNoSpace
			ctl := ekControl(t)
			e := ekOpen(t, cfg)
			timeout := ekNoSpaceTimeout(t)
			t.Logf("no_space_timeout %v", timeout)

			// 8 MiB kept, with a snapshot sharing them; 24 MiB in a
			// volume that will be deleted; 32 MiB left for the writers.
			kept := ekCreate(t, e, "kept", 16*ekMiB)
			ekWrite(t, e, kept, 0, ekPattern(1, 8*ekMiB))
			snap := ekSnapshot(t, e, "snap", kept.ID)
			freeable := ekCreate(t, e, "freeable", 32*ekMiB)
			ekWrite(t, e, freeable, 0, ekPattern(2, 24*ekMiB))

			// Error mode: each writer wants more than the pool has. Queue
			// mode: together they want 40 MiB, 8 more than is left and
			// less than the delete frees.
			want := 20
			if errorIfNoSpace {
				want = 60
			}
			var writers []*ekSyncedWriter
			var vols []*thinpool.Volume
			for i := range 2 {
				w := ekCreate(t, e, fmt.Sprintf("writer-%d", i), 64*ekMiB)
				vols = append(vols, w)
				writers = append(writers, ekStartSyncedWriter(ekActivate(t, e, w), want, byte(10+40*i)))
			}
			t.Cleanup(func() {
				// Should the test fail while writes wait for space, let
				// them fail instead, so that the pool can be torn down.
				pt, sectors := ekPoolTable(t, ctl, cfg.PoolName)
				pt.Features.ErrorIfNoSpace = true
				ctl.ReloadPool(cfg.PoolName, pt, sectors)
				for _, w := range writers {
					<-w.done
				}
			})
			ekWaitPoolMode(t, ctl, cfg.PoolName, dm.PoolModeOutOfDataSpace)
			full := time.Now()
			if errorIfNoSpace {
				for _, w := range writers {
					<-w.done
					if w.err == nil {
						t.Fatalf("%d MiB written past the end of the full pool with error_if_no_space", w.mib)
					}
					t.Logf("%s failed %v after the pool went out_of_data_space, %d MiB written before: %v",
						w.path, max(w.failed.Sub(full), 0), w.synced, w.err)
				}
			}
			st := ekStatus(t, ctl, cfg.PoolName)
			t.Logf("full: %d of %d blocks used", st.DataUsed, st.DataTotal)
			ekCheckFull(t, e, kept, snap)

			// A snapshot's delete frees nothing: its blocks are kept's.
			ekDelete(t, e, snap)
			if _, err := e.Get(snap.ID); !errors.Is(err, thinpool.ErrNotFound) {
				t.Fatalf("snapshot after its delete: %v", err)
			}
			if st := ekStatus(t, ctl, cfg.PoolName); st.Mode != dm.PoolModeOutOfDataSpace {
				t.Fatalf("pool mode %q after deleting a snapshot that freed nothing, want still out_of_data_space", st.Mode)
			}
			// A volume's delete frees its 24 MiB.
			start := time.Now()
			ekDelete(t, e, freeable)
			if errorIfNoSpace {
				if st := ekStatus(t, ctl, cfg.PoolName); st.Mode != dm.PoolModeReadWrite {
					t.Fatalf("pool mode %q after the delete freed space, want rw", st.Mode)
				}
			} else {
				for _, w := range writers {
					select {
					case <-w.done:
					case <-time.After(timeout - time.Since(full)):
						t.Fatalf("queued writes did not finish within no_space_timeout after the delete freed space")
					}
					if w.err != nil {
						t.Fatalf("queued writes failed after the delete freed space: %v", w.err)
					}
				}
				t.Logf("queued writes finished %v after the delete, %v after the pool filled", time.Since(start), time.Since(full))
			}
			st = ekStatus(t, ctl, cfg.PoolName)
			t.Logf("after the delete: mode %s, %d of %d blocks used", st.Mode, st.DataUsed, st.DataTotal)
			if st.Mode != dm.PoolModeReadWrite {
				t.Fatalf("pool mode %q once the writes are done, want rw", st.Mode)
			}
			if err := e.Health(); err != nil {
				t.Fatalf("health after space was freed: %v", err)
			}
			for i, w := range writers {
				ekCheckSynced(t, w)
				ekDeactivate(t, e, vols[i])
			}
			ekExpect(t, e, kept, map[int64][]byte{0: ekPattern(1, 8*ekMiB)})
			ekCheckWell(t, e, kept, "after-delete")
			ekDelete(t, e, vols[0])
			ekCheckPromised(t, e)
		})
	}
}
