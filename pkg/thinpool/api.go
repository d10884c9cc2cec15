package thinpool

import "context"

// Pool is what the CSI controller and node services ask of a node's
// pool. *Engine is the one that runs; internal/fakepool has the one their
// unit tests run over, so that every handler's decisions and error codes
// are tested without a kernel. The kernel tests stay the judge of what
// the engine does.
type Pool interface {
	// Volumes and snapshots.
	CreateVolume(ctx context.Context, req CreateRequest) (*Volume, error)
	CreateSnapshot(ctx context.Context, name, sourceID string, params map[string]string) (*Volume, error)
	Delete(ctx context.Context, id string) error
	Expand(ctx context.Context, id string, sizeBytes uint64) (*Volume, error)
	Get(id string) (*Volume, error)
	GetByName(kind Kind, name string) (*Volume, error)
	List(kind Kind, token string, max int) ([]*Volume, string, error)

	// Group snapshots.
	CreateGroupSnapshot(ctx context.Context, name string, sourceIDs []string, params map[string]string) (*GroupSnapshot, error)
	DeleteGroupSnapshot(ctx context.Context, id string) error
	GetGroupSnapshot(id string) (*GroupSnapshot, error)

	// Devices on this node.
	ActivateDevice(ctx context.Context, id string, readOnly bool) (Activation, error)
	Deactivate(ctx context.Context, id string) error
	DevicePath(id string) (string, error)
	DeviceBytes(id string) (uint64, error)

	// Space and health.
	Capacity() (Capacity, error)
	Health() error
	Condition(id string) error
	BlockSizeBytes() uint64
}

var _ Pool = (*Engine)(nil)
