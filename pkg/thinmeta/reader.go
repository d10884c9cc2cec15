package thinmeta

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// Reader reads the metadata device (or a file holding metadata) of a thin
// pool. It is safe for concurrent use.
type Reader struct {
	path   string
	f      *os.File
	ra     io.ReaderAt
	direct bool
	reads  atomic.Uint64 // blocks read from the device
	calls  atomic.Uint64 // reads issued for them
}

// Open opens a thin pool's metadata device, or a file holding metadata,
// for reading. It reads with O_DIRECT: the kernel writes the metadata
// through dm-bufio, past the page cache, so a buffered read of the block
// device may return a block as it was long ago. Only a regular file on a
// filesystem that refuses O_DIRECT is read through the page cache, where
// what was written to the file is.
func Open(path string) (*Reader, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
	direct := true
	if err != nil {
		st, stErr := os.Stat(path)
		if stErr != nil || !bufferedFallback(err, st.Mode()) {
			return nil, fmt.Errorf("open thin-pool metadata: %w", err)
		}
		if f, err = os.Open(path); err != nil {
			return nil, fmt.Errorf("open thin-pool metadata: %w", err)
		}
		direct = false
	}
	r := &Reader{path: path, f: f, ra: f, direct: direct}
	if direct {
		// Some filesystems take O_DIRECT at open and refuse it at read.
		if _, err := r.readBlock(0); err != nil && bufferedFallback(err, fileMode(f)) {
			f.Close()
			if f, err = os.Open(path); err != nil {
				return nil, fmt.Errorf("open thin-pool metadata: %w", err)
			}
			r = &Reader{path: path, f: f, ra: f}
		}
		r.reads.Store(0)
		r.calls.Store(0)
	}
	klog.V(4).InfoS("Opened thin-pool metadata", "path", path, "directIO", r.direct)
	return r, nil
}

// bufferedFallback reports whether err, from opening or reading a file of
// mode m with O_DIRECT, is a filesystem refusing O_DIRECT on a regular
// file, which may then be read through the page cache. A block device
// must take O_DIRECT: its page cache can be stale.
func bufferedFallback(err error, m os.FileMode) bool {
	return errors.Is(err, unix.EINVAL) && m.IsRegular()
}

func fileMode(f *os.File) os.FileMode {
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	return st.Mode()
}

// newReader reads metadata from ra, for tests.
func newReader(name string, ra io.ReaderAt) *Reader {
	return &Reader{path: name, ra: ra}
}

// Close closes the device.
func (r *Reader) Close() error {
	if r.f == nil {
		return nil
	}
	return r.f.Close()
}

// Superblock reads the live superblock, block 0, afresh. It changes with
// every commit of the pool.
func (r *Reader) Superblock() (Superblock, error) {
	return r.superblock(0)
}

// HeldRoot returns the block of the metadata snapshot the pool holds (the
// live superblock's held_root), or ErrNoHeldRoot. Open it with Snapshot.
// Whoever reads it must make sure that the snapshot stays held until the
// read ends.
func (r *Reader) HeldRoot() (uint64, error) {
	sb, err := r.Superblock()
	if err != nil {
		return 0, err
	}
	if sb.HeldRoot == 0 {
		return 0, fmt.Errorf("%w in %s: send the pool the message reserve_metadata_snap first", ErrNoHeldRoot, r.path)
	}
	return sb.HeldRoot, nil
}

func (r *Reader) superblock(block uint64) (Superblock, error) {
	data, err := r.readBlock(block)
	if err != nil {
		return Superblock{}, err
	}
	return parseSuperblock(data, block)
}

// readBlock reads metadata block b into a new buffer aligned for
// O_DIRECT.
func (r *Reader) readBlock(b uint64) ([]byte, error) {
	return r.readBlocks(b, 1)
}

// readBlocks reads n metadata blocks from block b on, in one read.
func (r *Reader) readBlocks(b uint64, n int) ([]byte, error) {
	if b > (1<<63-1)/BlockSize-uint64(n) {
		return nil, corruptf(b, "block number is past any device")
	}
	buf := alignedBuffer(n * BlockSize)
	got, err := r.ra.ReadAt(buf, int64(b*BlockSize))
	r.reads.Add(uint64(n))
	r.calls.Add(1)
	if got == len(buf) {
		return buf, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return nil, corruptf(b+uint64(got/BlockSize), "block is past the end of %s", r.path)
	}
	return nil, fmt.Errorf("read thin-pool metadata blocks %d to %d of %s: %w", b, b+uint64(n)-1, r.path, err)
}

// alignedBuffer returns a buffer of size bytes that starts on a BlockSize
// boundary, as O_DIRECT wants it (the logical block size of the device
// divides BlockSize).
func alignedBuffer(size int) []byte {
	buf := make([]byte, size)
	if uintptr(unsafe.Pointer(&buf[0]))%BlockSize == 0 {
		return buf
	}
	buf = make([]byte, size+BlockSize)
	off := BlockSize - int(uintptr(unsafe.Pointer(&buf[0]))%BlockSize)
	return buf[off : off+size : off+size]
}
