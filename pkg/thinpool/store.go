package thinpool

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// The database's buckets and keys.
var (
	bucketObjects = []byte("objects") // id -> JSON Volume
	bucketNames   = []byte("names")   // kind/name -> id
	bucketThins   = []byte("thins")   // thin id (4 bytes, big-endian) -> id
	bucketGroups  = []byte("groups")  // id -> JSON Group
	bucketMeta    = []byte("meta")

	keyFormat    = []byte("format")    // storeFormat
	keyCommitted = []byte("committed") // last pool transaction id the store knows completed
	keyIntent    = []byte("intent")    // JSON intent: the records whose change is in flight
	keyNextThin  = []byte("nextThin")  // where thin id allocation resumes
	keyPool      = []byte("pool")      // JSON poolIdentity

	// keyPending is format 1's journal: the id of the one record whose
	// change was in flight. Opening a format 1 database turns it into an
	// intent of that one record.
	keyPending = []byte("pending")
)

// storeFormat is the database's layout. Format 2 (this one) journals an
// intent of any number of records; format 1 held one record's id in
// keyPending, and is upgraded in place when opened.
const (
	storeFormat      = "2"
	storeFormatOneID = "1"
)

// intent is the journal's change in flight: every record, and every group
// record, that one pool transaction completes. Each of those records
// carries the change (its State) and the transaction (its TxID), so that
// the intent only says which records to settle or roll back, together.
type intent struct {
	IDs    []string `json:"ids"`
	Groups []string `json:"groups,omitempty"`
}

// store is the bbolt database of records and the journal.
type store struct {
	db      *bolt.DB
	path    string
	commits atomic.Int64 // durable write transactions, for metrics and tests
	// inIntent, set only by tests before the store is used, is called
	// inside the durable commit of each intent, before bbolt writes and
	// fsyncs it: a test holds a change there, with the pool lock taken.
	inIntent func(v *Volume)
}

// update runs fn in one durable write transaction.
func (s *store) update(fn func(*bolt.Tx) error) error {
	s.commits.Add(1)
	return s.db.Update(fn)
}

func openStore(path string) (*store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("state database %s is locked by another process: stop the other csi-thin on this node first", path)
		}
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketObjects, bucketNames, bucketThins, bucketGroups, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch f := meta.Get(keyFormat); {
		case f == nil:
			return meta.Put(keyFormat, []byte(storeFormat))
		case string(f) == storeFormatOneID:
			return upgradeFormatOneTx(tx)
		case string(f) != storeFormat:
			return fmt.Errorf("state database format %q is not %q: this csi-thin is older than the one that wrote it", f, storeFormat)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("state database %s: %w", path, err)
	}
	return &store{db: db, path: path}, nil
}

func (s *store) close() error { return s.db.Close() }

// upgradeFormatOneTx turns a format 1 database into format 2, in the
// transaction that opens it: the record id in keyPending becomes an
// intent of that one record. The records themselves are the same in both
// formats, so a change a format 1 engine left in flight recovers as it
// would have there. An older csi-thin refuses the upgraded database, as it
// refuses any format it does not know.
func upgradeFormatOneTx(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if id := meta.Get(keyPending); id != nil {
		if err := putIntentTx(tx, &intent{IDs: []string{string(id)}}); err != nil {
			return err
		}
		if err := meta.Delete(keyPending); err != nil {
			return err
		}
	}
	return meta.Put(keyFormat, []byte(storeFormat))
}

func getIntentTx(tx *bolt.Tx) (*intent, error) {
	b := tx.Bucket(bucketMeta).Get(keyIntent)
	if b == nil {
		return nil, nil
	}
	in := &intent{}
	if err := json.Unmarshal(b, in); err != nil {
		return nil, fmt.Errorf("the journal's intent is corrupt: %w", err)
	}
	return in, nil
}

