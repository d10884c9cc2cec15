package main

import (
	"reflect"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The responses have the CSI SnapshotMetadata service's fields, so the CSI
// Go types encode what the sidecar sends.
func TestDecodeResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  *csi.GetMetadataDeltaResponse
		want record
	}{
		{"empty", &csi.GetMetadataDeltaResponse{}, record{}},
		{"ranges", &csi.GetMetadataDeltaResponse{
			BlockMetadataType:   csi.BlockMetadataType_VARIABLE_LENGTH,
			VolumeCapacityBytes: 64 << 20,
			BlockMetadata:       []*csi.BlockMetadata{{ByteOffset: 0, SizeBytes: 2 << 20}, {ByteOffset: 16 << 20, SizeBytes: 65536}},
		}, record{Type: 2, CapacityBytes: 64 << 20, Blocks: []block{{0, 2 << 20}, {16 << 20, 65536}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := proto.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeResponse(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("decoded %+v, want %+v", got, tc.want)
			}
		})
	}
	if _, err := decodeResponse([]byte{0x1a, 0x05, 0x08}); err == nil {
		t.Error("a truncated message decoded")
	}
}

func TestRequests(t *testing.T) {
	decode := func(b raw) map[protowire.Number]any {
		m := map[protowire.Number]any{}
		if err := fields(b, func(n protowire.Number, v uint64, sub []byte) error {
			if sub != nil {
				m[n] = string(sub)
			} else {
				m[n] = v
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	got := decode(allocatedRequest("tok", "ns", "snap", 1<<20, 1))
	want := map[protowire.Number]any{1: "tok", 2: "ns", 3: "snap", 4: uint64(1 << 20), 5: uint64(1)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetMetadataAllocatedRequest %v, want %v", got, want)
	}
	got = decode(deltaRequest("tok", "ns", "base-id", "target", 0, 0))
	want = map[protowire.Number]any{1: "tok", 2: "ns", 3: "base-id", 4: "target"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetMetadataDeltaRequest %v, want %v", got, want)
	}
}
