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
	bucketMeta    = []byte("meta")

	keyFormat    = []byte("format")    // storeFormat
	keyCommitted = []byte("committed") // last pool transaction id the store knows completed
	keyPending   = []byte("pending")   // id of the record whose change is in flight
	keyNextThin  = []byte("nextThin")  // where thin id allocation resumes
	keyPool      = []byte("pool")      // JSON poolIdentity
)

const storeFormat = "1"

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
		for _, b := range [][]byte{bucketObjects, bucketNames, bucketThins, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch f := meta.Get(keyFormat); {
		case f == nil:
			return meta.Put(keyFormat, []byte(storeFormat))
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
	if err := tx.Bucket(bucketNames).Put(nameKey(v.Kind, v.Name), []byte(v.ID)); err != nil {
		return err
	}
	return tx.Bucket(bucketThins).Put(thinKey(v.ThinID), []byte(v.ID))
}

func deleteTx(tx *bolt.Tx, v *Volume) error {
	if err := tx.Bucket(bucketObjects).Delete([]byte(v.ID)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketNames).Delete(nameKey(v.Kind, v.Name)); err != nil {
		return err
	}
	return tx.Bucket(bucketThins).Delete(thinKey(v.ThinID))
}

// journal is what the store says of the journal: the last completed pool
// transaction and the record whose change may be in flight.
type journal struct {
	committed uint64
	pending   *Volume
}

func (s *store) journal() (journal, error) {
	var j journal
	err := s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		j.committed = u64(meta.Get(keyCommitted))
		if id := meta.Get(keyPending); id != nil {
			v, err := getTx(tx, string(id))
			if err != nil {
				return err
			}
			j.pending = v
		}
		return nil
	})
	return j, err
}

// settleTx applies a pending change the pool has completed (its
// transaction is at most committed) to the records, and records committed.
func settleTx(tx *bolt.Tx, committed uint64) error {
	meta := tx.Bucket(bucketMeta)
	if id := meta.Get(keyPending); id != nil {
		v, err := getTx(tx, string(id))
		if err != nil {
			return err
		}
		if v != nil {
			s := v.settled(committed)
			switch {
			case s == v:
				return fmt.Errorf("record %s is still %s in transaction %d, past the pool's %d", v.ID, v.State, v.TxID, committed)
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
		if err := meta.Delete(keyPending); err != nil {
			return err
		}
	}
	return meta.Put(keyCommitted, putU64(committed))
}

// writeIntent durably records the change to v that pool transaction
// committed+1 will complete, after settling the change before it. A new
// record (ThinID 0) gets a thin id no record names.
func (s *store) writeIntent(committed uint64, v *Volume) error {
	return s.update(func(tx *bolt.Tx) error {
		if err := settleTx(tx, committed); err != nil {
			return err
		}
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
		if err := tx.Bucket(bucketMeta).Put(keyPending, []byte(v.ID)); err != nil {
			return err
		}
		if s.inIntent != nil {
			s.inIntent(v)
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
// new record is removed, a record being deleted is ready again.
func (s *store) dropIntent(v *Volume) error {
	return s.update(func(tx *bolt.Tx) error {
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
		return tx.Bucket(bucketMeta).Delete(keyPending)
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
// decoding records: only the pending record can be in flight or settled
// away, and it alone is read.
func (s *store) count(prefix string, committed uint64) (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		p := []byte(prefix)
		c := tx.Bucket(bucketObjects).Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			n++
		}
		id := tx.Bucket(bucketMeta).Get(keyPending)
		if id == nil || !bytes.HasPrefix(id, p) {
			return nil
		}
		v, err := getTx(tx, string(id))
		if err != nil || v == nil {
			return err
		}
		if r := v.settled(committed); r == nil || r.State != stateReady {
			n--
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
