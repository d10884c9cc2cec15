package thinpool

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// fakeKernel is a thin pool in memory with the kernel's answers: EEXIST,
// ENODATA, EBUSY, ENXIO and compare-and-swap transaction ids. It lets the
// journal and the locking run under the race detector.
type fakeKernel struct {
	mu      sync.Mutex
	thins   map[uint32]bool
	txid    uint64
	devs    map[string]*fakeDev
	minor   uint32
	status  dm.PoolStatus // mode and usage the pool reports
	failOps map[string]error
	calls   map[string]int
	// holdSuspend, when set, holds every Suspend until it opens, before
	// the device is suspended: a suspend whose flush takes that long.
	holdSuspend *gate
	// Filesystems mounted on the devices (by device number), those
	// frozen, and the order of the suspends, resumes, snapshots, freezes
	// and thaws: "suspend NAME", "freeze MOUNTPOINT", ...
	mounts map[dm.Dev]string
	frozen map[string]bool
	events []string
}

func (f *fakeKernel) event(op, what string) { f.events = append(f.events, op+" "+what) }

// eventLog is a copy of the events so far.
func (f *fakeKernel) eventLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.events...)
}

// mount makes a filesystem mounted at mountPoint on the active device
// name.
func (f *fakeKernel) mount(name, mountPoint string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mounts[f.devs[name].dev] = mountPoint
}

func (f *fakeKernel) isFrozen(mountPoint string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.frozen[mountPoint]
}

// filesystems freeze the fake's mounts as the kernel does: EBUSY for one
// frozen already, EINVAL to thaw one that is not; "freeze" and "thaw"
// take injected errors.
func (f *fakeKernel) filesystems() filesystems {
	return filesystems{
		mounts: func(d dm.Dev) ([]string, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if mp, ok := f.mounts[d]; ok {
				return []string{mp}, nil
			}
			return nil, nil
		},
		freeze: func(mp string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			if err := f.step("freeze"); err != nil {
				return err
			}
			if f.frozen[mp] {
				return kerr("freeze", mp, unix.EBUSY)
			}
			f.frozen[mp] = true
			f.event("freeze", mp)
			return nil
		},
		thaw: func(mp string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			if err := f.step("thaw"); err != nil {
				return err
			}
			if !f.frozen[mp] {
				return kerr("thaw", mp, unix.EINVAL)
			}
			delete(f.frozen, mp)
			f.event("thaw", mp)
			return nil
		},
	}
}

// gate holds the calls that reach it until the test opens it, and tells
// the test when the first one arrived: it shows an order without timing.
type gate struct {
	once    sync.Once
	entered chan struct{} // closed when the first call arrives
	opened  chan struct{} // closed by open
}

func newGate() *gate { return &gate{entered: make(chan struct{}), opened: make(chan struct{})} }

// pass is where a call waits until the gate opens.
func (g *gate) pass() {
	g.once.Do(func() { close(g.entered) })
	<-g.opened
}

// open lets every call through, those held and those to come.
func (g *gate) open() { close(g.opened) }

type fakeDev struct {
	dev       dm.Dev
	table     dm.ThinTable
	sectors   uint64
	suspended bool
	readOnly  bool
	open      int
	failed    bool // its status reports Fail
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{
		thins: map[uint32]bool{}, devs: map[string]*fakeDev{}, failOps: map[string]error{}, calls: map[string]int{},
		mounts: map[dm.Dev]string{}, frozen: map[string]bool{},
		status: dm.PoolStatus{Mode: dm.PoolModeReadWrite, DataTotal: 16384, MetadataTotal: 4096, DiscardPassdown: true},
	}
}

func kerr(op, dev string, errno unix.Errno) error { return &dm.Error{Op: op, Device: dev, Err: errno} }

// step counts a call and returns the error injected for it, once.
func (f *fakeKernel) step(op string) error {
	f.calls[op]++
	if err, ok := f.failOps[op]; ok {
		delete(f.failOps, op)
		return err
	}
	return nil
}

func (f *fakeKernel) failNext(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failOps[op] = err
}

func (f *fakeKernel) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *fakeKernel) thinIDs() map[uint32]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[uint32]bool{}
	for id := range f.thins {
		out[id] = true
	}
	return out
}

func (f *fakeKernel) CreateThin(pool string, id uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.step("create_thin"); err != nil {
		return err
	}
	if f.thins[id] {
		return kerr(fmt.Sprintf("message create_thin %d", id), pool, unix.EEXIST)
	}
	f.thins[id] = true
	return nil
}

func (f *fakeKernel) CreateSnap(pool string, id, origin uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.step("create_snap"); err != nil {
		return err
	}
	if !f.thins[origin] {
		return kerr("message create_snap", pool, unix.ENODATA)
	}
	if f.thins[id] {
		return kerr("message create_snap", pool, unix.EEXIST)
	}
	for _, d := range f.devs {
		if d.table.DeviceID == origin && !d.suspended {
			panic(fmt.Sprintf("create_snap of active origin %d that is not suspended", origin))
		}
	}
	f.thins[id] = true
	f.event("create_snap", fmt.Sprint(origin))
	return nil
}

func (f *fakeKernel) DeleteThin(pool string, id uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.step("delete"); err != nil {
		return err
	}
	if !f.thins[id] {
		return kerr(fmt.Sprintf("message delete %d", id), pool, unix.ENODATA)
	}
	for _, d := range f.devs {
		if d.table.DeviceID == id {
			return kerr(fmt.Sprintf("message delete %d", id), pool, unix.EBUSY)
		}
	}
	delete(f.thins, id)
	return nil
}

