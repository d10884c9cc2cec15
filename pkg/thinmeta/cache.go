package thinmeta

import (
	"container/list"
	"sync"
)

// cacheBlocks is how many nodes a Tree keeps: enough for the paths a walk
// goes back up and the top-level lookups of a delta, 256 KiB in all.
const cacheBlocks = 64

// nodeCache keeps the nodes last read, the least recently used going
// first. It is only for the blocks of one metadata snapshot, which do not
// change while it is held; a live pool reuses blocks.
type nodeCache struct {
	mu    sync.Mutex
	size  int
	lru   list.List // of *node, most recent first
	byBlk map[uint64]*list.Element
}

func newNodeCache(size int) *nodeCache {
	return &nodeCache{size: size, byBlk: make(map[uint64]*list.Element, size)}
}

func (c *nodeCache) get(b uint64) *node {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byBlk[b]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(e)
	return e.Value.(*node)
}

func (c *nodeCache) put(n *node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byBlk[n.block]; ok {
		c.lru.MoveToFront(e)
		return
	}
	c.byBlk[n.block] = c.lru.PushFront(n)
	if c.lru.Len() > c.size {
		last := c.lru.Back()
		c.lru.Remove(last)
		delete(c.byBlk, last.Value.(*node).block)
	}
}
