package fakepool

import (
	"os"
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

// NodePath names the device node before the volume is active, and the
// activation makes that node.
func TestNodePath(t *testing.T) {
	p := NewT(t, Options{})
	v, err := p.CreateVolume(t.Context(), thinpool.CreateRequest{Name: "a", RequiredBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	want := p.NodePath(v.ID)
	a, err := p.ActivateDevice(t.Context(), v.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if a.Path != want {
		t.Errorf("activated at %s, NodePath said %s", a.Path, want)
	}
	if _, err := os.Stat(want); err != nil {
		t.Errorf("the device node: %v", err)
	}
}
