// Package fakepool is a node's thin pool in memory, for the unit tests of
// the CSI controller and node services: it implements thinpool.Pool with
// the engine's answers (its sentinel errors, its naming rules, read-only
// activation and devices held open) so that every handler decision runs
// under plain go test with the race detector. It models what the services
// depend on, not the kernel: the kernel tests judge the engine itself.
package fakepool

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// Options shape a fake pool; zero fields take the defaults.
type Options struct {
	BlockSizeBytes uint64 // default 64 KiB, the engine's default
	BudgetBytes    uint64 // what volumes and snapshots may add up to; default 100 GiB
	// DeviceDir is where the device nodes of active volumes are made, as
	// empty regular files; default a new directory under os.TempDir,
	// removed by Close.
	DeviceDir string
	// IDOffset numbers the pool's ids from IDOffset+1, so that the pools
	// of a test's several nodes hand out different ids, as real pools do.
	IDOffset int
}

// Pool is a fake thin pool. Its methods are safe for concurrent use.
type Pool struct {
	mu      sync.Mutex
	block   uint64
	budget  uint64
	devDir  string
	ownDir  bool
	next    int
	records map[string]*thinpool.Volume // by id
	groups  map[string]*thinpool.Group  // by id
	active  map[string]*device          // by id
	fail    map[string][]error          // method -> errors to return, in order
	health  error
	calls   map[string]int
}

// device is a volume's active device on the node.
type device struct {
	path     string
	readOnly bool
	bytes    uint64
	holders  int  // mounts and openers that keep it open
	failed   bool // the thin device reports failure
}

// New returns an empty fake pool.
func New(o Options) (*Pool, error) {
	p := &Pool{
		block: o.BlockSizeBytes, budget: o.BudgetBytes, devDir: o.DeviceDir, next: o.IDOffset,
		records: map[string]*thinpool.Volume{}, groups: map[string]*thinpool.Group{}, active: map[string]*device{},
		fail: map[string][]error{}, calls: map[string]int{},
	}
	if p.block == 0 {
		p.block = 64 << 10
	}
	if p.budget == 0 {
		p.budget = 100 << 30
	}
	if p.devDir == "" {
		dir, err := os.MkdirTemp("", "fakepool-")
		if err != nil {
			return nil, err
		}
		p.devDir, p.ownDir = dir, true
	}
	return p, nil
}

// Close removes the device directory New made.
func (p *Pool) Close() error {
	if p.ownDir {
		return os.RemoveAll(p.devDir)
	}
	return nil
}

var _ thinpool.Pool = (*Pool)(nil)

// FailNext makes the next call of method (its name, such as
// "CreateVolume") return err, after the others queued for it.
func (p *Pool) FailNext(method string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail[method] = append(p.fail[method], err)
}

// SetHealth makes Health, Condition and every change that needs space
// answer as the engine does for a pool in that state: nil for a healthy
// pool, an error matching thinpool.ErrNoSpace for a full one (deletes
// still work), thinpool.ErrUnhealthy for one that takes no change.
func (p *Pool) SetHealth(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.health = err
}

// Hold counts one more holder of an active volume's device, as a mount of
// it or a process with it open would: Deactivate, Delete and a change of
// mode then answer ErrInUse. Release undoes one Hold.
func (p *Pool) Hold(id string) error { return p.holders(id, +1) }

// Release undoes one Hold.
func (p *Pool) Release(id string) error { return p.holders(id, -1) }

func (p *Pool) holders(id string, n int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.active[id]
	if d == nil || d.holders+n < 0 {
		return fmt.Errorf("fakepool: %s is not active, or not held", id)
	}
	d.holders += n
	return nil
}

// FailDevice makes an active volume's thin device report failure, as
// Condition then tells.
func (p *Pool) FailDevice(id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.active[id]
	if d == nil {
		return fmt.Errorf("fakepool: %s is not active", id)
	}
	d.failed = true
	return nil
}

// Active reports whether a volume's device is active, and in which mode.
func (p *Pool) Active(id string) (active, readOnly bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.active[id]
	return d != nil, d != nil && d.readOnly
}

// NodePath is the device node a volume has while it is active, known
// before it is activated: a test scripts the commands a handler will run
// on it.
func (p *Pool) NodePath(id string) string { return filepath.Join(p.devDir, "dm-"+id) }

// Calls is how many times method was called.
func (p *Pool) Calls(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[method]
}

// Put stores a record as it is, for a test that needs a volume or
// snapshot in a given state (grown, from a source deleted since).
func (p *Pool) Put(v *thinpool.Volume) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := *v
	c.Parameters = maps.Clone(v.Parameters)
	p.records[v.ID] = &c
}

