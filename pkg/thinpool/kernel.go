package thinpool

import dm "github.com/csi-thin/csi-thin/pkg/devmapper"

// kernel is what the engine asks of device-mapper once its pool is up.
// *devmapper.Control is the real one; unit tests use a fake so that the
// journal and the locking also run under the race detector, which cannot
// run inside the test kernel.
type kernel interface {
	CreateThin(pool string, id uint32) error
	CreateSnap(pool string, id, originID uint32) error
	DeleteThin(pool string, id uint32) error
	SetTransactionID(pool string, oldID, newID uint64) error
	PoolStatus(pool string) (dm.PoolStatus, error)
	PoolStatusNoCommit(pool string) (dm.PoolStatus, error)
	ReloadPool(pool string, t dm.PoolTable, dataSectors uint64) error
	ReserveMetadataSnap(pool string) error
	ReleaseMetadataSnap(pool string) error

	Info(name string) (dm.Info, error)
	List() ([]dm.Device, error)
	Table(name string) ([]dm.Target, error)
	Suspend(name string, opts dm.SuspendOptions) error
	Resume(name string, udev dm.UdevFlags) error
	Remove(name string, opts dm.RemoveOptions) error
	ActivateThin(name, uuid string, t dm.ThinTable, sectors uint64, readOnly bool) (dm.Dev, error)
	ResizeThin(name string, t dm.ThinTable, sectors uint64) error
	ReloadThin(name string, t dm.ThinTable, sectors uint64, readOnly bool) error
	ThinStatus(name string) (dm.ThinStatus, error)
}

var _ kernel = (*dm.Control)(nil)
