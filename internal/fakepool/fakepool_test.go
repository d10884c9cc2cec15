package fakepool

import (
	"testing"

	"github.com/csi-thin/csi-thin/internal/pooltest"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// TestPoolContract: the fake keeps the contract the engine keeps.
func TestPoolContract(t *testing.T) {
	pooltest.Run(t, pooltest.Harness{
		New: func(t *testing.T) thinpool.Pool { return NewT(t, Options{BudgetBytes: 10 << 30}) },
		Hold: func(t *testing.T, p thinpool.Pool, id string) func() {
			if err := p.(*Pool).Hold(id); err != nil {
				t.Fatal(err)
			}
			return func() {
				if err := p.(*Pool).Release(id); err != nil {
					t.Error(err)
				}
			}
		},
	})
}
