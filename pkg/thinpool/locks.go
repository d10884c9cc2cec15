package thinpool

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// ctxMutex is a mutex that a request can stop waiting for: lockCtx gives
// up with the context's error when the context ends first. It is a
// one-slot channel, full while the mutex is held. Callers with no request
// to answer (start, the auto-grow watcher, Close) take it with lock. The
// zero value is an unlocked mutex.
type ctxMutex struct {
	once sync.Once
	slot chan struct{}
	// onWait, when set (by tests, before the mutex is used), is called
	// when lockCtx finds the mutex held and starts to wait.
	onWait func()
}

func (m *ctxMutex) ch() chan struct{} {
	m.once.Do(func() { m.slot = make(chan struct{}, 1) })
	return m.slot
}

// lock takes the mutex, waiting for as long as it takes.
func (m *ctxMutex) lock() { m.ch() <- struct{}{} }

// tryLock takes the mutex if it is free.
func (m *ctxMutex) tryLock() bool {
	select {
	case m.ch() <- struct{}{}:
		return true
	default:
		return false
	}
}

// lockCtx takes the mutex, or returns ctx.Err() without it once ctx ends:
// at once when ctx has ended already, even if the mutex is free.
func (m *ctxMutex) lockCtx(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.tryLock() {
		return nil
	}
	if m.onWait != nil {
		m.onWait()
	}
	select {
	case m.ch() <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *ctxMutex) unlock() {
	select {
	case <-m.ch():
	default:
		panic("thinpool: unlock of an unlocked ctxMutex")
	}
}

// keyLocks serialises operations on the same names and ids while letting
// operations on different ones run in parallel.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock // an entry lives while a caller holds or waits for its key
	// onWait, when set (by tests, before the first lock), is called when a
	// caller finds key held and starts to wait for it.
	onWait func(key string)
}

type keyLock struct {
	ctxMutex
	refs int // holders and waiters, under keyLocks.mu
}

// lock takes the locks of every key, in sorted order so that two callers
// with overlapping keys cannot deadlock, and returns the function that
// releases them. A caller whose ctx ends while it waits gets ctx's error,
// wrapped, and holds none of the keys: those it took are released.
func (k *keyLocks) lock(ctx context.Context, keys ...string) (unlock func(), err error) {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	held := make([]*keyLock, 0, len(keys))
	release := func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i].unlock()
			k.unref(keys[i], held[i])
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, key := range keys {
		l := k.ref(key)
		if err := l.lockCtx(ctx); err != nil {
			k.unref(key, l)
			release()
			return nil, fmt.Errorf("wait for the operation in flight on %s: %w", key, err)
		}
		held = append(held, l)
	}
	return release, nil
}

// ref returns the lock of key, counting its caller in.
func (k *keyLocks) ref(key string) *keyLock {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{}
		if k.onWait != nil {
			onWait := k.onWait
			l.onWait = func() { onWait(key) }
		}
		k.locks[key] = l
	}
	l.refs++
	return l
}

// unref counts a caller of key's lock out, which it holds no more; the
// entry goes with the last.
func (k *keyLocks) unref(key string, l *keyLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		delete(k.locks, key)
	}
}
