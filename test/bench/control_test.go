package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCalls(t *testing.T) {
	for _, tc := range []struct {
		name       string
		n, callers int
		failAt     int // -1: none
	}{
		{"serial", 10, 1, -1},
		{"concurrent", 64, 16, -1},
		{"one call each", 64, 64, -1},
		{"more callers than calls", 3, 8, -1},
		{"an error stops them", 100, 4, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			ran := map[int]int{}
			var inFlight, most atomic.Int64
			lat, run, err := calls(context.Background(), tc.n, tc.callers, func(ctx context.Context, i int) error {
				now := inFlight.Add(1)
				defer inFlight.Add(-1)
				for {
					m := most.Load()
					if now <= m || most.CompareAndSwap(m, now) {
						break
					}
				}
				mu.Lock()
				ran[i]++
				mu.Unlock()
				time.Sleep(time.Millisecond)
				if i == tc.failAt {
					return errors.New("boom")
				}
				return nil
			})
			if tc.failAt >= 0 {
				if err == nil || err.Error() != "boom" {
					t.Fatalf("error %v, want the call's", err)
				}
				if len(ran) == tc.n {
					t.Errorf("all %d calls ran after the error", tc.n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ran) != tc.n {
				t.Errorf("%d calls ran, want %d", len(ran), tc.n)
			}
			for i, k := range ran {
				if k != 1 {
					t.Errorf("call %d ran %d times", i, k)
				}
			}
			if int(most.Load()) > min(tc.callers, tc.n) {
				t.Errorf("%d calls in flight at once, more than %d callers", most.Load(), tc.callers)
			}
			if len(lat) != tc.n || run.Calls != tc.n || run.Callers != tc.callers {
				t.Errorf("%d latencies, run %+v; want %d calls by %d callers", len(lat), run, tc.n, tc.callers)
			}
			for i, d := range lat {
				if d < time.Millisecond {
					t.Errorf("call %d took %v, less than it slept", i, d)
				}
			}
			if run.Wall < time.Duration(tc.n/min(tc.callers, tc.n))*time.Millisecond {
				t.Errorf("wall time %v is less than the calls took one caller after another", run.Wall)
			}
		})
	}
}

func TestCallsCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := calls(ctx, 10, 2, func(context.Context, int) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

// fakeController makes ids of its names and records its calls in a log
// it shares with others.
type fakeController struct {
	name string
	mu   *sync.Mutex
	log  *[]string
	live map[string]bool
}

func (f *fakeController) record(what, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.log = append(*f.log, f.name+" "+what)
	if strings.HasPrefix(what, "delete") {
		delete(f.live, id)
	} else {
		f.live[id] = true
	}
}

func (f *fakeController) createVolume(_ context.Context, name string) (string, error) {
	f.record("createVolume", name)
	return name, nil
}

func (f *fakeController) createSnapshot(_ context.Context, name, _ string) (string, error) {
	f.record("createSnapshot", name)
	return name, nil
}

func (f *fakeController) restore(_ context.Context, name, _ string) (string, error) {
	f.record("restore", name)
	return name, nil
}

func (f *fakeController) deleteVolume(_ context.Context, id string) error {
	f.record("deleteVolume", id)
	return nil
}

func (f *fakeController) deleteSnapshot(_ context.Context, id string) error {
	f.record("deleteSnapshot", id)
	return nil
}

func TestSerially(t *testing.T) {
	var mu sync.Mutex
	var log []string
	a := &fakeController{name: "a", mu: &mu, log: &log, live: map[string]bool{}}
	b := &fakeController{name: "b", mu: &mu, log: &log, live: map[string]bool{}}
	ra, rb := newControlRun(a, "x-", 8), newControlRun(b, "x-", 2)
	if err := serially(context.Background(), []*controlRun{ra, rb}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		r    *controlRun
		f    *fakeController
		want int
	}{{ra, a, 8}, {rb, b, 2}} {
		for o := range opCount {
			// DeleteVolume times the volumes' deletes, not the restores'.
			if got := len(tc.r.lat[o]); got != tc.want {
				t.Errorf("%s: %d %s timed, want %d", tc.f.name, got, o, tc.want)
			}
		}
		if len(tc.f.live) != 0 {
			t.Errorf("%s: left %v", tc.f.name, tc.f.live)
		}
	}
	// b's two creates come with a's first and fifth: turns spread evenly.
	var creates []string
	for _, l := range log {
		if strings.HasSuffix(l, "createVolume") {
			creates = append(creates, l)
		}
	}
	want := "a createVolume,b createVolume,a createVolume,a createVolume,a createVolume,a createVolume,b createVolume,a createVolume,a createVolume,a createVolume"
	if got := strings.Join(creates, ","); got != want {
		t.Errorf("creates in the order\n%s\nwant\n%s", got, want)
	}
}

func TestConcurrently(t *testing.T) {
	var mu sync.Mutex
	var log []string
	f := &fakeController{name: "f", mu: &mu, log: &log, live: map[string]bool{}}
	r := newControlRun(f, "c-", 32)
	if err := r.concurrently(context.Background(), 8); err != nil {
		t.Fatal(err)
	}
	for o := range opCount {
		if r.runs[o].Calls != 32 || r.runs[o].Callers != 8 || len(r.lat[o]) != 32 {
			t.Errorf("%s: run %+v, %d latencies; want 32 calls by 8 callers", o, r.runs[o], len(r.lat[o]))
		}
	}
	if len(log) != 6*32 || len(f.live) != 0 {
		t.Errorf("%d calls, %d left; want %d calls, nothing left", len(log), len(f.live), 6*32)
	}
}
