package devmapper

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// EventWaiter waits for dm events on a control node of its own, and can be
// stopped while it waits.
//
// The kernel keeps one event counter for all dm devices, raised whenever
// any device raises an event (a thin-pool crossing its low water mark,
// running out of space, changing mode) and when a device is created,
// removed or renamed. Arm records that counter in the waiter's open
// control node; Wait then blocks in poll(2) until the counter has moved
// past it, or until Stop or Close. Which device raised the event is not
// said: the caller compares the EventNr of the devices it cares about.
//
// The way to wait for a device's next event without losing one is: Arm,
// read the device's Info, and Wait only when its EventNr is the one
// already handled. An event raised after Arm makes Wait return at once,
// even when it came before Wait was called.
//
// The embedded Control issues any other ioctl on the waiter's node (Info,
// Status, ...); those must not run concurrently with Close. Stop may be
// called at any time, from any goroutine, and Close while a Wait blocks.
type EventWaiter struct {
	*Control
	stop     int // eventfd, readable once stopped
	stopOnce sync.Once

	mu     sync.RWMutex // held shared by Arm and Wait, exclusively by Close
	closed bool
}

// OpenEventWaiter opens a control node for waiting. It fails with
// ErrUnsupported on a kernel whose dm interface is older than 4.37
// (Linux 4.13), which cannot poll the control node: there, WaitEvent on a
// single device is the only way to wait.
func OpenEventWaiter() (*EventWaiter, error) {
	c, err := Open()
	if err != nil {
		return nil, err
	}
	if !c.supports(minorArmPoll) {
		v := c.Version()
		c.Close()
		return nil, &Error{Op: cmdArmPoll.name, Device: ControlPath, Err: fmt.Errorf(
			"%w: waiting for any dm event needs device-mapper interface 4.%d (Linux 4.13), the kernel has %s",
			ErrUnsupported, minorArmPoll, v)}
	}
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		c.Close()
		return nil, &Error{Op: "eventfd", Err: err}
	}
	return &EventWaiter{Control: c, stop: fd}, nil
}

// Arm records the kernel's current global event counter: the next Wait
// returns once any dm device has raised an event since.
func (w *EventWaiter) Arm() error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return &Error{Op: cmdArmPoll.name, Device: ControlPath, Err: ErrStopped}
	}
	_, err := w.run(cmdArmPoll, &request{})
	return err
}

// Wait blocks until a dm event has been raised since the last Arm (or
// since OpenEventWaiter), and returns nil; or until Stop or Close, and
// returns ErrStopped. Once stopped, every Wait returns ErrStopped at once.
// Without a new Arm, a Wait after an event returns at once again.
func (w *EventWaiter) Wait() error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrStopped
	}
	fds := []unix.PollFd{
		{Fd: int32(w.f.Fd()), Events: unix.POLLIN},
		{Fd: int32(w.stop), Events: unix.POLLIN},
	}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &Error{Op: "poll", Device: ControlPath, Err: err}
		}
		break
	}
	switch {
	case fds[1].Revents != 0:
		return ErrStopped
	case fds[0].Revents&unix.POLLIN != 0:
		return nil
	}
	return &Error{Op: "poll", Device: ControlPath, Err: fmt.Errorf("the control node reported events %#x", fds[0].Revents)}
}

// Stop makes a Wait in progress, and every later one, return ErrStopped.
func (w *EventWaiter) Stop() {
	w.stopOnce.Do(func() {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		// A non-blocking eventfd refuses a write only when its counter
		// would overflow, which one write of 1 cannot do.
		_, _ = unix.Write(w.stop, one[:])
	})
}

// Close stops the waiter, waits for a Wait in progress to return and
// closes the control node and the stop eventfd.
func (w *EventWaiter) Close() error {
	w.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	return errors.Join(w.Control.Close(), unix.Close(w.stop))
}
