package thinpool

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

// The tests here show by the order of events, never by timing, which
// engine calls wait for a change in flight and how a waiting call ends
// with its context: a change is held inside the origin's Suspend or
// inside its intent's durable commit, and hooks on the locks say when a
// call has started to wait.

// holdInSuspend holds the next Suspend of the fake kernel.
func holdInSuspend(_ *Engine, fk *fakeKernel) *gate {
	g := newGate()
	fk.mu.Lock()
	fk.holdSuspend = g
	fk.mu.Unlock()
	return g
}

// holdInIntent holds the next change inside its intent's durable
// commit, with the pool lock taken.
func holdInIntent(e *Engine, _ *fakeKernel) *gate {
	g := newGate()
	e.store.inIntent = func(*Volume) { g.pass() }
	return g
}

// engineState is what a change could have changed: the records, the
// pool's thin ids and transaction id, the promised bytes and the active
// devices.
type engineState struct {
	records  []*Volume
	thins    map[uint32]bool
	txid     uint64
	promised uint64
	devices  map[string]fakeDev
}

func stateNow(t *testing.T, e *Engine, fk *fakeKernel) engineState {
	t.Helper()
	var s engineState
	for _, kind := range []Kind{KindVolume, KindSnapshot} {
		vs, _, err := e.List(kind, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		s.records = append(s.records, vs...)
	}
	s.thins = fk.thinIDs()
	c, err := e.Capacity()
	if err != nil {
		t.Fatal(err)
	}
	s.promised = c.PromisedBytes
	fk.mu.Lock()
	defer fk.mu.Unlock()
	s.txid = fk.txid
	s.devices = map[string]fakeDev{}
	for name, d := range fk.devs {
		s.devices[name] = *d
	}
	return s
}

// endingCtx is a context that ends when the test ends it, with the error
// it names: a deadline that passes at a point the test orders.
type endingCtx struct {
	context.Context
	done chan struct{}
	mu   sync.Mutex
	err  error
}

func newEndingCtx(parent context.Context) *endingCtx {
	return &endingCtx{Context: parent, done: make(chan struct{})}
}

func (c *endingCtx) Done() <-chan struct{} { return c.done }

func (c *endingCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *endingCtx) end(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	close(c.done)
}

// Capacity, Usage and Health answer while a change is held where it
// holds the origin suspended or the pool lock, and see it only once it
// is committed.
func TestReadsAnswerWhileAChangeIsHeld(t *testing.T) {
	cases := []struct {
		name     string
		hold     func(*Engine, *fakeKernel) *gate
		snapshot bool // a snapshot of an active volume; else a create
		poolLock bool // the change holds the pool lock while held
	}{
		{"snapshot of an active volume, inside Suspend", holdInSuspend, true, false},
		{"snapshot of an active volume, inside its intent's commit", holdInIntent, true, true},
		{"create, inside its intent's commit", holdInIntent, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fk := newFakeKernel()
			e := testEngine(t, fk)
			v, err := e.CreateVolume(t.Context(), CreateRequest{Name: "v", RequiredBytes: gib})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.Activate(t.Context(), v.ID, false); err != nil {
				t.Fatal(err)
			}
			before, err := e.Capacity()
			if err != nil {
				t.Fatal(err)
			}
			g := c.hold(e, fk)
			held := make(chan error)
			go func() {
				var err error
				if c.snapshot {
					_, err = e.CreateSnapshot(t.Context(), "s", v.ID, nil)
				} else {
					_, err = e.CreateVolume(t.Context(), CreateRequest{Name: "w", RequiredBytes: gib})
				}
				held <- err
			}()
			<-g.entered

			if c.poolLock {
				if e.poolMu.tryLock() {
					e.poolMu.unlock()
					t.Fatal("the held change does not hold the pool lock")
				}
			}
			capa, err := e.Capacity()
			if err != nil || capa.PromisedBytes != before.PromisedBytes {
				t.Fatalf("capacity during the change: %+v %v; want %d bytes promised, as before it", capa, err, before.PromisedBytes)
			}
			u, err := e.Usage()
			if err != nil || u.Health != nil || u.PromisedBytes != before.PromisedBytes {
				t.Fatalf("usage during the change: %+v %v; want healthy, %d bytes promised", u, err, before.PromisedBytes)
			}
			if err := e.Health(); err != nil {
				t.Fatalf("health during the change: %v", err)
			}

			g.open()
			if err := <-held; err != nil {
				t.Fatalf("the held change: %v", err)
			}
			after, err := e.Capacity()
			if err != nil || after.PromisedBytes != before.PromisedBytes+gib {
				t.Fatalf("capacity after the change: %+v %v; want %d bytes promised", after, err, before.PromisedBytes+gib)
			}
			if info, _ := fk.Info(e.dmName(v.ID)); info.Suspended {
				t.Fatal("the origin was left suspended")
			}
			checkAgreement(t, e, fk)
		})
	}
}

