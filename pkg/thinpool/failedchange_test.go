package thinpool

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// abortingKernel does what the kernel does when the metadata device fails
// during a pool message: the message's commit fails, which the kernel
// ignores after aborting the transaction (what the message did is gone) and
// turning the pool read-only with needs_check; the next message is refused
// with EOPNOTSUPP. at names the message whose commit fails: create_thin,
// or set_transaction_id (the thin device is kept, the new id is not).
type abortingKernel struct {
	*fakeKernel
	armed bool
	at    string
}

func (k *abortingKernel) abort() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.status.Mode, k.status.NeedsCheck = dm.PoolModeReadOnly, true
}

func (k *abortingKernel) readOnly() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.status.Mode == dm.PoolModeReadOnly
}

func (k *abortingKernel) CreateThin(pool string, id uint32) error {
	if !k.armed || k.at != "create_thin" {
		return k.fakeKernel.CreateThin(pool, id)
	}
	k.abort()
	return nil
}

func (k *abortingKernel) SetTransactionID(pool string, oldID, newID uint64) error {
	if k.readOnly() {
		return kerr("message set_transaction_id", pool, unix.EOPNOTSUPP)
	}
	if k.armed && k.at == "set_transaction_id" {
		k.abort()
		return nil
	}
	return k.fakeKernel.SetTransactionID(pool, oldID, newID)
}

func (k *abortingKernel) DeleteThin(pool string, id uint32) error {
	if k.readOnly() {
		return kerr("message delete", pool, unix.EOPNOTSUPP)
	}
	return k.fakeKernel.DeleteThin(pool, id)
}

// A create that meets a metadata failure after its intent is refused with
// ErrUnhealthy and the pool's reason, not the bare errno of the message the
// read-only pool refused; after the repair the journal rolls it back and
// the records and the pool agree.
func TestChangeMeetingMetadataFailure(t *testing.T) {
	for _, at := range []string{"create_thin", "set_transaction_id"} {
		t.Run(at, func(t *testing.T) { testChangeMeetingMetadataFailure(t, at) })
	}
}

func testChangeMeetingMetadataFailure(t *testing.T, at string) {
	fk := newFakeKernel()
	k := &abortingKernel{fakeKernel: fk, at: at}
	cfg, err := Config{StateDir: t.TempDir(), PoolSizeBytes: gib}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	start := func() *Engine {
		s, err := openStore(cfg.dbPath())
		if err != nil {
			t.Fatal(err)
		}
		e := newEngine(k, s, cfg, "pool", dm.Dev{Major: 254})
		e.deviceNode = func(d dm.Dev) (string, error) { return "/dev/fake-" + d.String(), nil }
		if err := e.start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	e := start()
	kept, err := e.CreateVolume(t.Context(), CreateRequest{Name: "kept", RequiredBytes: mib})
	if err != nil {
		t.Fatal(err)
	}

	k.armed = true
	_, err = e.CreateVolume(t.Context(), CreateRequest{Name: "lost", RequiredBytes: mib})
	if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "needs_check") {
		t.Fatalf("a create that met a metadata failure: %v, want ErrUnhealthy saying needs_check", err)
	}
	if _, err := e.GetByName(KindVolume, "lost"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the failed create is visible: %v", err)
	}
	if _, err := e.Get(kept.ID); err != nil {
		t.Fatalf("a record made before the failure: %v", err)
	}

	// The repair: the metadata is good again, as the kernel last
	// committed it; csi-thin starts on it.
	k.armed = false
	fk.mu.Lock()
	fk.status.Mode, fk.status.NeedsCheck = dm.PoolModeReadWrite, false
	fk.mu.Unlock()
	e.Close()
	e = start()
	checkAgreement(t, e, fk)
	if _, err := e.CreateVolume(t.Context(), CreateRequest{Name: "lost", RequiredBytes: mib}); err != nil {
		t.Fatalf("the create retried after the repair: %v", err)
	}
	checkAgreement(t, e, fk)
}

// failingAfterTx fails the given reads once each, from the first
// set_transaction_id on.
type failingAfterTx struct {
	*fakeKernel
	fail []string
}

func (k *failingAfterTx) SetTransactionID(pool string, oldID, newID uint64) error {
	err := k.fakeKernel.SetTransactionID(pool, oldID, newID)
	if err == nil {
		for _, op := range k.fail {
			k.failNext(op, kerr("status", pool, unix.EIO))
		}
		k.fail = nil
	}
	return err
}

// A create whose last check of the pool fails, though the pool kept the
// change, is reported failed; its retry returns the volume the pool has,
// never a second one that leaves the first without a name. Recovery runs
// at once when the pool can be read, or in the retry's change when not.
func TestRetryOfACreateThePoolKept(t *testing.T) {
	for _, c := range []struct {
		name string
		fail []string // the reads that fail after set_transaction_id
	}{
		{"recovered at once", []string{"status-nocommit"}},
		{"recovered by the retry", []string{"status-nocommit", "status"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fk := newFakeKernel()
			e := testEngine(t, fk)
			e.k = &failingAfterTx{fakeKernel: fk, fail: c.fail}
			if _, err := e.CreateVolume(t.Context(), CreateRequest{Name: "v", RequiredBytes: mib}); err == nil {
				t.Fatal("a create whose pool could not be read after its transaction reported success")
			}
			v, err := e.CreateVolume(t.Context(), CreateRequest{Name: "v", RequiredBytes: mib})
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if n := len(fk.thinIDs()); n != 1 {
				t.Fatalf("the pool has %d thin devices after a create and its retry, want 1", n)
			}
			checkAgreement(t, e, fk)
			if got, err := e.GetByName(KindVolume, "v"); err != nil || got.ID != v.ID {
				t.Fatalf("the name answers %+v %v, not the retried %s", got, err, v.ID)
			}
		})
	}
}
