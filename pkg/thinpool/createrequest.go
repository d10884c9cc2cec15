package thinpool

import (
	"fmt"
	"maps"
	"strings"
)

// CreateRequest asks for a volume.
type CreateRequest struct {
	Name string
	// RequiredBytes is the least the volume must hold, LimitBytes the most
	// it may (0: no limit). VolumeSize picks a new volume's size from
	// them; an existing volume of the name answers when its size lies
	// between them (Answers).
	RequiredBytes, LimitBytes uint64
	// SourceID is a snapshot to restore or a volume to clone; empty for a
	// blank volume. SourceKind, when set, is the kind it must be: an id
	// of the other kind is not found.
	SourceID   string
	SourceKind Kind
	Parameters map[string]string
	// FSMinBytes is the smallest device the volume's filesystem can be
	// made on, and FSType that filesystem, which the error names when the
	// limit is below it; 0 and "" for a block volume.
	FSMinBytes uint64
	FSType     string
}

// Answers is the one rule for a create whose name is taken: nil when v,
// the volume of req's name, answers req, else an ErrExists that says what
// differs and what to do. v answers when it has req's source (none for
// none), parameters equal to req's, and a size req accepts: at least
// RequiredBytes and, when LimitBytes is set, at most it. The size is held
// to the range as asked, not as VolumeSize raises it for a source or a
// filesystem: the volume made for a request lies in its range, and one
// grown since answers while it is within the limit. A range whose limit
// is below its required size, which nothing answers, is ErrOutOfRange, as
// for a new volume. It looks at nothing but v and req, so a retry is
// answered after its source is deleted, and any implementation of
// CreateVolume can follow it.
func (v *Volume) Answers(req CreateRequest) error {
	if err := checkRange(req.RequiredBytes, req.LimitBytes); err != nil {
		return err
	}
	var differs, fix []string
	if v.SourceID != req.SourceID {
		differs = append(differs, fmt.Sprintf("it is %s, not %s", origin(v.SourceID), origin(req.SourceID)))
		fix = append(fix, "the source it was created from")
	}
	if !maps.Equal(v.Parameters, req.Parameters) {
		differs = append(differs, fmt.Sprintf("its parameters are %v, not %v", v.Parameters, req.Parameters))
		fix = append(fix, "the StorageClass it was created with")
	}
	if v.SizeBytes < req.RequiredBytes || (req.LimitBytes > 0 && v.SizeBytes > req.LimitBytes) {
		differs = append(differs, fmt.Sprintf("its %d bytes are outside the %s asked for", v.SizeBytes, sizeRange(req)))
		fix = append(fix, fmt.Sprintf("a size range that holds its %d bytes", v.SizeBytes))
	}
	if len(differs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: volume %q exists as %s, and %s: use another name, or %s",
		ErrExists, req.Name, v.ID, strings.Join(differs, "; "), strings.Join(fix, " and "))
}

// origin says what a volume of source id is a copy of.
func origin(id string) string {
	if id == "" {
		return "a blank volume"
	}
	return "a copy of " + id
}

// sizeRange says which sizes req accepts.
func sizeRange(req CreateRequest) string {
	if req.LimitBytes == 0 {
		return fmt.Sprintf("size of at least %d bytes", req.RequiredBytes)
	}
	return fmt.Sprintf("size range [%d, %d] bytes", req.RequiredBytes, req.LimitBytes)
}
