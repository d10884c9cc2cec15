package thinpool_test

import (
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"sync"
	"testing"

	"github.com/csi-thin/csi-thin/internal/testpool"
	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// TestEngineConcurrentOperations runs 200 goroutines creating,
// snapshotting, restoring and deleting over 50 names at once on a real
// pool, then checks the pool's thin ids, read by thin_ls from a metadata
// snapshot, against the records: no leak, no loss, no name twice. The
// same workload runs under the race detector against a fake kernel in the
// package's unit tests.
func TestEngineConcurrentOperations(t *testing.T) {
	cfg := ekLoopConfig(t, 1<<30)
	e := ekOpen(t, cfg)
	defer ekClose(t, e)
	const workers, names, ops = 200, 50, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	var unexpected []error
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed))
			for i := 0; i < ops; i++ {
				name := fmt.Sprint("n", r.Intn(names))
				var err error
				switch r.Intn(4) {
				case 0:
					_, err = e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: name, RequiredBytes: 1 << 20})
				case 1:
					if v, gerr := e.GetByName(thinpool.KindVolume, name); gerr == nil {
						_, err = e.CreateSnapshot(t.Context(), name, v.ID, nil)
					}
				case 2:
					if s, gerr := e.GetByName(thinpool.KindSnapshot, name); gerr == nil {
						_, err = e.CreateVolume(t.Context(), thinpool.CreateRequest{Name: name + "-r", SourceID: s.ID})
					}
				case 3:
					kind := []thinpool.Kind{thinpool.KindVolume, thinpool.KindSnapshot}[r.Intn(2)]
					if v, gerr := e.GetByName(kind, name); gerr == nil {
						err = e.Delete(t.Context(), v.ID)
					}
				}
				// A racing caller may find its source or victim gone, or
				// the name taken from another source: fair answers.
				if err != nil && !errors.Is(err, thinpool.ErrNotFound) && !errors.Is(err, thinpool.ErrExists) {
					mu.Lock()
					unexpected = append(unexpected, err)
					mu.Unlock()
				}
			}
		}(int64(w))
	}
	wg.Wait()
	for _, err := range unexpected {
		t.Error(err)
	}

	records := map[uint32]string{}
	for _, kind := range []thinpool.Kind{thinpool.KindVolume, thinpool.KindSnapshot} {
		vs, _, err := e.List(kind, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]bool{}
		for _, v := range vs {
			if byName[v.Name] {
				t.Errorf("%s %q exists twice", kind, v.Name)
			}
			byName[v.Name] = true
			if other, dup := records[v.ThinID]; dup {
				t.Errorf("thin %d is named by %s and %s", v.ThinID, other, v.ID)
			}
			records[v.ThinID] = v.ID
		}
	}
	meta, err := dm.FindLoop(filepath.Join(cfg.StateDir, "pool-metadata.img"))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := testpool.ThinIDs(cfg.PoolName, meta.Path)
	if err != nil {
		t.Fatal(err)
	}
	for id := range pool {
		if _, ok := records[id]; !ok {
			t.Errorf("leak: thin %d is in the pool but no record names it", id)
		}
	}
	for id, v := range records {
		if !pool[id] {
			t.Errorf("loss: %s names thin %d, which the pool does not have", v, id)
		}
	}
	t.Logf("%d workers × %d operations over %d names: %d thin devices left, records and pool agree", workers, ops, names, len(pool))
}
