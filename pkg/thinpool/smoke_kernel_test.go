package thinpool_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/csi-thin/csi-thin/internal/kerneltest"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

func TestEngineSmoke(t *testing.T) {
	kerneltest.Require(t)
	dir := t.TempDir()
	cfg := thinpool.Config{StateDir: dir, PoolName: "csi-thin-smoke", PoolSizeBytes: 256 << 20}
	e, err := thinpool.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.CreateVolume(thinpool.CreateRequest{Name: "a", SizeBytes: 10 << 20})
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.Activate(v.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("csi-thin"), 1<<17)
	if err := os.WriteFile(p, data, 0); err != nil {
		t.Fatal(err)
	}
	s, err := e.CreateSnapshot("s", v.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.CreateVolume(thinpool.CreateRequest{Name: "r", SourceID: s.ID, SizeBytes: 20 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Deactivate(v.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.Delete(v.ID); err != nil {
		t.Fatal(err)
	}
	rp, err := e.Activate(r.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(rp)
	if err != nil || !bytes.Equal(got[:len(data)], data) || len(got) != 20<<20 {
		t.Fatalf("restore: %d bytes, %v", len(got), err)
	}
	e.Deactivate(r.ID)
	e.Close()
	e, err = thinpool.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	vs, _, err := e.List(thinpool.KindVolume, "", 0)
	if err != nil || len(vs) != 1 || vs[0].ID != r.ID {
		t.Fatalf("after reopen: %+v %v", vs, err)
	}
	c, err := e.Capacity()
	t.Logf("capacity %+v %v", c, err)
}
