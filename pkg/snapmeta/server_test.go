package snapmeta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/csi-thin/csi-thin/pkg/forward"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

const kib = 1024

// serve runs srv on a unix socket in a temporary directory and returns a
// client of it.
func serve(t *testing.T, srv csi.SnapshotMetadataServer) csi.SnapshotMetadataClient {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "csi.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	csi.RegisterSnapshotMetadataServer(s, srv)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return csi.NewSnapshotMetadataClient(conn)
}

// A message as the tests compare it: its style, capacity and entries as
// [offset, size] pairs.
type msg struct {
	style    csi.BlockMetadataType
	capacity int64
	entries  [][2]int64
}

type response interface {
	GetBlockMetadataType() csi.BlockMetadataType
	GetVolumeCapacityBytes() int64
	GetBlockMetadata() []*csi.BlockMetadata
}

// drain reads a stream to its end: its messages, its header, and its
// final error (nil at a clean end).
func drain[R response](stream interface {
	Recv() (R, error)
	Header() (metadata.MD, error)
}, err error) ([]msg, metadata.MD, error) {
	if err != nil {
		return nil, nil, err
	}
	var msgs []msg
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			md, _ := stream.Header()
			return msgs, md, nil
		}
		if err != nil {
			return msgs, nil, err
		}
		m := msg{style: r.GetBlockMetadataType(), capacity: r.GetVolumeCapacityBytes()}
		for _, b := range r.GetBlockMetadata() {
			m.entries = append(m.entries, [2]int64{b.GetByteOffset(), b.GetSizeBytes()})
		}
		msgs = append(msgs, m)
	}
}

func x(block, n uint64) thinpool.Extent { return thinpool.Extent{Block: block, Len: n} }

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// source: volume vol-a (10 blocks of 4 KiB) with snapshots snap-1 and,
// later, snap-2 (grown to 12 blocks); vol-b with snap-b.
func source() *fakeSource {
	return &fakeSource{
		maps: map[string]thinpool.BlockMap{
			"snap-1":     {VolumeID: "vol-a", CreatedAt: t0, VolumeBytes: 40 * kib, BlockBytes: 4 * kib},
			"snap-2":     {VolumeID: "vol-a", CreatedAt: t0.Add(time.Second), VolumeBytes: 48 * kib, BlockBytes: 4 * kib},
			"snap-b":     {VolumeID: "vol-b", CreatedAt: t0.Add(2 * time.Second), VolumeBytes: 40 * kib, BlockBytes: 4 * kib},
			"snap-empty": {VolumeID: "vol-c", CreatedAt: t0, VolumeBytes: 40 * kib, BlockBytes: 4 * kib},
			"snap-odd":   {VolumeID: "vol-d", CreatedAt: t0, VolumeBytes: 10 * kib, BlockBytes: 4 * kib},
		},
		runs: map[string][]thinpool.Extent{
			"snap-1":   {x(0, 2), x(2, 1), x(5, 1), x(7, 3)},
			"snap-2":   {x(0, 12)},
			"snap-b":   {x(1, 1)},
			"snap-odd": {x(0, 3)},
		},
		deltas: map[[2]string][]thinpool.Extent{
			{"snap-1", "snap-2"}: {x(3, 2), x(6, 1), x(10, 2)},
		},
	}
}

const (
	variable = csi.BlockMetadataType_VARIABLE_LENGTH
	fixed    = csi.BlockMetadataType_FIXED_LENGTH
)

func e(off, size int64) [2]int64 { return [2]int64{off * kib, size * kib} }

