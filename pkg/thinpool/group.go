package thinpool

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Group is the record of a group snapshot: snapshots of several volumes
// taken at one consistency point, in one pool transaction. Its members are
// ordinary snapshot records (restorable like any other) whose GroupID is
// the group's id; they are created and deleted with the group.
type Group struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// SourceIDs are the volumes, in the order asked, and SnapshotIDs
	// their snapshots: SnapshotIDs[i] is of SourceIDs[i].
	SourceIDs   []string          `json:"sourceIds"`
	SnapshotIDs []string          `json:"snapshotIds"`
	CreatedAt   time.Time         `json:"createdAt"`
	Parameters  map[string]string `json:"parameters,omitempty"`

	// The journal, as a Volume's: the change under way and the pool
	// transaction that completes it, the members' own.
	State state  `json:"state,omitempty"`
	TxID  uint64 `json:"txid,omitempty"`
}

// groupPrefix starts every group snapshot's id; groupNames is the
// namespace of their names, apart from volumes' and snapshots'.
const (
	groupPrefix = "grp-"
	groupNames  = Kind("group")
)

// settled is (*Volume).settled for a group record.
func (g *Group) settled(committed uint64) *Group {
	if g.State == stateReady || g.TxID > committed {
		return g
	}
	if g.State == stateDeleting {
		return nil
	}
	c := *g
	c.State, c.TxID = stateReady, 0
	return &c
}

func (g *Group) clone() *Group {
	c := *g
	c.SourceIDs = append([]string(nil), g.SourceIDs...)
	c.SnapshotIDs = append([]string(nil), g.SnapshotIDs...)
	return &c
}

func getGroupTx(tx *bolt.Tx, id string) (*Group, error) {
	b := tx.Bucket(bucketGroups).Get([]byte(id))
	if b == nil {
		return nil, nil
	}
	g := &Group{}
	if err := json.Unmarshal(b, g); err != nil {
		return nil, fmt.Errorf("group snapshot record %s is corrupt: %w", id, err)
	}
	return g, nil
}

func putGroupTx(tx *bolt.Tx, g *Group) error {
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketGroups).Put([]byte(g.ID), b); err != nil {
		return err
	}
	return tx.Bucket(bucketNames).Put(nameKey(groupNames, g.Name), []byte(g.ID))
}

func deleteGroupTx(tx *bolt.Tx, g *Group) error {
	if err := tx.Bucket(bucketGroups).Delete([]byte(g.ID)); err != nil {
		return err
	}
	return tx.Bucket(bucketNames).Delete(nameKey(groupNames, g.Name))
}

// group returns the group record with that id, nil if none.
func (s *store) group(id string) (*Group, error) {
	var g *Group
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		g, err = getGroupTx(tx, id)
		return err
	})
	return g, err
}

// groupByName returns the group record with that name, nil if none.
func (s *store) groupByName(name string) (*Group, error) {
	var g *Group
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		id := tx.Bucket(bucketNames).Get(nameKey(groupNames, name))
		if id == nil {
			return nil
		}
		g, err = getGroupTx(tx, string(id))
		return err
	})
	return g, err
}

// viewGroup is a group record as callers see it, as view is a record's.
func (e *Engine) viewGroup(g *Group) *Group {
	if g == nil {
		return nil
	}
	g = g.settled(e.committed.Load())
	if g == nil || g.State != stateReady {
		return nil
	}
	return g
}

func (e *Engine) lookupGroup(name string) (*Group, error) {
	g, err := e.store.groupByName(name)
	if err != nil {
		return nil, err
	}
	return e.viewGroup(g), nil
}