// putIntentTx records in as the change in flight; nil or an empty intent
// forgets it.
func putIntentTx(tx *bolt.Tx, in *intent) error {
	meta := tx.Bucket(bucketMeta)
	if in == nil || len(in.IDs)+len(in.Groups) == 0 {
		return meta.Delete(keyIntent)
	}
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return meta.Put(keyIntent, b)
}

func u64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func putU64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func thinKey(id uint32) []byte { return binary.BigEndian.AppendUint32(nil, id) }

func nameKey(kind Kind, name string) []byte { return []byte(string(kind) + "/" + name) }

func getTx(tx *bolt.Tx, id string) (*Volume, error) {
	b := tx.Bucket(bucketObjects).Get([]byte(id))
	if b == nil {
		return nil, nil
	}
	v := &Volume{}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("record %s is corrupt: %w", id, err)
	}
	return v, nil
}

func putTx(tx *bolt.Tx, v *Volume) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketObjects).Put([]byte(v.ID), b); err != nil {
		return err
	}
	if v.GroupID == "" { // a group's member is found through its group
		if err := tx.Bucket(bucketNames).Put(nameKey(v.Kind, v.Name), []byte(v.ID)); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketThins).Put(thinKey(v.ThinID), []byte(v.ID))
}

func deleteTx(tx *bolt.Tx, v *Volume) error {
	if err := tx.Bucket(bucketObjects).Delete([]byte(v.ID)); err != nil {
		return err
	}
	if v.GroupID == "" {
		if err := tx.Bucket(bucketNames).Delete(nameKey(v.Kind, v.Name)); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketThins).Delete(thinKey(v.ThinID))
}

// journal is what the store says of the journal: the last completed pool
// transaction and the records whose change may be in flight, all of them
// completed by one pool transaction.
type journal struct {
	committed uint64
	pending   []*Volume
	groups    []*Group
}

// subject names the change in flight in errors: its group, or its first
// record.
func (j journal) subject() string {
	switch {
	case len(j.groups) > 0:
		return j.groups[0].ID
	case len(j.pending) > 0:
		return j.pending[0].ID
	}
	return "the change in flight"
}

// txID is the pool transaction that completes the change in flight; 0 when
// none is. The records of one intent share it; a mix is corruption.
func (j journal) txID() (uint64, error) {
	var tx uint64
	check := func(id string, t uint64) error {
		if tx != 0 && t != tx {
			return fmt.Errorf("the journal's intent is corrupt: %s is in transaction %d, the intent's other records in %d", id, t, tx)
		}
		tx = t
		return nil
	}
	for _, v := range j.pending {
		if err := check(v.ID, v.TxID); err != nil {
			return 0, err
		}
	}
	for _, g := range j.groups {
		if err := check(g.ID, g.TxID); err != nil {
			return 0, err
		}
	}
	return tx, nil
}

// journal reads the journal. The records of the intent that are ready (an
// intent dropped halfway, a record written since) are not pending.
func (s *store) journal() (journal, error) {
	var j journal
	err := s.db.View(func(tx *bolt.Tx) error {
		j.committed = u64(tx.Bucket(bucketMeta).Get(keyCommitted))
		in, err := getIntentTx(tx)
		if err != nil || in == nil {
			return err
		}
		for _, id := range in.IDs {
			v, err := getTx(tx, id)
			if err != nil {
				return err
			}
			if v != nil && v.State != stateReady {
				j.pending = append(j.pending, v)
			}
		}
		for _, id := range in.Groups {
			g, err := getGroupTx(tx, id)
			if err != nil {
				return err
			}
			if g != nil && g.State != stateReady {
				j.groups = append(j.groups, g)
			}
		}
		return nil
	})
	return j, err
}

