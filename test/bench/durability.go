package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// durability is what it costs to make a small write durable in a state
// directory: a 4 KiB write and its fdatasync alone, and a bbolt commit of
// one small record (bbolt writes its pages and syncs, then its meta page
// and syncs again), as the engine's intent is.
type durability struct {
	fsync, commit Sample
}

// measureDurability times n fsyncs and n bbolt commits in dir.
func measureDurability(dir string, n int) (durability, error) {
	var d durability
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return d, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "fsync.bin"), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return d, err
	}
	defer f.Close()
	page := make([]byte, 4096)
	for i := range 256 { // a file of 1 MiB written and synced before the timing
		if _, err := f.WriteAt(page, int64(i)*4096); err != nil {
			return d, err
		}
	}
	if err := f.Sync(); err != nil {
		return d, err
	}
	for i := range n {
		page[0] = byte(i)
		t0 := time.Now()
		if _, err := f.WriteAt(page, int64(i%256)*4096); err != nil {
			return d, err
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return d, fmt.Errorf("fdatasync %s: %w", f.Name(), err)
		}
		d.fsync = append(d.fsync, time.Since(t0))
	}

	db, err := bolt.Open(filepath.Join(dir, "commit.db"), 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return d, err
	}
	defer db.Close()
	bucket := []byte("records")
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bucket); return err }); err != nil {
		return d, err
	}
	record := make([]byte, 512) // about a volume's record
	for i := range n {
		t0 := time.Now()
		err := db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucket).Put(fmt.Appendf(nil, "record-%06d", i), record)
		})
		if err != nil {
			return d, err
		}
		d.commit = append(d.commit, time.Since(t0))
	}
	return d, nil
}
