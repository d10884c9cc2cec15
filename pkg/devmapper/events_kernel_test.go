package devmapper_test

import (
	"errors"
	"testing"
	"time"

	"github.com/csi-thin/csi-thin/internal/kerneltest"
	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// openWaiter opens an EventWaiter that the test's end closes.
func openWaiter(t *testing.T) *dm.EventWaiter {
	t.Helper()
	w, err := dm.OpenEventWaiter()
	if err != nil {
		t.Fatalf("open event waiter: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// waitAsync runs w.Wait in a goroutine and delivers what it returned.
func waitAsync(w *dm.EventWaiter) <-chan error {
	done := make(chan error, 1)
	go func() { done <- w.Wait() }()
	return done
}

// blocked fails the test if the Wait behind done returned within d.
func blocked(t *testing.T, done <-chan error, d time.Duration, what string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v %s", err, what)
	case <-time.After(d):
	}
}

// returned is what the Wait behind done returned; it fails the test after
// a minute.
func returned(t *testing.T, done <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatalf("Wait still blocked a minute %s", what)
	}
	return nil
}

// A waiter armed before the pool crosses its low water mark wakes at the
// pool's event; the pool's EventNr says which device it was.
func TestEventWaiterWakesOnPoolEvent(t *testing.T) {
	p := newLoopPool(t, 64<<20)
	p.table.LowWaterMark = p.dataSectors/blockSectors - 2
	if err := p.ctl.ReloadPool(p.name, p.table, p.dataSectors); err != nil {
		t.Fatal(err)
	}
	// Creating a device raises a global event: the thin device exists
	// before the waiter arms.
	_, node := p.thin(t, 1, 32<<20/sectorSize)

	w := openWaiter(t)
	if err := w.Arm(); err != nil {
		t.Fatal(err)
	}
	before, err := w.Info(p.name)
	if err != nil {
		t.Fatal(err)
	}
	done := waitAsync(w)
	blocked(t, done, 200*time.Millisecond, "before any event")
	writeAt(t, node, 0, fill(1, 4*blockSectors*sectorSize))
	if err := returned(t, done, "after the pool crossed its low water mark"); err != nil {
		t.Fatal(err)
	}
	after, err := w.Info(p.name)
	if err != nil {
		t.Fatal(err)
	}
	if after.EventNr == before.EventNr {
		t.Fatalf("Wait returned with the pool's event number still %d", before.EventNr)
	}

	// Without a new Arm the event is still pending; after one, Wait
	// blocks again.
	if err := returned(t, waitAsync(w), "with an event since the last Arm"); err != nil {
		t.Fatal(err)
	}
	if err := w.Arm(); err != nil {
		t.Fatal(err)
	}
	done = waitAsync(w)
	blocked(t, done, 200*time.Millisecond, "after a new Arm and no event")

	// Any device's event counts: creating one is a global event.
	if _, err := p.ctl.Create(p.name+"-other", ""); err != nil {
		t.Fatal(err)
	}
	defer p.ctl.Remove(p.name+"-other", dm.RemoveOptions{})
	if err := returned(t, done, "after a device was created"); err != nil {
		t.Fatal(err)
	}
}

// Close unblocks a Wait in progress, which returns ErrStopped, and
// releases the waiter's control node; Stop alone makes every Wait return
// ErrStopped.
func TestEventWaiterCloseUnblocksWait(t *testing.T) {
	openControl(t)
	t.Run("close", func(t *testing.T) {
		fds := kerneltest.OpenFiles(t, dm.ControlPath)
		w, err := dm.OpenEventWaiter()
		if err != nil {
			t.Fatal(err)
		}
		if got := kerneltest.OpenFiles(t, dm.ControlPath); got != fds+1 {
			t.Fatalf("%d control fds open with the waiter, want %d", got, fds+1)
		}
		if err := w.Arm(); err != nil {
			t.Fatal(err)
		}
		done := waitAsync(w)
		blocked(t, done, 200*time.Millisecond, "with no event")
		began := time.Now()
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		took := time.Since(began)
		if err := returned(t, done, "after Close"); !errors.Is(err, dm.ErrStopped) {
			t.Fatalf("Wait in progress at Close returned %v, want ErrStopped", err)
		}
		t.Logf("Close with a Wait in progress took %v", took)
		if got := kerneltest.OpenFiles(t, dm.ControlPath); got != fds {
			t.Fatalf("%d control fds open after Close, want %d", got, fds)
		}
		if err := w.Wait(); !errors.Is(err, dm.ErrStopped) {
			t.Fatalf("Wait after Close returned %v, want ErrStopped", err)
		}
		if err := w.Arm(); !errors.Is(err, dm.ErrStopped) {
			t.Fatalf("Arm after Close returned %v, want ErrStopped", err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("a second Close: %v", err)
		}
	})
	t.Run("stop", func(t *testing.T) {
		w := openWaiter(t)
		if err := w.Arm(); err != nil {
			t.Fatal(err)
		}
		done := waitAsync(w)
		blocked(t, done, 200*time.Millisecond, "with no event")
		w.Stop()
		if err := returned(t, done, "after Stop"); !errors.Is(err, dm.ErrStopped) {
			t.Fatalf("Wait in progress at Stop returned %v, want ErrStopped", err)
		}
		if err := w.Wait(); !errors.Is(err, dm.ErrStopped) {
			t.Fatalf("Wait after Stop returned %v, want ErrStopped", err)
		}
	})
}
