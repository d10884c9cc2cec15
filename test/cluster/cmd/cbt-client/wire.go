package main

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// The messages of the Kubernetes SnapshotMetadata API
// (external-snapshot-metadata's proto/schema.proto, package
// snapshotmetadata), encoded by hand: its Go package is not a module this
// harness can fetch.

// raw is an encoded message.
type raw []byte

// rawCodec sends and receives raw messages as they are.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	r, ok := v.(raw)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot send %T", v)
	}
	return r, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	r, ok := v.(*raw)
	if !ok {
		return fmt.Errorf("rawCodec: cannot receive into %T", v)
	}
	*r = append((*r)[:0], data...)
	return nil
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, field, protowire.BytesType), s)
}

func appendInt(b []byte, field protowire.Number, v int64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, field, protowire.VarintType), uint64(v))
}

// GetMetadataAllocatedRequest: security_token 1, namespace 2,
// snapshot_name 3, starting_offset 4, max_results 5.
func allocatedRequest(token, ns, snapshot string, offset int64, maxResults int32) raw {
	var b []byte
	b = appendString(b, 1, token)
	b = appendString(b, 2, ns)
	b = appendString(b, 3, snapshot)
	b = appendInt(b, 4, offset)
	return appendInt(b, 5, int64(maxResults))
}

// GetMetadataDeltaRequest: security_token 1, namespace 2,
// base_snapshot_id 3, target_snapshot_name 4, starting_offset 5,
// max_results 6.
func deltaRequest(token, ns, baseID, target string, offset int64, maxResults int32) raw {
	var b []byte
	b = appendString(b, 1, token)
	b = appendString(b, 2, ns)
	b = appendString(b, 3, baseID)
	b = appendString(b, 4, target)
	b = appendInt(b, 5, offset)
	return appendInt(b, 6, int64(maxResults))
}

// record is one response message, as snapshot-metadata-lister prints it.
type record struct {
	Type          int64   `json:"block_metadata_type"`
	CapacityBytes int64   `json:"volume_capacity_bytes"`
	Blocks        []block `json:"block_metadata"`
}

type block struct {
	Offset int64 `json:"byte_offset"`
	Size   int64 `json:"size_bytes"`
}

// decodeResponse decodes GetMetadataAllocatedResponse or
// GetMetadataDeltaResponse (the same fields): block_metadata_type 1,
// volume_capacity_bytes 2, block_metadata 3 (byte_offset 1, size_bytes 2).
func decodeResponse(b []byte) (record, error) {
	var r record
	err := fields(b, func(n protowire.Number, v uint64, sub []byte) error {
		switch n {
		case 1:
			r.Type = int64(v)
		case 2:
			r.CapacityBytes = int64(v)
		case 3:
			var bl block
			if err := fields(sub, func(n protowire.Number, v uint64, _ []byte) error {
				switch n {
				case 1:
					bl.Offset = int64(v)
				case 2:
					bl.Size = int64(v)
				}
				return nil
			}); err != nil {
				return err
			}
			r.Blocks = append(r.Blocks, bl)
		}
		return nil
	})
	return r, err
}

// fields calls f for each field of message b: a varint's value, or a
// length-delimited field's bytes. Other wire types are skipped.
func fields(b []byte, f func(n protowire.Number, v uint64, sub []byte) error) error {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		var v uint64
		var sub []byte
		switch typ {
		case protowire.VarintType:
			v, l = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			sub, l = protowire.ConsumeBytes(b)
		default:
			l = protowire.ConsumeFieldValue(n, typ, b)
		}
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if err := f(n, v, sub); err != nil {
			return err
		}
	}
	return nil
}
