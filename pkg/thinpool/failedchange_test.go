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
	kept, err := e.CreateVolume(CreateRequest{Name: "kept", SizeBytes: mib})
	if err != nil {
		t.Fatal(err)
	}

	k.armed = true
	_, err = e.CreateVolume(CreateRequest{Name: "lost", SizeBytes: mib})
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
	if _, err := e.CreateVolume(CreateRequest{Name: "lost", SizeBytes: mib}); err != nil {
		t.Fatalf("the create retried after the repair: %v", err)
	}
	checkAgreement(t, e, fk)
}