// settleTx applies the change in flight, once the pool has completed it
// (its transaction is at most committed), to the records, and records
// committed. The intent's records settle together: a record still past
// committed is corruption, which refuses the whole intent.
func settleTx(tx *bolt.Tx, committed uint64) error {
	in, err := getIntentTx(tx)
	if err != nil {
		return err
	}
	if in != nil {
		for _, id := range in.IDs {
			v, err := getTx(tx, id)
			if err != nil {
				return err
			}
			if v == nil {
				continue
			}
			switch s := v.settled(committed); {
			case s == v:
				if v.State != stateReady {
					return fmt.Errorf("record %s is still %s in transaction %d, past the pool's %d", v.ID, v.State, v.TxID, committed)
				}
			case s == nil:
				if err := deleteTx(tx, v); err != nil {
					return err
				}
			default:
				if err := putTx(tx, s); err != nil {
					return err
				}
			}
		}
		for _, id := range in.Groups {
			g, err := getGroupTx(tx, id)
			if err != nil {
				return err
			}
			if g == nil {
				continue
			}
			switch s := g.settled(committed); {
			case s == g:
				if g.State != stateReady {
					return fmt.Errorf("group snapshot %s is still %s in transaction %d, past the pool's %d", g.ID, g.State, g.TxID, committed)
				}
			case s == nil:
				if err := deleteGroupTx(tx, g); err != nil {
					return err
				}
			default:
				if err := putGroupTx(tx, s); err != nil {
					return err
				}
			}
		}
		if err := putIntentTx(tx, nil); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Put(keyCommitted, putU64(committed))
}

// writeIntent durably records the change to vs (and the group records gs)
// that pool transaction committed+1 will complete, after settling the
// change before it, in one commit. A new record (ThinID 0) gets a thin id
// no record names.
func (s *store) writeIntent(committed uint64, vs []*Volume, gs []*Group) error {
	return s.update(func(tx *bolt.Tx) error {
		if err := settleTx(tx, committed); err != nil {
			return err
		}
		in := &intent{}
		for _, v := range vs {
			if v.ThinID == 0 {
				id, err := allocThinTx(tx)
				if err != nil {
					return err
				}
				v.ThinID = id
			}
			if err := putTx(tx, v); err != nil {
				return err
			}
			in.IDs = append(in.IDs, v.ID)
		}
		for _, g := range gs {
			if err := putGroupTx(tx, g); err != nil {
				return err
			}
			in.Groups = append(in.Groups, g.ID)
		}
		if err := putIntentTx(tx, in); err != nil {
			return err
		}
		if s.inIntent != nil && len(vs) > 0 {
			s.inIntent(vs[0])
		}
		return nil
	})
}

// allocThinTx returns the next thin id after the last one handed out that
// no record names, wrapping at the pool's limit. Thin id 0 is never used.
func allocThinTx(tx *bolt.Tx) (uint32, error) {
	meta, thins := tx.Bucket(bucketMeta), tx.Bucket(bucketThins)
	next := uint32(u64(meta.Get(keyNextThin)))
	for tries := 0; tries <= dm.MaxThinID; tries++ {
		if next == 0 || next > dm.MaxThinID {
			next = 1
		}
		if thins.Get(thinKey(next)) == nil {
			return next, meta.Put(keyNextThin, putU64(uint64(next)+1))
		}
		next++
	}
	return 0, fmt.Errorf("%w: all %d thin device ids are in use", ErrNoSpace, dm.MaxThinID)
}

// dropIntent undoes writeIntent for a change the pool never completed: a
// new record is removed, a record being deleted is ready again. Records of
// the intent that are not among vs and gs stay in it.
func (s *store) dropIntent(vs []*Volume, gs []*Group) error {
	return s.update(func(tx *bolt.Tx) error {
		dropped := map[string]bool{}
		for _, v := range vs {
			dropped[v.ID] = true
			switch v.State {
			case stateCreating:
				if err := deleteTx(tx, v); err != nil {
					return err
				}
			case stateDeleting:
				r := *v
				r.State, r.TxID = stateReady, 0
				if err := putTx(tx, &r); err != nil {
					return err
				}
			}
		}
		for _, g := range gs {
			dropped[g.ID] = true
			switch g.State {
			case stateCreating:
				if err := deleteGroupTx(tx, g); err != nil {
					return err
				}
			case stateDeleting:
				r := *g
				r.State, r.TxID = stateReady, 0
				if err := putGroupTx(tx, &r); err != nil {
					return err
				}
			}
		}
		in, err := getIntentTx(tx)
		if err != nil || in == nil {
			return err
		}
		keep := &intent{}
		for _, id := range in.IDs {
			if !dropped[id] {
				keep.IDs = append(keep.IDs, id)
			}
		}
		for _, id := range in.Groups {
			if !dropped[id] {
				keep.Groups = append(keep.Groups, id)
			}
		}
		return putIntentTx(tx, keep)
	})
}

// settle records that the pool reached committed, settling the pending
// change if it is complete.
func (s *store) settle(committed uint64) error {
	return s.update(func(tx *bolt.Tx) error { return settleTx(tx, committed) })
}

// put writes a record outside the journal: a change the pool's metadata
// does not hold, such as a thin device's size. It settles the change
// before it first, which the record may be the subject of, so that the
// write cannot undo the journal's state.
func (s *store) put(committed uint64, v *Volume) error {
	return s.update(func(tx *bolt.Tx) error {
		if err := settleTx(tx, committed); err != nil {
			return err
		}
		return putTx(tx, v)
	})
}

// get returns the record with that id, nil if none.
func (s *store) get(id string) (*Volume, error) {
	var v *Volume
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		v, err = getTx(tx, id)
		return err
	})
	return v, err
}

