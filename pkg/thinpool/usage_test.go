package thinpool

import (
	"errors"
	"testing"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// TestUsageReadsThePoolStatusOnce: what a metrics scrape reads of the
// pool, capacity and health, comes from one status read, which commits
// the pool's metadata.
func TestUsageReadsThePoolStatusOnce(t *testing.T) {
	cases := []struct {
		name        string
		set         func(*dm.PoolStatus)
		readErr     error // injected into the status read
		wantHealthy bool
	}{
		{"healthy", nil, nil, true},
		{"read-only", func(s *dm.PoolStatus) { s.Mode = dm.PoolModeReadOnly }, nil, false},
		{"needs_check", func(s *dm.PoolStatus) { s.NeedsCheck = true }, nil, false},
		{"status unreadable", nil, kerr("status", "pool", unix.ENXIO), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fk := newFakeKernel()
			e := testEngine(t, fk)
			if _, err := e.CreateVolume(t.Context(), CreateRequest{Name: "v", RequiredBytes: gib}); err != nil {
				t.Fatal(err)
			}
			want, err := e.Capacity()
			if err != nil {
				t.Fatal(err)
			}
			fk.mu.Lock()
			if c.set != nil {
				c.set(&fk.status)
			}
			fk.mu.Unlock()
			if c.readErr != nil {
				fk.failNext("status", c.readErr)
			}
			before := fk.count("status")
			u, err := e.Usage()
			if n := fk.count("status") - before; n != 1 {
				t.Errorf("%d pool status reads, want 1", n)
			}
			if (u.Health == nil) != c.wantHealthy || (u.Health != nil && !errors.Is(u.Health, ErrUnhealthy)) {
				t.Errorf("health %v, want healthy %v", u.Health, c.wantHealthy)
			}
			if c.readErr != nil {
				if !errors.Is(err, unix.ENXIO) || u.Capacity != (Capacity{}) {
					t.Fatalf("usage %+v, %v; want the read's error and no capacity", u, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want.AvailableBytes = u.AvailableBytes; u.Capacity != want {
				t.Errorf("capacity %+v, want %+v", u.Capacity, want)
			}
			if u.PromisedBytes != gib {
				t.Errorf("promised %d bytes, want %d", u.PromisedBytes, gib)
			}
		})
	}
}

// TestCountIsWhatListReturns counts volumes and snapshots with a change in
// flight at each step of the journal, as List sees them.
func TestCountIsWhatListReturns(t *testing.T) {
	type change struct {
		op   string // "create" or "delete"
		kind Kind
		step int // crashAt's: 1 intent, 2 pool changed, 3 transaction id moved
	}
	cases := []struct {
		name   string
		change *change // left in flight; nil: none
	}{
		{"settled", nil},
		{"create recorded", &change{"create", KindVolume, 1}},
		{"create in the pool", &change{"create", KindVolume, 2}},
		{"create committed, not yet known", &change{"create", KindVolume, 3}},
		{"snapshot recorded", &change{"create", KindSnapshot, 1}},
		{"delete recorded", &change{"delete", KindVolume, 1}},
		{"delete in the pool", &change{"delete", KindVolume, 2}},
		{"snapshot delete recorded", &change{"delete", KindSnapshot, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fk := newFakeKernel()
			e := testEngine(t, fk)
			var last *Volume
			for _, n := range []string{"a", "b", "c"} {
				v, err := e.CreateVolume(t.Context(), CreateRequest{Name: n, RequiredBytes: gib})
				if err != nil {
					t.Fatal(err)
				}
				last = v
			}
			s, err := e.CreateSnapshot(t.Context(), "s", last.ID, nil)
			if err != nil {
				t.Fatal(err)
			}
			check := func(when string) {
				t.Helper()
				for _, kind := range []Kind{KindVolume, KindSnapshot} {
					list, _, err := e.List(kind, "", 0)
					if err != nil {
						t.Fatal(err)
					}
					if n, err := e.Count(kind); err != nil || n != len(list) {
						t.Errorf("%s: %d %ss counted (%v), List has %d", when, n, kind, err, len(list))
					}
				}
			}
			check("settled")
			if ch := c.change; ch != nil {
				var v *Volume
				switch {
				case ch.op == "create":
					v = &Volume{ID: newID(ch.kind), Kind: ch.kind, Name: "x", SizeBytes: gib, State: stateCreating}
				case ch.kind == KindSnapshot:
					d := *s
					d.State, v = stateDeleting, &d
				default:
					d := *last
					d.State, v = stateDeleting, &d
				}
				crashAt(t, e, fk, v, ch.step)
				check("in flight")
				e = restart(t, e, fk)
				check("recovered")
			}
		})
	}
}

// TestCountReadsNoRecord: counting never decodes a record, so a scrape
// costs a walk of the keys whatever the records hold.
func TestCountReadsNoRecord(t *testing.T) {
	fk := newFakeKernel()
	e := testEngine(t, fk)
	v, err := e.CreateVolume(t.Context(), CreateRequest{Name: "v", RequiredBytes: gib})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateVolume(t.Context(), CreateRequest{Name: "w", RequiredBytes: gib}); err != nil {
		t.Fatal(err)
	}
	// A record that is not JSON: List must read it and fails; Count must not.
	if err := e.store.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketObjects).Put([]byte(v.ID), []byte("not a record"))
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.List(KindVolume, "", 0); err == nil {
		t.Fatal("List read a record that is not JSON")
	}
	if n, err := e.Count(KindVolume); err != nil || n != 2 {
		t.Fatalf("counted %d volumes (%v), want 2", n, err)
	}
}