func (f *fakeKernel) SetTransactionID(pool string, oldID, newID uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.step("set_transaction_id"); err != nil {
		return err
	}
	if f.txid != oldID {
		return fmt.Errorf("%w: %w", dm.ErrTransactionMismatch, kerr("message set_transaction_id", pool, unix.EINVAL))
	}
	f.txid = newID
	return nil
}

func (f *fakeKernel) PoolStatus(pool string) (dm.PoolStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.step("status"); err != nil {
		return dm.PoolStatus{}, err
	}
	st := f.status
	st.TransactionID = f.txid
	return st, nil
}

func (f *fakeKernel) PoolStatusNoCommit(pool string) (dm.PoolStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.step("status-nocommit"); err != nil {
		return dm.PoolStatus{}, err
	}
	st := f.status
	st.TransactionID = f.txid
	return st, nil
}

func (f *fakeKernel) ReloadPool(pool string, t dm.PoolTable, sectors uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status.DataTotal = sectors / uint64(t.DataBlockSize)
	f.status.ErrorIfNoSpace = t.Features.ErrorIfNoSpace
	return f.step("reload")
}

func (f *fakeKernel) ReserveMetadataSnap(pool string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.step("reserve_metadata_snap"); err != nil {
		return err
	}
	if f.status.HasHeldMetadataRoot {
		return kerr("message reserve_metadata_snap", pool, unix.EBUSY)
	}
	f.status.HasHeldMetadataRoot, f.status.HeldMetadataRoot = true, 42
	return nil
}

func (f *fakeKernel) ReleaseMetadataSnap(pool string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.step("release_metadata_snap"); err != nil {
		return err
	}
	if !f.status.HasHeldMetadataRoot {
		return kerr("message release_metadata_snap", pool, unix.EINVAL)
	}
	f.status.HasHeldMetadataRoot, f.status.HeldMetadataRoot = false, 0
	return nil
}

func (f *fakeKernel) Info(name string) (dm.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.devs[name]
	if d == nil {
		return dm.Info{}, nil
	}
	return dm.Info{Exists: true, LiveTable: true, Suspended: d.suspended, ReadOnly: d.readOnly, OpenCount: int32(d.open), Dev: d.dev, Name: name, TargetCount: 1}, nil
}

func (f *fakeKernel) List() ([]dm.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []dm.Device
	for n, d := range f.devs {
		out = append(out, dm.Device{Name: n, Dev: d.dev})
	}
	return out, nil
}

func (f *fakeKernel) Table(name string) ([]dm.Target, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.devs[name]
	if d == nil {
		return nil, kerr("status", name, unix.ENXIO)
	}
	if err := f.step("table"); err != nil {
		return nil, err
	}
	return []dm.Target{{Length: d.sectors, Type: "thin", Params: d.table.Params()}}, nil
}

func (f *fakeKernel) Suspend(name string, _ dm.SuspendOptions) error {
	f.mu.Lock()
	hold := f.holdSuspend
	f.mu.Unlock()
	if hold != nil {
		hold.pass() // without f.mu: the rest of the kernel answers meanwhile
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.devs[name]
	if d == nil {
		return kerr("suspend", name, unix.ENXIO)
	}
	if err := f.step("suspend"); err != nil {
		return err
	}
	d.suspended = true
	f.event("suspend", name)
	return nil
}

func (f *fakeKernel) Resume(name string, _ dm.UdevFlags) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.devs[name]
	if d == nil {
		return kerr("resume", name, unix.ENXIO)
	}
	if err := f.step("resume"); err != nil {
		return err
	}
	d.suspended = false
	f.event("resume", name)
	return nil
}

func (f *fakeKernel) Remove(name string, _ dm.RemoveOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.devs[name]
	if d == nil {
		return kerr("remove", name, unix.ENXIO)
	}
	if d.open > 0 {
		return kerr("remove", name, unix.EBUSY)
	}
	delete(f.devs, name)
	return nil
}

func (f *fakeKernel) ActivateThin(name, _ string, t dm.ThinTable, sectors uint64, readOnly bool) (dm.Dev, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.devs[name] != nil {
		return dm.Dev{}, kerr("create", name, unix.EBUSY)
	}
	if !f.thins[t.DeviceID] {
		return dm.Dev{}, kerr("resume", name, unix.ENODATA)
	}
	f.minor++
	d := &fakeDev{dev: dm.Dev{Major: 254, Minor: f.minor}, table: t, sectors: sectors, readOnly: readOnly}
	f.devs[name] = d
	return d.dev, nil
}

func (f *fakeKernel) ResizeThin(name string, t dm.ThinTable, sectors uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.devs[name]
	if d == nil {
		return kerr("load", name, unix.ENXIO)
	}
	d.sectors = sectors
	return nil
}

func (f *fakeKernel) ReloadThin(name string, t dm.ThinTable, sectors uint64, readOnly bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.devs[name]
	if d == nil {
		return kerr("load", name, unix.ENXIO)
	}
	if err := f.step("reload_thin"); err != nil {
		return err
	}
	d.sectors, d.readOnly = sectors, readOnly
	return nil
}

// setOpen marks an active device as opened (mounted) or closed.
func (f *fakeKernel) setOpen(name string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.devs[name].open = n
}

func (f *fakeKernel) ThinStatus(name string) (dm.ThinStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.devs[name] == nil {
		return dm.ThinStatus{}, kerr("status", name, unix.ENXIO)
	}
	if err := f.step("thin_status"); err != nil {
		return dm.ThinStatus{}, err
	}
	return dm.ThinStatus{Fail: f.devs[name].failed}, nil
}