func TestGetMetadataAllocated(t *testing.T) {
	cases := []struct {
		name   string
		style  csi.BlockMetadataType
		src    func(*fakeSource)
		req    *csi.GetMetadataAllocatedRequest
		want   []msg
		code   codes.Code
		detail string // in the error's message
	}{
		{name: "adjacent runs merged", style: variable,
			req:  &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-1"},
			want: []msg{{variable, 40 * kib, [][2]int64{e(0, 12), e(20, 4), e(28, 12)}}}},
		{name: "one block an entry", style: fixed,
			req:  &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-1"},
			want: []msg{{fixed, 40 * kib, [][2]int64{e(0, 4), e(4, 4), e(8, 4), e(20, 4), e(28, 4), e(32, 4), e(36, 4)}}}},
		{name: "max_results pages the merged entries", style: variable,
			req:  &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-1", MaxResults: 2},
			want: []msg{{variable, 40 * kib, [][2]int64{e(0, 12), e(20, 4)}}, {variable, 40 * kib, [][2]int64{e(28, 12)}}}},
		{name: "max_results pages the blocks", style: fixed,
			req: &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-1", MaxResults: 3},
			want: []msg{
				{fixed, 40 * kib, [][2]int64{e(0, 4), e(4, 4), e(8, 4)}},
				{fixed, 40 * kib, [][2]int64{e(20, 4), e(28, 4), e(32, 4)}},
				{fixed, 40 * kib, [][2]int64{e(36, 4)}},
			}},
		{name: "a full last page ends the stream", style: variable,
			req:  &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-1", MaxResults: 3},
			want: []msg{{variable, 40 * kib, [][2]int64{e(0, 12), e(20, 4), e(28, 12)}}}},
		{name: "runs merged across the source's calls and pages", style: variable,
			src:  func(f *fakeSource) { f.runs["snap-1"] = []thinpool.Extent{x(0, 1), x(1, 1), x(2, 1), x(4, 1), x(5, 1)} },
			req:  &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-1", MaxResults: 1},
			want: []msg{{variable, 40 * kib, [][2]int64{e(0, 12)}}, {variable, 40 * kib, [][2]int64{e(16, 8)}}}},
		{name: "offset inside a block starts at that block", style: variable,
			req:  &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-1", StartingOffset: 4*kib + 1},
			want: []msg{{variable, 40 * kib, [][2]int64{e(4, 8), e(20, 4), e(28, 12)}}}},
		{name: "offset on a block boundary", style: fixed,
			req:  &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-1", StartingOffset: 32 * kib},
			want: []msg{{fixed, 40 * kib, [][2]int64{e(32, 4), e(36, 4)}}}},
		{name: "offset in a hole", style: variable,
			req:  &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-1", StartingOffset: 13 * kib},
			want: []msg{{variable, 40 * kib, [][2]int64{e(20, 4), e(28, 12)}}}},
		{name: "a source that ignores the offset is cut to it", style: variable,
			src:  func(f *fakeSource) { f.raw = true },
			req:  &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-1", StartingOffset: 30 * kib},
			want: []msg{{variable, 40 * kib, [][2]int64{e(28, 12)}}}},
		{name: "offset at the end: no entries", style: variable,
			req:  &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-1", StartingOffset: 40 * kib},
			want: []msg{{variable, 40 * kib, nil}}},
		{name: "empty snapshot: one message with the capacity", style: fixed,
			req:  &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-empty"},
			want: []msg{{fixed, 40 * kib, nil}}},
		{name: "last entry cut at the volume's end", style: variable,
			req:  &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-odd"},
			want: []msg{{variable, 10 * kib, [][2]int64{e(0, 10)}}}},
		{name: "no snapshot id", style: variable,
			req: &csi.GetMetadataAllocatedRequest{}, code: codes.InvalidArgument, detail: "snapshot_id is required"},
		{name: "unknown snapshot", style: variable,
			req: &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-x"}, code: codes.NotFound, detail: "not on node node-1"},
		{name: "negative offset", style: variable,
			req: &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-1", StartingOffset: -1}, code: codes.OutOfRange, detail: "negative"},
		{name: "offset beyond the end", style: variable,
			req: &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-1", StartingOffset: 40*kib + 1}, code: codes.OutOfRange, detail: "beyond the snapshot's size"},
		{name: "the engine's error keeps its code", style: variable,
			src: func(f *fakeSource) { f.err = fmt.Errorf("%w: pool is read-only", thinpool.ErrUnhealthy) },
			req: &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-1"}, code: codes.Unavailable, detail: "read-only"},
		{name: "runs out of order", style: variable,
			src: func(f *fakeSource) { f.runs["snap-1"] = []thinpool.Extent{x(4, 1), x(2, 1)} },
			req: &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-1"}, code: codes.Internal, detail: "out of order"},
		{name: "an empty run", style: variable,
			src: func(f *fakeSource) { f.runs["snap-1"] = []thinpool.Extent{x(4, 0)} },
			req: &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-1"}, code: codes.Internal, detail: "empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := source()
			if c.src != nil {
				c.src(src)
			}
			srv, err := NewServer(src, "node-1", c.style)
			if err != nil {
				t.Fatal(err)
			}
			client := serve(t, srv)
			got, md, err := drain(client.GetMetadataAllocated(context.Background(), c.req))
			check(t, got, md, err, c.want, c.code, c.detail)
		})
	}
}

func TestGetMetadataDelta(t *testing.T) {
	cases := []struct {
		name   string
		style  csi.BlockMetadataType
		req    *csi.GetMetadataDeltaRequest
		want   []msg
		code   codes.Code
		detail string
	}{
		{name: "changed runs, the target's capacity", style: variable,
			req:  &csi.GetMetadataDeltaRequest{BaseSnapshotId: "snap-1", TargetSnapshotId: "snap-2"},
			want: []msg{{variable, 48 * kib, [][2]int64{e(12, 8), e(24, 4), e(40, 8)}}}},
		{name: "changed blocks from an offset, paged", style: fixed,
			req:  &csi.GetMetadataDeltaRequest{BaseSnapshotId: "snap-1", TargetSnapshotId: "snap-2", StartingOffset: 17 * kib, MaxResults: 2},
			want: []msg{{fixed, 48 * kib, [][2]int64{e(16, 4), e(24, 4)}}, {fixed, 48 * kib, [][2]int64{e(40, 4), e(44, 4)}}}},
		{name: "no base", style: variable,
			req: &csi.GetMetadataDeltaRequest{TargetSnapshotId: "snap-2"}, code: codes.InvalidArgument, detail: "both required"},
		{name: "no target", style: variable,
			req: &csi.GetMetadataDeltaRequest{BaseSnapshotId: "snap-1"}, code: codes.InvalidArgument, detail: "both required"},
		{name: "base is target", style: variable,
			req: &csi.GetMetadataDeltaRequest{BaseSnapshotId: "snap-1", TargetSnapshotId: "snap-1"}, code: codes.InvalidArgument, detail: "later snapshot"},
		{name: "unknown base", style: variable,
			req: &csi.GetMetadataDeltaRequest{BaseSnapshotId: "snap-x", TargetSnapshotId: "snap-2"}, code: codes.NotFound, detail: "snap-x"},
		{name: "unknown target", style: variable,
			req: &csi.GetMetadataDeltaRequest{BaseSnapshotId: "snap-1", TargetSnapshotId: "snap-x"}, code: codes.NotFound, detail: "snap-x"},
		{name: "snapshots of different volumes", style: variable,
			req: &csi.GetMetadataDeltaRequest{BaseSnapshotId: "snap-1", TargetSnapshotId: "snap-b"}, code: codes.InvalidArgument, detail: "same volume"},
		{name: "base newer than target", style: variable,
			req: &csi.GetMetadataDeltaRequest{BaseSnapshotId: "snap-2", TargetSnapshotId: "snap-1"}, code: codes.InvalidArgument, detail: "swap them"},
		{name: "offset beyond the target", style: variable,
			req: &csi.GetMetadataDeltaRequest{BaseSnapshotId: "snap-1", TargetSnapshotId: "snap-2", StartingOffset: 49 * kib}, code: codes.OutOfRange},
		{name: "negative offset", style: variable,
			req: &csi.GetMetadataDeltaRequest{BaseSnapshotId: "snap-1", TargetSnapshotId: "snap-2", StartingOffset: -4096}, code: codes.OutOfRange},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, err := NewServer(source(), "node-1", c.style)
			if err != nil {
				t.Fatal(err)
			}
			client := serve(t, srv)
			got, md, err := drain(client.GetMetadataDelta(context.Background(), c.req))
			check(t, got, md, err, c.want, c.code, c.detail)
		})
	}
}

func check(t *testing.T, got []msg, md metadata.MD, err error, want []msg, code codes.Code, detail string) {
	t.Helper()
	if code != codes.OK {
		if status.Code(err) != code {
			t.Fatalf("got %v (messages %v), want code %v", err, got, code)
		}
		if !strings.Contains(status.Convert(err).Message(), detail) {
			t.Fatalf("message %q does not say %q", status.Convert(err).Message(), detail)
		}
		return
	}
	if err != nil {
		t.Fatalf("stream failed: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("messages\n  %v\nwant\n  %v", got, want)
	}
	if n := md.Get(forward.NodeHeader); len(n) != 1 || n[0] != "node-1" {
		t.Fatalf("header %s = %q, want node-1", forward.NodeHeader, n)
	}
}

func TestNewServerStyle(t *testing.T) {
	if _, err := NewServer(source(), "n", csi.BlockMetadataType_UNKNOWN); err == nil {
		t.Fatal("UNKNOWN style accepted")
	}
}

// A caller that goes away mid-stream stops the source: its callback
// returns the call's context error, which ends the source's walk.
func TestCancelMidStream(t *testing.T) {
	src := source()
	// One block in the first run: the source sends it and waits, with
	// no look at the context in between that the cancel could win.
	src.runs["snap-1"] = []thinpool.Extent{x(0, 1), x(2, 1), x(5, 1)}
	src.after, src.ended = 1, make(chan error, 1)
	srv, _ := NewServer(src, "node-1", fixed)
	client := serve(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := client.GetMetadataAllocated(ctx, &csi.GetMetadataAllocatedRequest{SnapshotId: "snap-1", MaxResults: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil { // block 0, before the source waits
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-src.ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the source's callback returned %v after the caller left, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the source still waits a minute after the caller left: the call's context was not cancelled")
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if status.Code(err) != codes.Canceled {
				t.Fatalf("stream ended with %v, want Canceled", err)
			}
			return
		}
	}
}
