// Package volcap says what csi-thin volumes can be: the driver's name and
// topology key, the access modes and types, the filesystems, and the
// StorageClass parameters it accepts. The controller checks requests
// against it when a volume is created, the node when it is staged.
package volcap

import (
	"fmt"
	"sort"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

const (
	// DriverName is the CSI driver's name.
	DriverName = "csi-thin.io"
	// TopologyKey labels each node's segment: a volume lives on one node.
	TopologyKey = "topology.csi-thin.io/node"

	// StorageClass parameters.
	ParamFsType      = "fsType"      // ext4 (default) or xfs
	ParamMkfsOptions = "mkfsOptions" // extra mkfs arguments, space-separated

	DefaultFsType = "ext4"
)

// Parameters the external-provisioner adds with --extra-create-metadata;
// accepted and not kept.
const sidecarPrefix = "csi.storage.k8s.io/"

var filesystems = map[string]bool{"ext4": true, "xfs": true}

var accessModes = map[csi.VolumeCapability_AccessMode_Mode]bool{
	csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER:        true,
	csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY:   true,
	csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER: true,
	csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:  true,
}

// Check returns nil when csi-thin can provide the capability, or an error
// that says what it can provide instead.
func Check(c *csi.VolumeCapability) error {
	if c == nil {
		return fmt.Errorf("a volume capability is empty")
	}
	mode := c.GetAccessMode().GetMode()
	if !accessModes[mode] {
		return fmt.Errorf("access mode %s is not supported: csi-thin volumes are node-local, use SINGLE_NODE_WRITER, "+
			"SINGLE_NODE_SINGLE_WRITER, SINGLE_NODE_MULTI_WRITER or SINGLE_NODE_READER_ONLY (ReadWriteOnce, ReadWriteOncePod)", mode)
	}
	switch t := c.GetAccessType().(type) {
	case *csi.VolumeCapability_Block:
	case *csi.VolumeCapability_Mount:
		if fs := t.Mount.GetFsType(); fs != "" && !filesystems[fs] {
			return fmt.Errorf("filesystem %q is not supported: use ext4 or xfs", fs)
		}
	default:
		return fmt.Errorf("a volume capability needs an access type, mount or block")
	}
	return nil
}

// CheckAll checks every capability of a request; there must be one.
func CheckAll(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return fmt.Errorf("volume capabilities are missing")
	}
	for _, c := range caps {
		if err := Check(c); err != nil {
			return err
		}
	}
	return nil
}

// ReadOnly reports whether the access mode only reads.
func ReadOnly(c *csi.VolumeCapability) bool {
	return c.GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY
}

// Parameters checks StorageClass parameters and returns those the node
// needs, to be handed back as the volume context. Unknown parameters are
// refused so that a typo does not silently give a default.
func Parameters(params map[string]string) (map[string]string, error) {
	ctx := map[string]string{}
	var unknown []string
	for k, v := range params {
		switch {
		case k == ParamFsType:
			if !filesystems[v] {
				return nil, fmt.Errorf("parameter %s=%q: use ext4 or xfs", k, v)
			}
			ctx[k] = v
		case k == ParamMkfsOptions:
			if strings.ContainsAny(v, "\n\x00") {
				return nil, fmt.Errorf("parameter %s holds a newline or NUL", k)
			}
			ctx[k] = v
		case strings.HasPrefix(k, sidecarPrefix):
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("unknown parameters %s: csi-thin accepts %s and %s", strings.Join(unknown, ", "), ParamFsType, ParamMkfsOptions)
	}
	return ctx, nil
}

// FsType is the filesystem to stage a mount volume with: the capability's,
// else the StorageClass's, else ext4.
func FsType(c *csi.VolumeCapability, volumeContext map[string]string) string {
	if fs := c.GetMount().GetFsType(); fs != "" {
		return fs
	}
	if fs := volumeContext[ParamFsType]; fs != "" {
		return fs
	}
	return DefaultFsType
}

// MkfsOptions are the extra mkfs arguments from the volume context.
func MkfsOptions(volumeContext map[string]string) []string {
	return strings.Fields(volumeContext[ParamMkfsOptions])
}

// Topology is the segment of the node.
func Topology(nodeID string) *csi.Topology {
	return &csi.Topology{Segments: map[string]string{TopologyKey: nodeID}}
}
