// Package testpool tears down what real-kernel tests of the engine and the
// driver, and the demo, leave: a thin pool, its volumes and its loop
// devices. It also reads a live pool's thin ids past the engine, from a
// metadata snapshot.
package testpool

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// RemovePool tears down a thin pool a test made (see Remove), failing the
// test on what it cannot remove.
func RemovePool(t testing.TB, pool, stateDir string) {
	t.Helper()
	if err := Remove(pool, stateDir); err != nil {
		t.Errorf("remove pool %s: %v", pool, err)
	}
}

// Remove tears down a thin pool: every dm device whose name starts with
// the pool's name (its volumes) and the pool itself, then the loop devices
// over the files in stateDir, then stateDir. It is safe to call when some
// or all of it is already gone, and carries on past a failure, returning
// every one.
func Remove(pool, stateDir string) error {
	ctl, err := dm.Open()
	if err != nil {
		return err
	}
	defer ctl.Close()
	devs, err := ctl.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range devs {
		if strings.HasPrefix(d.Name, pool+"-") {
			if err := ctl.Remove(d.Name, dm.RemoveOptions{}); err != nil {
				errs = append(errs, fmt.Errorf("remove volume device %s: %w", d.Name, err))
			}
		}
	}
	if err := ctl.Remove(pool, dm.RemoveOptions{}); err != nil && !errors.Is(err, dm.ErrNotFound) {
		errs = append(errs, fmt.Errorf("remove pool device %s: %w", pool, err))
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
			errs = append(errs, fmt.Errorf("detach the loop device of %s: %w", f, err))
		}
	}
	_ = os.RemoveAll(stateDir)
	return errors.Join(errs...)
}

// ThinIDs returns the thin device ids in a live pool's metadata, as
// thin_ls (thin-provisioning-tools) reads them from a metadata snapshot
// reserved for the purpose: an independent view of the pool, not the
// engine's.
func ThinIDs(pool, metadataDev string) (map[uint32]bool, error) {
	ctl, err := dm.Open()
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	if err := ctl.ReserveMetadataSnap(pool); err != nil {
		return nil, err
	}
	out, err := exec.Command("thin_ls", "--metadata-snap", "--no-headers", "-o", "DEV", metadataDev).CombinedOutput()
	if relErr := ctl.ReleaseMetadataSnap(pool); relErr != nil && err == nil {
		err = relErr
	}
	if err != nil {
		return nil, fmt.Errorf("thin_ls %s: %w: %s", metadataDev, err, out)
	}
	ids := map[uint32]bool{}
	for _, f := range strings.Fields(string(out)) {
		id, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("thin_ls printed %q, not a device id", f)
		}
		ids[uint32(id)] = true
	}
	return ids, nil
}
