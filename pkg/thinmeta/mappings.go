package thinmeta

import "context"

// Mappings calls fn with the mapped blocks of thin device dev from block
// start on, in order, as extents of consecutive blocks, each as long as it
// can be. An error from fn ends the walk and Mappings returns it as is, so
// that fn can stop the walk early with an error of its own. A device that
// does not exist is ErrNoDevice.
func (t *Tree) Mappings(ctx context.Context, dev uint32, start uint64, fn func(Extent) error) error {
	root, err := t.mappingRoot(ctx, dev)
	if err != nil {
		return err
	}
	out := extents{fn: fn}
	c := newCursor(t, root, le64Size, start)
	c.readahead = true
	for {
		switch it := c.head(); it.kind {
		case itemEnd:
			return out.flush()
		case itemRef:
			if err := c.expand(ctx); err != nil {
				return err
			}
		case itemEntry:
			if err := out.add(it.key); err != nil {
				return err
			}
			c.next()
		}
	}
}