// byName returns the record with that kind and name, nil if none.
func (s *store) byName(kind Kind, name string) (*Volume, error) {
	var v *Volume
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		id := tx.Bucket(bucketNames).Get(nameKey(kind, name))
		if id == nil {
			return nil
		}
		v, err = getTx(tx, string(id))
		return err
	})
	return v, err
}

// scan calls fn for the records whose ids start with prefix, from the
// first id at or after start, in id order, until fn returns false.
func (s *store) scan(prefix, start string, fn func(*Volume) bool) error {
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketObjects).Cursor()
		seek := prefix
		if start > seek {
			seek = start
		}
		for k, b := c.Seek([]byte(seek)); k != nil && strings.HasPrefix(string(k), prefix); k, b = c.Next() {
			v := &Volume{}
			if err := json.Unmarshal(b, v); err != nil {
				return fmt.Errorf("record %s is corrupt: %w", k, err)
			}
			if !fn(v) {
				return nil
			}
		}
		return nil
	})
}

// count is the number of records whose ids start with prefix as they
// stand once the pool has reached committed. It counts keys, without
// decoding records: only the intent's records can be in flight or settled
// away, and they alone are read.
func (s *store) count(prefix string, committed uint64) (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		p := []byte(prefix)
		c := tx.Bucket(bucketObjects).Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			n++
		}
		in, err := getIntentTx(tx)
		if err != nil || in == nil {
			return err
		}
		for _, id := range in.IDs {
			if !strings.HasPrefix(id, prefix) {
				continue
			}
			v, err := getTx(tx, id)
			if err != nil {
				return err
			}
			if v == nil {
				continue
			}
			if r := v.settled(committed); r == nil || r.State != stateReady {
				n--
			}
		}
		return nil
	})
	return n, err
}

// poolIdentity is what the store remembers of the pool it belongs to, so
// that a state directory is never used with another pool's devices.
type poolIdentity struct {
	Name          string `json:"name"`
	DataBlockSize uint32 `json:"dataBlockSectors"`
	Loop          bool   `json:"loop"`
	DataDevice    string `json:"dataDevice,omitempty"`
	MetaDevice    string `json:"metadataDevice,omitempty"`
}

func (s *store) poolIdentity() (*poolIdentity, error) {
	var p *poolIdentity
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta).Get(keyPool)
		if b == nil {
			return nil
		}
		p = &poolIdentity{}
		return json.Unmarshal(b, p)
	})
	return p, err
}

func (s *store) setPoolIdentity(p poolIdentity) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyPool, b) })
}
