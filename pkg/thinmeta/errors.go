package thinmeta

import (
	"errors"
	"fmt"
)

var (
	// ErrCorrupt: a metadata block is not what the format says it must
	// be. Every such error is a *CorruptError naming the block.
	ErrCorrupt = errors.New("corrupt thin-pool metadata")
	// ErrNoHeldRoot: the pool holds no metadata snapshot.
	ErrNoHeldRoot = errors.New("the pool holds no metadata snapshot")
	// ErrNoDevice: the metadata has no thin device with that id.
	ErrNoDevice = errors.New("no such thin device")
)

// CorruptError is a metadata block that fails a check: which block, and
// what was wrong with it.
type CorruptError struct {
	Block  uint64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("thin-pool metadata block %d: %s (check the metadata with thin_check)", e.Block, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) hold.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func corruptf(block uint64, format string, args ...any) error {
	return &CorruptError{Block: block, Reason: fmt.Sprintf(format, args...)}
}
