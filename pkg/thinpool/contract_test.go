package thinpool_test

import (
	"testing"

	"github.com/csi-thin/csi-thin/internal/pooltest"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// TestPoolContract: the engine keeps the contract of thinpool.Pool that
// the CSI services' fake is held to as well.
func TestPoolContract(t *testing.T) {
	holds := map[thinpool.Pool]func(string) func(){}
	pooltest.Run(t, pooltest.Harness{
		New: func(t *testing.T) thinpool.Pool {
			e, hold := thinpool.NewTestEngine(t)
			holds[e] = hold
			return e
		},
		Hold: func(t *testing.T, p thinpool.Pool, id string) func() { return holds[p](id) },
	})
}