// waitEnds are the ways a waiting call's context ends, and the error
// each gives.
var waitEnds = []struct {
	name string
	err  error
}{
	{"cancelled", context.Canceled},
	{"deadline passed", context.DeadlineExceeded},
}

// A call that waits for the pool lock, held by a create inside its
// intent's commit, ends with its context's error and changes nothing; the
// held create completes, and the call then does what it was asked.
func TestWaitForThePoolLockEndsWithTheContext(t *testing.T) {
	cases := []struct {
		name string
		call func(ctx context.Context, e *Engine, x, y *Volume) error
		then error // what the call gives afterwards, with a live context
	}{
		{"create", func(ctx context.Context, e *Engine, _, _ *Volume) error {
			_, err := e.CreateVolume(ctx, CreateRequest{Name: "other", RequiredBytes: gib})
			return err
		}, nil},
		{"snapshot", func(ctx context.Context, e *Engine, _, y *Volume) error {
			_, err := e.CreateSnapshot(ctx, "s", y.ID, nil)
			return err
		}, nil},
		{"clone", func(ctx context.Context, e *Engine, _, y *Volume) error {
			_, err := e.CreateVolume(ctx, CreateRequest{Name: "clone", SourceID: y.ID})
			return err
		}, nil},
		{"delete", func(ctx context.Context, e *Engine, x, _ *Volume) error { return e.Delete(ctx, x.ID) }, nil},
		{"expand", func(ctx context.Context, e *Engine, _, y *Volume) error {
			_, err := e.Expand(ctx, y.ID, 2*gib)
			return err
		}, nil},
		// The fake's pool is not a loopback pool: Grow refuses it, once it
		// has the lock.
		{"grow", func(ctx context.Context, e *Engine, _, _ *Volume) error { return e.Grow(ctx, 2*gib) }, ErrInvalidArgument},
	}
	for _, c := range cases {
		for _, end := range waitEnds {
			t.Run(c.name+", "+end.name, func(t *testing.T) {
				fk := newFakeKernel()
				e := testEngine(t, fk)
				x, err := e.CreateVolume(t.Context(), CreateRequest{Name: "x", RequiredBytes: gib})
				if err != nil {
					t.Fatal(err)
				}
				y, err := e.CreateVolume(t.Context(), CreateRequest{Name: "y", RequiredBytes: gib})
				if err != nil {
					t.Fatal(err)
				}
				waiting := make(chan struct{}, 1)
				e.poolMu.onWait = func() { waiting <- struct{}{} }
				g := holdInIntent(e, fk)
				held := make(chan error)
				go func() {
					_, err := e.CreateVolume(t.Context(), CreateRequest{Name: "held", RequiredBytes: gib})
					held <- err
				}()
				<-g.entered
				was := stateNow(t, e, fk)

				ctx := newEndingCtx(t.Context())
				got := make(chan error)
				go func() { got <- c.call(ctx, e, x, y) }()
				<-waiting
				ctx.end(end.err)
				if err := <-got; !errors.Is(err, end.err) {
					t.Fatalf("got %v, want %v", err, end.err)
				}
				if now := stateNow(t, e, fk); !reflect.DeepEqual(now, was) {
					t.Fatalf("the call that gave up changed the engine:\nbefore %+v\nafter  %+v", was, now)
				}

				g.open()
				if err := <-held; err != nil {
					t.Fatalf("the held create: %v", err)
				}
				if _, err := e.GetByName(KindVolume, "held"); err != nil {
					t.Fatal(err)
				}
				if err := c.call(t.Context(), e, x, y); !errors.Is(err, c.then) || (err == nil) != (c.then == nil) {
					t.Fatalf("the call with a live context: %v, want %v", err, c.then)
				}
				checkAgreement(t, e, fk)
			})
		}
	}
}

