package forward

import (
	"container/list"
	"sync"
)

// An Owner is the node that holds an id: the address its listener
// answered on and the node name it gave.
type Owner struct {
	Addr, Node string
}

// owners remembers which node holds each id of one kind, for the most
// recently used max ids. Volumes, snapshots and groups never move between
// nodes; an entry goes when its node no longer has the id, or no longer
// answers at that address, so that the next call looks again.
type owners struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *ownerEntry, the most recently used first
	byID  map[string]*list.Element
}

type ownerEntry struct {
	id string
	Owner
}

func newOwners(max int) *owners {
	return &owners{max: max, order: list.New(), byID: map[string]*list.Element{}}
}

func (o *owners) get(id string) (Owner, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	el, ok := o.byID[id]
	if !ok {
		return Owner{}, false
	}
	o.order.MoveToFront(el)
	return el.Value.(*ownerEntry).Owner, true
}

func (o *owners) put(id string, w Owner) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if el, ok := o.byID[id]; ok {
		el.Value.(*ownerEntry).Owner = w
		o.order.MoveToFront(el)
		return
	}
	o.byID[id] = o.order.PushFront(&ownerEntry{id, w})
	for o.order.Len() > o.max {
		last := o.order.Back()
		o.order.Remove(last)
		delete(o.byID, last.Value.(*ownerEntry).id)
	}
}

func (o *owners) forget(ids ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, id := range ids {
		if el, ok := o.byID[id]; ok {
			o.order.Remove(el)
			delete(o.byID, id)
		}
	}
}

// forgetAddrs drops the entries of nodes no longer at an address in keep.
func (o *owners) forgetAddrs(keep map[string]bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for id, el := range o.byID {
		if !keep[el.Value.(*ownerEntry).Addr] {
			o.order.Remove(el)
			delete(o.byID, id)
		}
	}
}
