package thinpool

import (
	"context"
	"errors"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCtxMutex(t *testing.T) {
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel := context.WithDeadline(t.Context(), time.Unix(0, 0))
	defer cancel()
	cases := []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"live context", t.Context(), nil},
		{"cancelled", cancelled, context.Canceled},
		{"deadline passed", expired, context.DeadlineExceeded},
	}
	for _, c := range cases {
		t.Run(c.name+", free", func(t *testing.T) {
			var m ctxMutex
			m.onWait = func() { t.Error("waited for a free mutex") }
			err := m.lockCtx(c.ctx)
			if !errors.Is(err, c.want) || (err == nil) != (c.want == nil) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			// A context that ended takes nothing, even a free mutex.
			if free := m.tryLock(); free != (c.want != nil) {
				t.Fatalf("the mutex is free after lockCtx: %v, want %v", free, c.want != nil)
			}
		})
	}

	t.Run("a waiter whose context ends", func(t *testing.T) {
		var m ctxMutex
		waiting := make(chan struct{})
		m.onWait = func() { close(waiting) }
		m.lock()
		ctx, cancel := context.WithCancel(t.Context())
		got := make(chan error)
		go func() { got <- m.lockCtx(ctx) }()
		<-waiting
		cancel()
		if err := <-got; !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		m.unlock()
		if !m.tryLock() {
			t.Fatal("the waiter that gave up holds the mutex")
		}
	})

	t.Run("a waiter gets the mutex when it is released", func(t *testing.T) {
		var m ctxMutex
		waiting := make(chan struct{})
		m.onWait = func() { close(waiting) }
		m.lock()
		got := make(chan error)
		go func() { got <- m.lockCtx(t.Context()) }()
		<-waiting
		m.unlock()
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		if m.tryLock() {
			t.Fatal("the mutex is free though the waiter took it")
		}
	})
}

// lockEntries is the keys keyLocks has entries for, with their counts of
// holders and waiters.
func lockEntries(k *keyLocks) map[string]int {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[string]int{}
	for key, l := range k.locks {
		out[key] = l.refs
	}
	return out
}

func mustLock(t *testing.T, k *keyLocks, keys ...string) func() {
	t.Helper()
	unlock, err := k.lock(t.Context(), keys...)
	if err != nil {
		t.Fatal(err)
	}
	return unlock
}

func TestKeyLocks(t *testing.T) {
	// waits records the keys callers wait for, in order: onWait runs in
	// the waiting goroutine before it blocks.
	newKeyLocks := func() (*keyLocks, chan string) {
		waits := make(chan string, 16)
		return &keyLocks{onWait: func(key string) { waits <- key }}, waits
	}

	t.Run("different keys do not wait", func(t *testing.T) {
		k, waits := newKeyLocks()
		unlockA := mustLock(t, k, "a")
		mustLock(t, k, "b", "c")()
		if len(waits) != 0 {
			t.Fatalf("waited for %q, which nobody held", <-waits)
		}
		unlockA()
		if e := lockEntries(k); len(e) != 0 {
			t.Fatalf("entries %v left after every holder released", e)
		}
	})

	t.Run("the same key waits", func(t *testing.T) {
		k, waits := newKeyLocks()
		unlockA := mustLock(t, k, "a")
		got := make(chan error)
		go func() {
			unlock, err := k.lock(t.Context(), "c", "a")
			if err == nil {
				unlock()
			}
			got <- err
		}()
		if key := <-waits; key != "a" {
			t.Fatalf("waited for %q, want a", key)
		}
		unlockA()
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		if e := lockEntries(k); len(e) != 0 {
			t.Fatalf("entries %v left after every holder released", e)
		}
	})

	t.Run("a waiter whose context ends releases what it took", func(t *testing.T) {
		k, waits := newKeyLocks()
		unlockB := mustLock(t, k, "b")
		ctx, cancel := context.WithCancel(t.Context())
		cancelled := make(chan error)
		go func() {
			// Takes a, then waits for b.
			_, err := k.lock(ctx, "b", "a")
			cancelled <- err
		}()
		if key := <-waits; key != "b" {
			t.Fatalf("waited for %q, want b", key)
		}
		// A second waiter for b, which keeps waiting.
		second := make(chan error)
		go func() {
			unlock, err := k.lock(t.Context(), "b")
			if err == nil {
				unlock()
			}
			second <- err
		}()
		if key := <-waits; key != "b" {
			t.Fatalf("waited for %q, want b", key)
		}
		cancel()
		if err := <-cancelled; !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		if e := lockEntries(k); len(e) != 1 || e["b"] != 2 {
			t.Fatalf("entries %v, want only b's, for its holder and the second waiter", e)
		}
		mustLock(t, k, "a")() // released: taken without a wait
		if len(waits) != 0 {
			t.Fatalf("waited for %q after the cancelled waiter left", <-waits)
		}
		unlockB()
		if err := <-second; err != nil {
			t.Fatal(err)
		}
		if e := lockEntries(k); len(e) != 0 {
			t.Fatalf("entries %v left after every holder released", e)
		}
	})

	t.Run("an ended context takes nothing", func(t *testing.T) {
		k, _ := newKeyLocks()
		for _, c := range []struct {
			want   error
			cancel func() (context.Context, context.CancelFunc)
		}{
			{context.Canceled, func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				return ctx, cancel
			}},
			{context.DeadlineExceeded, func() (context.Context, context.CancelFunc) {
				return context.WithDeadline(t.Context(), time.Unix(0, 0))
			}},
		} {
			ctx, cancel := c.cancel()
			if _, err := k.lock(ctx, "a", "b"); !errors.Is(err, c.want) {
				t.Errorf("got %v, want %v", err, c.want)
			}
			cancel()
		}
		if e := lockEntries(k); len(e) != 0 {
			t.Fatalf("entries %v left", e)
		}
	})

	t.Run("overlapping key sets do not deadlock", func(t *testing.T) {
		var k keyLocks
		keys := []string{"a", "b", "c", "d"}
		var inside [4]atomic.Int32 // holders of each key at once
		var wg sync.WaitGroup
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func(seed int64) {
				defer wg.Done()
				r := rand.New(rand.NewSource(seed))
				for i := 0; i < 200; i++ {
					var mine []int
					var names []string
					for _, j := range r.Perm(len(keys))[:1+r.Intn(len(keys))] {
						mine = append(mine, j)
						names = append(names, keys[j])
					}
					unlock, err := k.lock(context.Background(), names...)
					if err != nil {
						t.Error(err)
						return
					}
					for _, j := range mine {
						if n := inside[j].Add(1); n != 1 {
							t.Errorf("%d holders of key %s at once", n, keys[j])
						}
					}
					for _, j := range mine {
						inside[j].Add(-1)
					}
					unlock()
				}
			}(int64(w))
		}
		wg.Wait()
		if e := lockEntries(&k); len(e) != 0 {
			t.Fatalf("entries %v left after every holder released", e)
		}
	})
}