// A call that waits for a volume's lock, held by a snapshot of the
// volume inside its Suspend, ends with its context's error and changes
// nothing; the snapshot completes, and the call then does what it was
// asked.
func TestWaitForAVolumeLockEndsWithTheContext(t *testing.T) {
	cases := []struct {
		name string
		call func(ctx context.Context, e *Engine, v *Volume) error
	}{
		{"delete", func(ctx context.Context, e *Engine, v *Volume) error { return e.Delete(ctx, v.ID) }},
		{"expand", func(ctx context.Context, e *Engine, v *Volume) error {
			_, err := e.Expand(ctx, v.ID, 2*gib)
			return err
		}},
		{"activate", func(ctx context.Context, e *Engine, v *Volume) error {
			_, err := e.ActivateDevice(ctx, v.ID, false)
			return err
		}},
		{"deactivate", func(ctx context.Context, e *Engine, v *Volume) error { return e.Deactivate(ctx, v.ID) }},
		{"another snapshot", func(ctx context.Context, e *Engine, v *Volume) error {
			_, err := e.CreateSnapshot(ctx, "t", v.ID, nil)
			return err
		}},
		{"clone", func(ctx context.Context, e *Engine, v *Volume) error {
			_, err := e.CreateVolume(ctx, CreateRequest{Name: "clone", SourceID: v.ID})
			return err
		}},
	}
	for _, c := range cases {
		for _, end := range waitEnds {
			t.Run(c.name+", "+end.name, func(t *testing.T) {
				fk := newFakeKernel()
				e := testEngine(t, fk)
				v, err := e.CreateVolume(t.Context(), CreateRequest{Name: "v", RequiredBytes: gib})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := e.Activate(t.Context(), v.ID, false); err != nil {
					t.Fatal(err)
				}
				waits := make(chan string, 1)
				e.locks.onWait = func(key string) { waits <- key }
				g := holdInSuspend(e, fk)
				held := make(chan error)
				go func() {
					_, err := e.CreateSnapshot(t.Context(), "s", v.ID, nil)
					held <- err
				}()
				<-g.entered
				was := stateNow(t, e, fk)

				ctx := newEndingCtx(t.Context())
				got := make(chan error)
				go func() { got <- c.call(ctx, e, v) }()
				if key := <-waits; key != lockID(v.ID) {
					t.Fatalf("the call waited for %s, want %s", key, lockID(v.ID))
				}
				ctx.end(end.err)
				if err := <-got; !errors.Is(err, end.err) {
					t.Fatalf("got %v, want %v", err, end.err)
				}
				if now := stateNow(t, e, fk); !reflect.DeepEqual(now, was) {
					t.Fatalf("the call that gave up changed the engine:\nbefore %+v\nafter  %+v", was, now)
				}
				if e := lockEntries(&e.locks); len(e) != 2 || e[lockID(v.ID)] != 1 || e[lockName(KindSnapshot, "s")] != 1 {
					t.Fatalf("lock entries %v, want only the held snapshot's", e)
				}

				g.open()
				if err := <-held; err != nil {
					t.Fatalf("the held snapshot: %v", err)
				}
				if info, _ := fk.Info(e.dmName(v.ID)); info.Suspended {
					t.Fatal("the origin was left suspended")
				}
				if err := c.call(t.Context(), e, v); err != nil {
					t.Fatalf("the call with a live context: %v", err)
				}
				checkAgreement(t, e, fk)
				if e := lockEntries(&e.locks); len(e) != 0 {
					t.Fatalf("lock entries %v left after every call returned", e)
				}
			})
		}
	}
}

// A call whose context has ended already, by a deadline that passed or
// a cancel, is refused before it waits for anything or changes anything.
func TestEndedContextIsRefused(t *testing.T) {
	expired, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Hour))
	defer cancel()
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	calls := map[string]func(ctx context.Context, e *Engine, v *Volume) error{
		"create": func(ctx context.Context, e *Engine, _ *Volume) error {
			_, err := e.CreateVolume(ctx, CreateRequest{Name: "w", RequiredBytes: gib})
			return err
		},
		"clone": func(ctx context.Context, e *Engine, v *Volume) error {
			_, err := e.CreateVolume(ctx, CreateRequest{Name: "c", SourceID: v.ID})
			return err
		},
		"snapshot": func(ctx context.Context, e *Engine, v *Volume) error {
			_, err := e.CreateSnapshot(ctx, "s", v.ID, nil)
			return err
		},
		"delete": func(ctx context.Context, e *Engine, v *Volume) error { return e.Delete(ctx, v.ID) },
		"expand": func(ctx context.Context, e *Engine, v *Volume) error {
			_, err := e.Expand(ctx, v.ID, 2*gib)
			return err
		},
		"activate": func(ctx context.Context, e *Engine, v *Volume) error {
			_, err := e.Activate(ctx, v.ID, true)
			return err
		},
		"deactivate": func(ctx context.Context, e *Engine, v *Volume) error { return e.Deactivate(ctx, v.ID) },
		"grow":       func(ctx context.Context, e *Engine, _ *Volume) error { return e.Grow(ctx, 2*gib) },
	}
	for _, end := range []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"deadline passed", expired, context.DeadlineExceeded},
		{"cancelled", cancelled, context.Canceled},
	} {
		for _, name := range slices.Sorted(maps.Keys(calls)) {
			t.Run(name+", "+end.name, func(t *testing.T) {
				fk := newFakeKernel()
				e := testEngine(t, fk)
				v, err := e.CreateVolume(t.Context(), CreateRequest{Name: "v", RequiredBytes: gib})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := e.Activate(t.Context(), v.ID, false); err != nil {
					t.Fatal(err)
				}
				was := stateNow(t, e, fk)
				if err := calls[name](end.ctx, e, v); !errors.Is(err, end.want) {
					t.Fatalf("got %v, want %v", err, end.want)
				}
				if now := stateNow(t, e, fk); !reflect.DeepEqual(now, was) {
					t.Fatalf("the refused call changed the engine:\nbefore %+v\nafter  %+v", was, now)
				}
			})
		}
	}
}
