package thinpool_test

import (
	"context"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/csi-thin/csi-thin/internal/kerneltest"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// BenchmarkBlockMaps measures the snapshot metadata service's reads
// against the goals: the delta of two snapshots of a 100 GiB volume, 10
// GiB of it written and then 1 GiB of that changed, and the allocated map
// of a fully written 10 GiB volume against reading that volume's device.
// It writes 21 GiB, minutes in the test kernel, so it runs only with
// CSI_THIN_BENCH_BLOCKMAPS=1 (make bench-blockmaps), and skips when the
// scratch disk has less room.
func BenchmarkBlockMaps(b *testing.B) {
	if os.Getenv("CSI_THIN_BENCH_BLOCKMAPS") == "" {
		b.Skip("writes 21 GiB: run with CSI_THIN_BENCH_BLOCKMAPS=1 (make bench-blockmaps)")
	}
	kerneltest.Require(b)
	dir := kerneltest.ScratchDir(b)
	const need = 24 * ekGiB
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		b.Fatal(err)
	}
	if free := fs.Bavail * uint64(fs.Bsize); free < need {
		b.Skipf("the scratch disk has %d GiB free, the benchmark writes %d", free/ekGiB, need/ekGiB)
	}
	cfg := thinpool.Config{StateDir: dir, PoolName: ekPoolName(b), PoolSizeBytes: 23 * ekGiB, OverprovisionRatio: 20}
	ekCleanupPool(b, cfg)
	e := ekOpen(b, cfg)

	// 10 GiB spread over a 100 GiB volume, a MiB in every ten; then a
	// tenth of those MiB written again.
	big := ekCreate(b, e, "big", 100*ekGiB)
	dev := ekActivate(b, e, big)
	bmFill(b, dev, 10*1024, func(i int64) int64 { return i * 10 })
	s1 := ekSnapshot(b, e, "big-1", big.ID)
	bmFill(b, dev, 1024, func(i int64) int64 { return i * 100 })
	s2 := ekSnapshot(b, e, "big-2", big.ID)
	ekDeactivate(b, e, big)

	full := ekCreate(b, e, "full", 10*ekGiB)
	dev = ekActivate(b, e, full)
	bmFill(b, dev, 10*1024, func(i int64) int64 { return i })
	s3 := ekSnapshot(b, e, "full-1", full.ID)
	ekDeactivate(b, e, full)

	read := func(b *testing.B, f func(fn func(thinpool.Extent) error) error) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var blocks uint64
		start := time.Now()
		n := 0
		for b.Loop() {
			blocks = 0
			if err := f(func(x thinpool.Extent) error { blocks += x.Len; return nil }); err != nil {
				b.Fatal(err)
			}
			n++
		}
		per := time.Since(start) / time.Duration(n)
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(blocks), "blocks")
		b.ReportMetric(per.Seconds(), "s/read")
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(n), "alloc-bytes/read")
		b.ReportMetric(float64(after.HeapSys)/(1<<20), "heap-MiB")
	}
	b.Run("delta-100GiB-1GiB-changed", func(b *testing.B) {
		read(b, func(fn func(thinpool.Extent) error) error { return e.Delta(context.Background(), s1.ID, s2.ID, 0, fn) })
	})
	b.Run("allocated-10GiB-full", func(b *testing.B) {
		read(b, func(fn func(thinpool.Extent) error) error { return e.Allocated(context.Background(), s3.ID, 0, fn) })
	})
	b.Run("read-device-10GiB", func(b *testing.B) {
		p := ekActivate(b, e, s3)
		defer ekDeactivate(b, e, s3)
		buf := make([]byte, 4*ekMiB)
		start := time.Now()
		n := 0
		for b.Loop() {
			f, err := os.Open(p)
			if err != nil {
				b.Fatal(err)
			}
			// Past the page cache, as a backup tool reading a device would
			// see it cold.
			unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
			for off := int64(0); off < int64(s3.SizeBytes); off += int64(len(buf)) {
				if _, err := f.ReadAt(buf, off); err != nil {
					b.Fatal(err)
				}
			}
			f.Close()
			n++
		}
		b.ReportMetric((time.Since(start) / time.Duration(n)).Seconds(), "s/read")
	})
}

// bmFill writes mib MiB of data to the device at path, MiB i at MiB
// at(i), with O_DIRECT so that the page cache does not hold 10 GiB.
func bmFill(b *testing.B, path string, mib int64, at func(int64) int64) {
	b.Helper()
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	buf, err := unix.Mmap(-1, 0, ekMiB, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(buf)
	copy(buf, ekPattern(7, ekMiB))
	for i := range mib {
		buf[0], buf[1] = byte(i), byte(i>>8)
		if _, err := unix.Pwrite(fd, buf, at(i)*ekMiB); err != nil {
			b.Fatalf("write MiB %d of %s: %v", at(i), path, err)
		}
	}
	if err := unix.Fsync(fd); err != nil {
		b.Fatal(err)
	}
}
