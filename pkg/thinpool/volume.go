package thinpool

import "time"

// Kind tells volumes from snapshots. Their names are separate namespaces.
type Kind string

const (
	KindVolume   Kind = "volume"
	KindSnapshot Kind = "snapshot"
)

// Volume is the record of a volume or a snapshot: one thin device in the
// pool.
type Volume struct {
	ID         string            `json:"id"`
	Kind       Kind              `json:"kind"`
	Name       string            `json:"name"`
	ThinID     uint32            `json:"thinId"`
	SizeBytes  uint64            `json:"sizeBytes"`
	SourceID   string            `json:"sourceId,omitempty"` // a snapshot's volume; a restore's snapshot; a clone's volume
	CreatedAt  time.Time         `json:"createdAt"`
	Parameters map[string]string `json:"parameters,omitempty"`
	// GroupID is the group snapshot a snapshot was taken in, "" for one
	// taken alone. A member is deleted with its group, not alone, and has
	// no entry among the names: it is found through its group.
	GroupID string `json:"groupId,omitempty"`
	// CreatedTx is the pool transaction that created the thin device: a
	// metadata snapshot reserved at or after it has the device. Zero for
	// records written before the field, which every metadata snapshot of
	// a later run has.
	CreatedTx uint64 `json:"createdTx,omitempty"`

	// The journal: a record a change is under way for, and the pool
	// transaction that completes it.
	State state  `json:"state,omitempty"`
	TxID  uint64 `json:"txid,omitempty"`
}

type state string

const (
	stateReady    state = ""
	stateCreating state = "creating"
	stateDeleting state = "deleting"
)

// settled returns the record as it stands once the pool has reached
// transaction committed: a finished create is ready, a finished delete is
// gone (nil). A change the pool has not reached leaves the record as is.
func (v *Volume) settled(committed uint64) *Volume {
	if v.State == stateReady || v.TxID > committed {
		return v
	}
	if v.State == stateDeleting {
		return nil
	}
	c := *v
	c.State, c.TxID = stateReady, 0
	return &c
}
