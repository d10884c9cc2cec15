package thinpool

import (
	"encoding/json"
	"fmt"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// writeFormatOne leaves the database at path as csi-thin with the format 1
// store leaves it: keyPending holds the id of the one record in flight,
// and there is no intent. It writes the keys itself, not through the
// store, so that the test keeps the old layout whatever the store becomes.
func writeFormatOne(t *testing.T, path string, committed uint64, recs []*Volume, pendingID string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{"objects", "names", "thins", "meta"} {
			if tx.Bucket([]byte(b)) != nil {
				if err := tx.DeleteBucket([]byte(b)); err != nil {
					return err
				}
			}
			if _, err := tx.CreateBucket([]byte(b)); err != nil {
				return err
			}
		}
		var maxThin uint32
		for _, v := range recs {
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			if err := tx.Bucket([]byte("objects")).Put([]byte(v.ID), b); err != nil {
				return err
			}
			if err := tx.Bucket([]byte("names")).Put([]byte(string(v.Kind)+"/"+v.Name), []byte(v.ID)); err != nil {
				return err
			}
			if err := tx.Bucket([]byte("thins")).Put(thinKey(v.ThinID), []byte(v.ID)); err != nil {
				return err
			}
			maxThin = max(maxThin, v.ThinID)
		}
		meta := tx.Bucket([]byte("meta"))
		for k, v := range map[string][]byte{"format": []byte("1"), "committed": putU64(committed), "nextThin": putU64(uint64(maxThin) + 1)} {
			if err := meta.Put([]byte(k), v); err != nil {
				return err
			}
		}
		if pendingID != "" {
			return meta.Put([]byte("pending"), []byte(pendingID))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A database the format 1 store wrote, with a change in flight at each
// of its steps, recovers after the upgrade as it would have before: the
// pool's transaction id decides, and the database is format 2 after.
func TestFormatOneDatabaseRecovers(t *testing.T) {
	cases := []struct {
		op         string
		step       int // 0: nothing in flight; 1 intent, 2 pool changed, 3 transaction id moved
		wantExists bool
	}{
		{"none", 0, true},
		{"create", 1, false},
		{"create", 2, false},
		{"create", 3, true},
		{"delete", 1, false},
		{"delete", 2, false},
		{"delete", 3, false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s step %d", c.op, c.step), func(t *testing.T) {
			fk := newFakeKernel()
			cfg, err := Config{StateDir: t.TempDir(), PoolSizeBytes: gib}.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			keep := &Volume{ID: "vol-000000000000000000000001", Kind: KindVolume, Name: "keep", ThinID: 1, SizeBytes: gib}
			x := &Volume{ID: "vol-000000000000000000000002", Kind: KindVolume, Name: "x", ThinID: 2, SizeBytes: gib}
			fk.thins[1] = true
			fk.txid = 1
			recs, pending := []*Volume{keep}, ""
			switch c.op {
			case "none":
				fk.thins[2] = true
				recs = append(recs, x)
			case "create":
				p := *x
				p.State, p.TxID = stateCreating, 2
				recs, pending = append(recs, &p), p.ID
				if c.step >= 2 {
					fk.thins[2] = true
				}
			case "delete":
				p := *x
				p.State, p.TxID = stateDeleting, 2
				recs, pending = append(recs, &p), p.ID
				if c.step < 2 {
					fk.thins[2] = true
				}
			}
			if c.step >= 3 {
				fk.txid = 2
			}
			writeFormatOne(t, cfg.dbPath(), 1, recs, pending)

			e := startTestEngine(t, fk, cfg)
			checkAgreement(t, e, fk)
			got, err := e.GetByName(KindVolume, "x")
			if c.wantExists != (err == nil) {
				t.Fatalf("after recovery: %+v, %v; want exists=%v", got, err, c.wantExists)
			}
			if _, err := e.Get(keep.ID); err != nil {
				t.Fatalf("the record not in flight was lost: %v", err)
			}
			var format string
			e.store.db.View(func(tx *bolt.Tx) error {
				format = string(tx.Bucket(bucketMeta).Get(keyFormat))
				if tx.Bucket(bucketMeta).Get(keyPending) != nil {
					t.Error("the format 1 pending key outlived the upgrade")
				}
				return nil
			})
			if format != storeFormat {
				t.Errorf("database format %q after the upgrade, want %q", format, storeFormat)
			}
			// The next change's thin id is past the old database's.
			v, err := e.CreateVolume(t.Context(), CreateRequest{Name: "y", RequiredBytes: gib})
			if err != nil {
				t.Fatal(err)
			}
			if v.ThinID <= 1 {
				t.Errorf("new volume got thin %d, which the old database had handed out", v.ThinID)
			}
			checkAgreement(t, e, fk)
		})
	}
}

// crashSetAt leaves the database and pool as a crash would, for one
// change of several records: the intent recorded, then the first applied
// of them applied (creates made, deletes done), then the transaction id
// moved when txid is set.
func crashSetAt(t *testing.T, e *Engine, fk *fakeKernel, vs []*Volume, applied int, txid bool) {
	t.Helper()
	committed := e.committed.Load()
	for _, v := range vs {
		v.TxID = committed + 1
	}
	if err := e.store.writeIntent(committed, vs, nil); err != nil {
		t.Fatal(err)
	}
	for _, v := range vs[:applied] {
		var err error
		if v.State == stateDeleting {
			err = fk.DeleteThin("pool", v.ThinID)
		} else {
			err = fk.CreateThin("pool", v.ThinID)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if txid {
		if err := fk.SetTransactionID("pool", committed, committed+1); err != nil {
			t.Fatal(err)
		}
	}
}

// One intent of several records recovers as one change: all of its
// creates or none, and its deletes always finished, with the records and
// the pool agreeing, whatever step it was cut at. The mixed intent is
// what a batch of unrelated changes writes.
func TestRecoveryOfAnIntentOfSeveralRecords(t *testing.T) {
	type want struct{ creates bool }
	cases := []struct {
		name    string
		creates int
		deletes int
		applied int
		txid    bool
		want    want
	}{
		{"3 creates, intent only", 3, 0, 0, false, want{false}},
		{"3 creates, 1 made", 3, 0, 1, false, want{false}},
		{"3 creates, all made", 3, 0, 3, false, want{false}},
		{"3 creates, committed", 3, 0, 3, true, want{true}},
		{"2 deletes, intent only", 0, 2, 0, false, want{}},
		{"2 deletes, 1 done", 0, 2, 1, false, want{}},
		{"2 deletes, committed", 0, 2, 2, true, want{}},
		{"creates and deletes, intent only", 2, 2, 0, false, want{false}},
		{"creates and deletes, 3 applied", 2, 2, 3, false, want{false}},
		{"creates and deletes, committed", 2, 2, 4, true, want{true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fk := newFakeKernel()
			e := testEngine(t, fk)
			keep, err := e.CreateVolume(t.Context(), CreateRequest{Name: "keep", RequiredBytes: gib})
			if err != nil {
				t.Fatal(err)
			}
			var vs []*Volume
			for i := 0; i < c.creates; i++ {
				vs = append(vs, &Volume{ID: newID(KindVolume), Kind: KindVolume, Name: fmt.Sprint("new", i), SizeBytes: gib, State: stateCreating})
			}
			for i := 0; i < c.deletes; i++ {
				v, err := e.CreateVolume(t.Context(), CreateRequest{Name: fmt.Sprint("old", i), RequiredBytes: gib})
				if err != nil {
					t.Fatal(err)
				}
				d := *v
				d.State = stateDeleting
				vs = append(vs, &d)
			}
			crashSetAt(t, e, fk, vs, c.applied, c.txid)
			e = restart(t, e, fk)
			checkAgreement(t, e, fk)
			for i := 0; i < c.creates; i++ {
				_, err := e.GetByName(KindVolume, fmt.Sprint("new", i))
				if c.want.creates != (err == nil) {
					t.Errorf("create %d after recovery: %v, want exists=%v", i, err, c.want.creates)
				}
			}
			for i := 0; i < c.deletes; i++ {
				if v, err := e.GetByName(KindVolume, fmt.Sprint("old", i)); err == nil {
					t.Errorf("delete %d after recovery: %s still exists", i, v.ID)
				}
			}
			if _, err := e.Get(keep.ID); err != nil {
				t.Errorf("the record not in flight was lost: %v", err)
			}
			if _, err := e.CreateVolume(t.Context(), CreateRequest{Name: "after", RequiredBytes: gib}); err != nil {
				t.Fatalf("a change after the recovery: %v", err)
			}
			checkAgreement(t, e, fk)
		})
	}
}