// call counts a call and returns the error queued for it, if any. It
// also refuses a context that has ended, as the engine's waits do.
func (p *Pool) call(ctx context.Context, method string) error {
	p.calls[method]++
	if q := p.fail[method]; len(q) > 0 {
		p.fail[method] = q[1:]
		return q[0]
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	return nil
}

func clone(v *thinpool.Volume) *thinpool.Volume {
	c := *v
	c.Parameters = maps.Clone(v.Parameters)
	return &c
}

func (p *Pool) newID(kind thinpool.Kind) string {
	p.next++
	prefix := "vol-"
	if kind == thinpool.KindSnapshot {
		prefix = "snap-"
	}
	return fmt.Sprintf("%s%024d", prefix, p.next)
}

func (p *Pool) byName(kind thinpool.Kind, name string) *thinpool.Volume {
	for _, v := range p.records {
		if v.Kind == kind && v.Name == name {
			return v
		}
	}
	return nil
}

func (p *Pool) promised() uint64 {
	var n uint64
	for _, v := range p.records {
		n += v.SizeBytes
	}
	return n
}

// checkSpace refuses a new promise of size bytes as the engine does: a
// full or unhealthy pool, or a budget that has not that much left.
func (p *Pool) checkSpace(size uint64) error {
	if p.health != nil {
		return p.health
	}
	if used := p.promised(); used+size > p.budget {
		return fmt.Errorf("%w: %d bytes asked, %d of the %d-byte budget left", thinpool.ErrOverBudget, size, p.budget-min(used, p.budget), p.budget)
	}
	return nil
}

func validName(name string) error {
	if name == "" || len(name) > 1024 || strings.ContainsRune(name, 0) {
		return fmt.Errorf("%w: name %q must be 1 to 1024 bytes without NUL", thinpool.ErrInvalidArgument, name)
	}
	return nil
}

// CreateVolume creates a blank volume, or a copy of a snapshot or
// volume, as the engine does: a name that is taken is answered by the
// engine's rule, (*thinpool.Volume).Answers, before the source is looked
// up, and a new volume is of the size thinpool.VolumeSize picks.
func (p *Pool) CreateVolume(ctx context.Context, req thinpool.CreateRequest) (*thinpool.Volume, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.call(ctx, "CreateVolume"); err != nil {
		return nil, err
	}
	if err := validName(req.Name); err != nil {
		return nil, err
	}
	if v := p.byName(thinpool.KindVolume, req.Name); v != nil {
		if err := v.Answers(req); err != nil {
			return nil, err
		}
		return clone(v), nil
	}
	var srcBytes uint64
	if req.SourceID != "" {
		src := p.records[req.SourceID]
		switch {
		case src == nil:
			return nil, fmt.Errorf("%w: no volume or snapshot has id %q", thinpool.ErrSourceNotFound, req.SourceID)
		case req.SourceKind != "" && src.Kind != req.SourceKind:
			return nil, fmt.Errorf("%w: no %s has id %q: it is a %s's id; pass a %s id", thinpool.ErrNotFound, req.SourceKind, src.ID, src.Kind, req.SourceKind)
		}
		srcBytes = src.SizeBytes
	}
	size, err := thinpool.VolumeSize(req, srcBytes, p.block)
	if err != nil {
		return nil, err
	}
	if err := p.checkSpace(size); err != nil {
		return nil, fmt.Errorf("create volume %q: %w", req.Name, err)
	}
	v := &thinpool.Volume{
		ID: p.newID(thinpool.KindVolume), Kind: thinpool.KindVolume, Name: req.Name, SizeBytes: size,
		SourceID: req.SourceID, CreatedAt: time.Now().UTC(), Parameters: maps.Clone(req.Parameters),
	}
	p.records[v.ID] = v
	return clone(v), nil
}

// CreateSnapshot takes a snapshot of a volume, as the engine does.
func (p *Pool) CreateSnapshot(ctx context.Context, name, sourceID string, params map[string]string) (*thinpool.Volume, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.call(ctx, "CreateSnapshot"); err != nil {
		return nil, err
	}
	if err := validName(name); err != nil {
		return nil, err
	}
	if v := p.byName(thinpool.KindSnapshot, name); v != nil {
		if v.SourceID != sourceID {
			return nil, fmt.Errorf("%w: snapshot %q is of %s, not %s: use another name for a snapshot of %s", thinpool.ErrExists, name, v.SourceID, sourceID, sourceID)
		}
		return clone(v), nil
	}
	src := p.records[sourceID]
	switch {
	case src == nil:
		return nil, fmt.Errorf("source volume %s: %w: no volume or snapshot has id %q", sourceID, thinpool.ErrNotFound, sourceID)
	case src.Kind != thinpool.KindVolume:
		return nil, fmt.Errorf("%w: %s is a snapshot: snapshots are taken of volumes", thinpool.ErrInvalidArgument, sourceID)
	}
	if err := p.checkSpace(src.SizeBytes); err != nil {
		return nil, fmt.Errorf("snapshot %q of %s: %w", name, sourceID, err)
	}
	v := &thinpool.Volume{
		ID: p.newID(thinpool.KindSnapshot), Kind: thinpool.KindSnapshot, Name: name, SizeBytes: src.SizeBytes,
		SourceID: sourceID, CreatedAt: time.Now().UTC(), Parameters: maps.Clone(params),
	}
	p.records[v.ID] = v
	return clone(v), nil
}

// Delete deletes a volume or snapshot: ErrNotFound for an unknown id,
// ErrInUse while its device is held; a device active and not held is
// deactivated first. Only an unhealthy pool refuses a delete.
func (p *Pool) Delete(ctx context.Context, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.call(ctx, "Delete"); err != nil {
		return err
	}
	v := p.records[id]
	if v == nil {
		return fmt.Errorf("%w: no volume or snapshot has id %q", thinpool.ErrNotFound, id)
	}
	if v.GroupID != "" {
		return fmt.Errorf("%w: snapshot %s belongs to group snapshot %s and is deleted with it, not alone: delete the group snapshot", thinpool.ErrInvalidArgument, id, v.GroupID)
	}
	if err := p.deactivate(id); err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	if p.health != nil && !isNoSpace(p.health) {
		return fmt.Errorf("delete %s: %w", id, p.health)
	}
	delete(p.records, id)
	return nil
}

func isNoSpace(err error) bool { return errors.Is(err, thinpool.ErrNoSpace) }

// Expand grows a volume to at least sizeBytes, rounded up to the block
// size; its active device follows.
func (p *Pool) Expand(ctx context.Context, id string, sizeBytes uint64) (*thinpool.Volume, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.call(ctx, "Expand"); err != nil {
		return nil, err
	}
	v := p.records[id]
	switch {
	case v == nil:
		return nil, fmt.Errorf("%w: no volume or snapshot has id %q", thinpool.ErrNotFound, id)
	case v.Kind != thinpool.KindVolume:
		return nil, fmt.Errorf("%w: %s is a snapshot: only volumes grow", thinpool.ErrInvalidArgument, id)
	}
	size := thinpool.RoundUp(sizeBytes, p.block)
	if size > v.SizeBytes {
		if err := p.checkSpace(size - v.SizeBytes); err != nil {
			return nil, fmt.Errorf("expand %s: %w", id, err)
		}
		v.SizeBytes = size
	}
	if d := p.active[id]; d != nil {
		d.bytes = v.SizeBytes
	}
	return clone(v), nil
}

// Get returns the record with that id.
func (p *Pool) Get(id string) (*thinpool.Volume, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.call(context.Background(), "Get"); err != nil {
		return nil, err
	}
	v := p.records[id]
	if v == nil {
		return nil, fmt.Errorf("%w: no volume or snapshot has id %q", thinpool.ErrNotFound, id)
	}
	return clone(v), nil
}

// GetByName returns the record of the kind with that name.
func (p *Pool) GetByName(kind thinpool.Kind, name string) (*thinpool.Volume, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.call(context.Background(), "GetByName"); err != nil {
		return nil, err
	}
	v := p.byName(kind, name)
	if v == nil {
		return nil, fmt.Errorf("%w: no %s is named %q", thinpool.ErrNotFound, kind, name)
	}
	return clone(v), nil
}

// List returns up to max (0: all) records of the kind in id order from
// token, and the next page's token, as the engine does.
func (p *Pool) List(kind thinpool.Kind, token string, max int) ([]*thinpool.Volume, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.call(context.Background(), "List"); err != nil {
		return nil, "", err
	}
	prefix := "vol-"
	if kind == thinpool.KindSnapshot {
		prefix = "snap-"
	}
	if token != "" && !strings.HasPrefix(token, prefix) {
		return nil, "", fmt.Errorf("%w: %q is not a %s list token", thinpool.ErrInvalidToken, token, kind)
	}
	var ids []string
	for id, v := range p.records {
		if v.Kind == kind && id >= token {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	next := ""
	if max > 0 && len(ids) > max {
		ids, next = ids[:max], ids[max]
	}
	out := make([]*thinpool.Volume, len(ids))
	for i, id := range ids {
		out[i] = clone(p.records[id])
	}
	return out, next, nil
}

// ActivateDevice makes a volume's device active in the mode asked for, as
// the engine does: a snapshot only read-only; an active device in the
// other mode switches when nothing holds it, and is refused with ErrInUse
// when something does.
func (p *Pool) ActivateDevice(ctx context.Context, id string, readOnly bool) (thinpool.Activation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.call(ctx, "ActivateDevice"); err != nil {
		return thinpool.Activation{}, err
	}
	v := p.records[id]
	switch {
	case v == nil:
		return thinpool.Activation{}, fmt.Errorf("%w: no volume or snapshot has id %q", thinpool.ErrNotFound, id)
	case v.Kind == thinpool.KindSnapshot && !readOnly:
		return thinpool.Activation{}, fmt.Errorf("%w: %s is a snapshot: it activates read-only; restore it into a volume to write", thinpool.ErrInvalidArgument, id)
	}
	if d := p.active[id]; d != nil {
		if d.readOnly != readOnly {
			if d.holders > 0 {
				return thinpool.Activation{}, fmt.Errorf("%w: %s is active read-only=%t and open %d time(s): close it to activate it read-only=%t",
					thinpool.ErrInUse, id, d.readOnly, d.holders, readOnly)
			}
			d.readOnly = readOnly
		}
		d.bytes = v.SizeBytes
		return thinpool.Activation{Path: d.path}, nil
	}
	path := p.NodePath(id)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		return thinpool.Activation{}, fmt.Errorf("activate %s: %w", id, err)
	}
	p.active[id] = &device{path: path, readOnly: readOnly, bytes: v.SizeBytes}
	return thinpool.Activation{Path: path, Activated: true}, nil
}

// Deactivate removes a volume's device: no error when it is not active,
// ErrInUse while something holds it.
func (p *Pool) Deactivate(ctx context.Context, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.call(ctx, "Deactivate"); err != nil {
		return err
	}
	return p.deactivate(id)
}

func (p *Pool) deactivate(id string) error {
	d := p.active[id]
	if d == nil {
		return nil
	}
	if d.holders > 0 {
		return fmt.Errorf("%w: %s is open on this node %d time(s): unmount or close it first", thinpool.ErrInUse, id, d.holders)
	}
	delete(p.active, id)
	return os.Remove(d.path)
}

// DevicePath returns the device of an active volume, or ErrNotFound.
func (p *Pool) DevicePath(id string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.call(context.Background(), "DevicePath"); err != nil {
		return "", err
	}
	d := p.active[id]
	if d == nil {
		return "", fmt.Errorf("%w: %s is not active on this node", thinpool.ErrNotFound, id)
	}
	return d.path, nil
}

// DeviceBytes returns the size of an active volume's device, or
// ErrNotFound.
func (p *Pool) DeviceBytes(id string) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.call(context.Background(), "DeviceBytes"); err != nil {
		return 0, err
	}
	d := p.active[id]
	if d == nil {
		return 0, fmt.Errorf("%w: %s is not active on this node", thinpool.ErrNotFound, id)
	}
	return d.bytes, nil
}

// Capacity reports the budget: available is what it has left, 0 while
// the pool is full or unhealthy.
func (p *Pool) Capacity() (thinpool.Capacity, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.call(context.Background(), "Capacity"); err != nil {
		return thinpool.Capacity{}, err
	}
	c := thinpool.Capacity{DataBytes: p.budget, BudgetBytes: p.budget, PromisedBytes: p.promised()}
	if p.health == nil && c.BudgetBytes > c.PromisedBytes {
		c.AvailableBytes = c.BudgetBytes - c.PromisedBytes
	}
	return c, nil
}

// Health is what SetHealth set.
func (p *Pool) Health() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.call(context.Background(), "Health"); err != nil {
		return err
	}
	return p.health
}

// Condition reports a volume's health as the engine does: ErrNotFound,
// the pool's health, or ErrDeviceFailed for a failed active device.
func (p *Pool) Condition(id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.call(context.Background(), "Condition"); err != nil {
		return err
	}
	switch d := p.active[id]; {
	case p.records[id] == nil:
		return fmt.Errorf("%w: no volume or snapshot has id %q", thinpool.ErrNotFound, id)
	case p.health != nil:
		return p.health
	case d != nil && d.failed:
		return fmt.Errorf("%w: %w: the thin device of %s reports failure: see the kernel log (dmesg)", thinpool.ErrDeviceFailed, thinpool.ErrUnhealthy, id)
	}
	return nil
}

// BlockSizeBytes is the pool's block size.
func (p *Pool) BlockSizeBytes() uint64 { return p.block }

// NewT is New for a test: its devices live in the test's temporary
// directory, and a failure to make the pool fails the test.
func NewT(t testing.TB, o Options) *Pool {
	t.Helper()
	if o.DeviceDir == "" {
		o.DeviceDir = t.TempDir()
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
