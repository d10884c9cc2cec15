package kerneltest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// FileWriter keeps writing numbered files into a directory, each fsynced
// before the count of finished files moves on: the workload a snapshot of
// a mounted volume is taken under. WaitFor blocks on a condition variable,
// not a sleep.
type FileWriter struct {
	dir      string
	mu       sync.Mutex
	cond     *sync.Cond
	finished int
	err      error
	exited   bool
	stop     chan struct{}
	stopOnce sync.Once
	gone     chan struct{}
}

// StartFileWriter starts writing files into dir; the test's cleanup stops
// it if the test does not.
func StartFileWriter(t testing.TB, dir string) *FileWriter {
	w := &FileWriter{dir: dir, stop: make(chan struct{}), gone: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	go w.run()
	t.Cleanup(func() { w.Halt() })
	return w
}

func (w *FileWriter) run() {
	defer func() {
		w.mu.Lock()
		w.exited = true
		w.cond.Broadcast()
		w.mu.Unlock()
		close(w.gone)
	}()
	for i := 0; ; i++ {
		select {
		case <-w.stop:
			return
		default:
		}
		err := WriteSynced(FileName(w.dir, i), FileContent(i))
		w.mu.Lock()
		if err != nil {
			w.err = err
		} else {
			w.finished = i + 1
		}
		w.cond.Broadcast()
		w.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Done is how many files the writer has finished.
func (w *FileWriter) Done() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.finished
}

// WaitFor blocks until the writer has finished n files; it fails the test
// if the writer fails, or has not got there in two minutes.
func (w *FileWriter) WaitFor(t testing.TB, n int) {
	t.Helper()
	late := false
	timer := time.AfterFunc(2*time.Minute, func() {
		w.mu.Lock()
		late = true
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer timer.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.finished < n && !w.exited && !late {
		w.cond.Wait()
	}
	if w.finished < n {
		t.Fatalf("the writer finished %d of %d files (error %v, timed out %v)", w.finished, n, w.err, late)
	}
}

// Halt stops the writer and returns how many files it finished.
func (w *FileWriter) Halt() (int, error) {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.gone
	return w.finished, w.err
}

// FileName is the name of the writer's i-th file in dir.
func FileName(dir string, i int) string { return filepath.Join(dir, fmt.Sprintf("f%05d", i)) }

// FileContent is what the writer puts in its i-th file: a different
// pattern and length for each.
func FileContent(i int) []byte { return Pattern(byte(i), 24<<10+i) }

// CheckFiles fails the test unless the writer's files [0, n) read back in
// dir as written.
func CheckFiles(t testing.TB, dir string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if got, err := os.ReadFile(FileName(dir, i)); err != nil || !bytes.Equal(got, FileContent(i)) {
			t.Fatalf("file %d of %d does not read back as written (%v)", i, n, err)
		}
	}
}

// WriteSynced writes a file and fsyncs it before closing.
func WriteSynced(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Pattern is n bytes that differ for every seed and offset.
func Pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	x := (uint64(seed) + 1) * 0x9E3779B97F4A7C15
	i := 0
	for ; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], x^uint64(i))
	}
	for ; i < n; i++ {
		b[i] = byte(x) ^ byte(i)
	}
	return b
}
