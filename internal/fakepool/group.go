package fakepool

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// CreateGroupSnapshot takes snapshots of several volumes as one group, as
// the engine does: the same name with the same volumes (in any order) and
// parameters returns the group, others are ErrExists; a volume the pool
// does not have is ErrNotFound, a snapshot among them ErrInvalidArgument.
// It has no filesystems to freeze: the kernel tests judge the window.
func (p *Pool) CreateGroupSnapshot(ctx context.Context, name string, sourceIDs []string, params map[string]string) (*thinpool.GroupSnapshot, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.call(ctx, "CreateGroupSnapshot"); err != nil {
		return nil, err
	}
	if err := validName(name); err != nil {
		return nil, err
	}
	if len(sourceIDs) == 0 {
		return nil, fmt.Errorf("%w: a group snapshot needs at least one source volume", thinpool.ErrInvalidArgument)
	}
	seen := map[string]bool{}
	for _, id := range sourceIDs {
		if id == "" || seen[id] {
			return nil, fmt.Errorf("%w: source volume %q is empty or named twice: name each volume of the group once", thinpool.ErrInvalidArgument, id)
		}
		seen[id] = true
	}
	for _, g := range p.groups {
		if g.Name != name {
			continue
		}
		if !slices.Equal(slices.Sorted(slices.Values(g.SourceIDs)), slices.Sorted(slices.Values(sourceIDs))) || !maps.Equal(g.Parameters, params) {
			return nil, fmt.Errorf("%w: group snapshot %q is of volumes %v with parameters %v: use another name", thinpool.ErrExists, name, g.SourceIDs, g.Parameters)
		}
		return p.groupSnapshot(g), nil
	}
	var total uint64
	for _, id := range sourceIDs {
		src := p.records[id]
		switch {
		case src == nil:
			return nil, fmt.Errorf("%w: no volume has id %q in this node's pool: a group snapshot's volumes must all be on one node", thinpool.ErrNotFound, id)
		case src.Kind != thinpool.KindVolume:
			return nil, fmt.Errorf("%w: %s is a snapshot: group snapshots are taken of volumes", thinpool.ErrInvalidArgument, id)
		}
		total += src.SizeBytes
	}
	if err := p.checkSpace(total); err != nil {
		return nil, fmt.Errorf("group snapshot %q: %w", name, err)
	}
	p.next++
	g := &thinpool.Group{
		ID: fmt.Sprintf("grp-%024d", p.next), Name: name, SourceIDs: slices.Clone(sourceIDs),
		CreatedAt: time.Now().UTC(), Parameters: maps.Clone(params),
	}
	for _, id := range sourceIDs {
		src := p.records[id]
		m := &thinpool.Volume{
			ID: p.newID(thinpool.KindSnapshot), Kind: thinpool.KindSnapshot, Name: name, SizeBytes: src.SizeBytes,
			SourceID: id, CreatedAt: g.CreatedAt, GroupID: g.ID,
		}
		p.records[m.ID] = m
		g.SnapshotIDs = append(g.SnapshotIDs, m.ID)
	}
	p.groups[g.ID] = g
	return p.groupSnapshot(g), nil
}

func (p *Pool) groupSnapshot(g *thinpool.Group) *thinpool.GroupSnapshot {
	c := *g
	c.SourceIDs, c.SnapshotIDs = slices.Clone(g.SourceIDs), slices.Clone(g.SnapshotIDs)
	c.Parameters = maps.Clone(g.Parameters)
	out := &thinpool.GroupSnapshot{Group: &c}
	for _, id := range g.SnapshotIDs {
		out.Members = append(out.Members, clone(p.records[id]))
	}
	return out
}

// GetGroupSnapshot returns a group snapshot, ErrNotFound if none.
func (p *Pool) GetGroupSnapshot(id string) (*thinpool.GroupSnapshot, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.call(context.Background(), "GetGroupSnapshot"); err != nil {
		return nil, err
	}
	g := p.groups[id]
	if g == nil {
		return nil, fmt.Errorf("%w: no group snapshot has id %q", thinpool.ErrNotFound, id)
	}
	return p.groupSnapshot(g), nil
}

// DeleteGroupSnapshot deletes a group snapshot and its members:
// ErrNotFound for an unknown id, ErrInUse while a member's device is held
// (and then nothing is deleted).
func (p *Pool) DeleteGroupSnapshot(ctx context.Context, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.call(ctx, "DeleteGroupSnapshot"); err != nil {
		return err
	}
	g := p.groups[id]
	if g == nil {
		return fmt.Errorf("%w: no group snapshot has id %q", thinpool.ErrNotFound, id)
	}
	for _, m := range g.SnapshotIDs {
		if err := p.deactivate(m); err != nil {
			return fmt.Errorf("delete group snapshot %s: member %w", id, err)
		}
	}
	if p.health != nil && !isNoSpace(p.health) {
		return fmt.Errorf("delete group snapshot %s: %w", id, p.health)
	}
	for _, m := range g.SnapshotIDs {
		delete(p.records, m)
	}
	delete(p.groups, id)
	return nil
}
