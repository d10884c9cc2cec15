package main

import (
	"context"
	"errors"
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
