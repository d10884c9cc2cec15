package thinpool_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/csi-thin/csi-thin/internal/kerneltest"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// ekBenchPopulations are the numbers of volumes a pool holds while the
// engine's operations are measured.
var ekBenchPopulations = []int{10, 10000}

// ekBenchPool is a pool holding a population of inactive volumes, which
// every sub-benchmark leaves as it found it.
type ekBenchPool struct {
	e       *thinpool.Engine
	volumes []*thinpool.Volume
	seq     int
}

func (p *ekBenchPool) name(kind string) string {
	p.seq++
	return fmt.Sprintf("bench-%s-%d", kind, p.seq)
}

// ekBenchPopulate opens a loopback pool and creates n volumes of 1 MiB on
// it. The pool is 64 GiB of sparse file so that its metadata (100 MiB by
// the rule of config.go) holds 10,000 thin devices, about 4 KiB each,
// with room to spare above the reserve.
func ekBenchPopulate(b *testing.B, n int) *ekBenchPool {
	b.Helper()
	cfg := thinpool.Config{
		StateDir:      b.TempDir(),
		PoolName:      fmt.Sprintf("ek-bench-%d", n),
		PoolSizeBytes: 64 * ekGiB,
	}
	ekCleanupPool(b, cfg)
	p := &ekBenchPool{e: ekOpen(b, cfg)}
	start := time.Now()
	for i := range n {
		v, err := p.e.CreateVolume(b.Context(), thinpool.CreateRequest{Name: fmt.Sprintf("pop-%05d", i), RequiredBytes: ekMiB})
		if err != nil {
			b.Fatalf("populate: volume %d of %d: %v", i, n, err)
		}
		p.volumes = append(p.volumes, v)
	}
	d := time.Since(start)
	c, err := p.e.Capacity()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("populated %s with %d volumes in %v (%v a create); metadata %d of %d KiB used",
		cfg.PoolName, n, d.Round(time.Millisecond), (d / time.Duration(n)).Round(time.Microsecond),
		c.MetadataUsedBytes>>10, c.MetadataBytes>>10)
	return p
}

// BenchmarkEngine measures create, snapshot and delete with 10 and with
// 10,000 volumes in the pool. Each iteration is one timed operation; what
// undoes it, or prepares it, runs with the timer stopped, so the pool
// keeps its population throughout. Both pools are populated once, before
// any timing.
func BenchmarkEngine(b *testing.B) {
	kerneltest.Require(b)
	pools := map[int]*ekBenchPool{}
	for _, n := range ekBenchPopulations {
		pools[n] = ekBenchPopulate(b, n)
	}
	for _, op := range []struct {
		name string
		run  func(b *testing.B, p *ekBenchPool)
	}{
		{"create", ekBenchCreate},
		{"snapshot", ekBenchSnapshot},
		{"delete", ekBenchDelete},
	} {
		for _, n := range ekBenchPopulations {
			b.Run(fmt.Sprintf("%s/volumes=%d", op.name, n), func(b *testing.B) { op.run(b, pools[n]) })
		}
	}
}

// ekBenchCreate times creating a blank 1 MiB volume.
func ekBenchCreate(b *testing.B, p *ekBenchPool) {
	b.ResetTimer()
	for range b.N {
		v, err := p.e.CreateVolume(b.Context(), thinpool.CreateRequest{Name: p.name("create"), RequiredBytes: ekMiB})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := p.e.Delete(b.Context(), v.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// ekBenchSnapshot times a snapshot of an inactive volume of the
// population, a different one each time.
func ekBenchSnapshot(b *testing.B, p *ekBenchPool) {
	b.ResetTimer()
	for i := range b.N {
		s, err := p.e.CreateSnapshot(b.Context(), p.name("snapshot"), p.volumes[i%len(p.volumes)].ID, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := p.e.Delete(b.Context(), s.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// ekBenchDelete times deleting a blank volume.
func ekBenchDelete(b *testing.B, p *ekBenchPool) {
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		v, err := p.e.CreateVolume(b.Context(), thinpool.CreateRequest{Name: p.name("delete"), RequiredBytes: ekMiB})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := p.e.Delete(b.Context(), v.ID); err != nil {
			b.Fatal(err)
		}
	}
}
