package devmapper

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// What the tests ask of the kernel and of a status that csi-thin itself
// does not.

// InactiveTable returns the table loaded but not yet resumed, if any.
func (c *Control) InactiveTable(name string) ([]Target, error) {
	return c.tableStatus(name, unix.DM_STATUS_TABLE_FLAG|unix.DM_QUERY_INACTIVE_TABLE_FLAG)
}

// Healthy returns nil when the pool is safe to provision from: Usable and
// not out of data space.
func (s PoolStatus) Healthy() error {
	if err := s.Usable(); err != nil {
		return err
	}
	if s.Mode == PoolModeOutOfDataSpace {
		return fmt.Errorf("thin-pool is out of data space (%d/%d blocks used): grow the data device or free blocks", s.DataUsed, s.DataTotal)
	}
	return nil
}
