// Package testpool tears down what real-kernel tests of the engine and the
// driver leave: a thin pool, its volumes and its loop devices.
package testpool

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// RemovePool tears down a thin pool a test made: every dm device whose
// name starts with the pool's name (its volumes) and the pool itself, then
// the loop devices over the files in stateDir. It is safe to call when
// some or all of it is already gone.
func RemovePool(t testing.TB, pool, stateDir string) {
	t.Helper()
	ctl, err := dm.Open()
	if err != nil {
		t.Errorf("remove pool %s: %v", pool, err)
		return
	}
	defer ctl.Close()
	devs, err := ctl.List()
	if err != nil {
		t.Errorf("remove pool %s: %v", pool, err)
		return
	}
	for _, d := range devs {
		if strings.HasPrefix(d.Name, pool+"-") {
			if err := ctl.Remove(d.Name, dm.RemoveOptions{}); err != nil {
				t.Errorf("remove volume device %s: %v", d.Name, err)
			}
		}
	}
	if err := ctl.Remove(pool, dm.RemoveOptions{}); err != nil && !errors.Is(err, dm.ErrNotFound) {
		t.Errorf("remove pool %s: %v", pool, err)
	}
	files, _ := filepath.Glob(filepath.Join(stateDir, "*.img"))
	for _, f := range files {
		l, err := dm.FindLoop(f)
		if errors.Is(err, dm.ErrNotFound) {
			continue
		}
		if err == nil {
			err = l.Detach()
		}
		if err != nil {
			t.Errorf("detach the loop device of %s: %v", f, err)
		}
	}
	_ = os.RemoveAll(stateDir)
}
