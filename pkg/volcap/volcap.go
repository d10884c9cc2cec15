// Package volcap says what csi-thin volumes can be: the driver's name and
// topology key, the access modes and types, the filesystems, and the
// StorageClass parameters it accepts. The controller checks requests
// against it when a volume is created, the node when it is staged. It also
// turns the engine's health into CSI health entries, with one set of
// reasons for both services.
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

	// ParamFsType is the StorageClass parameter naming the filesystem of
	// mount volumes: ext4 (the default) or xfs. The formatting parameters
	// are in format.go.
	ParamFsType = "fsType"

	DefaultFsType = "ext4"
)

// Parameters the external-provisioner adds with --extra-create-metadata;
// accepted and not kept.
const sidecarPrefix = "csi.storage.k8s.io/"

// Keys the external-provisioner writes into every PersistentVolume's
// volume attributes, which kubelet passes to the node as its volume
// context: storage.kubernetes.io/csiProvisionerIdentity, the provisioner
// that created it. Accepted at the node and not used.
const provisionerPrefix = "storage.kubernetes.io/"

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
// refused so that a typo does not silently give a default. The formatting
// parameters are checked against the StorageClass's filesystem here and
// against each capability's by CheckFormat.
func Parameters(params map[string]string) (map[string]string, error) {
	ctx := map[string]string{}
	var unknown []string
	for k, v := range params {
		switch {
		case k == ParamFsType || isFormatParam(k):
			ctx[k] = v
		case strings.HasPrefix(k, sidecarPrefix):
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("unknown parameters %s: csi-thin accepts %s", strings.Join(unknown, ", "), accepted())
	}
	if fs, ok := ctx[ParamFsType]; ok && !filesystems[fs] {
		return nil, fmt.Errorf("parameter %s=%q: use ext4 or xfs", ParamFsType, fs)
	}
	if _, err := ParseFormat(fsTypeOf(ctx), ctx); err != nil {
		return nil, err
	}
	return ctx, nil
}

// accepted lists the parameters csi-thin accepts, for messages.
func accepted() string {
	return strings.Join(append([]string{ParamFsType}, formatParamNames()...), ", ")
}

// fsTypeOf is the filesystem a volume context names, or the default.
func fsTypeOf(ctx map[string]string) string {
	if fs := ctx[ParamFsType]; fs != "" {
		return fs
	}
	return DefaultFsType
}

// CheckFormat checks the formatting parameters of a volume context
// against the filesystem of each mount capability, and returns the
// smallest volume every one of them can be formatted on (0 when every
// capability is block).
func CheckFormat(caps []*csi.VolumeCapability, ctx map[string]string) (minBytes uint64, fsType string, err error) {
	for _, c := range caps {
		if c.GetMount() == nil {
			continue
		}
		fs := FsType(c, ctx)
		f, err := ParseFormat(fs, ctx)
		if err != nil {
			return 0, "", err
		}
		if m := f.MinBytes(); m > minBytes {
			minBytes, fsType = m, fs
		}
	}
	return minBytes, fsType, nil
}

// StageFormat checks the volume context a node is asked to stage with. A
// static PersistentVolume can carry anything, so every key must be one
// csi-thin knows, with a value it accepts, for the filesystem it stages
// (the capability's, else the context's; a block volume's is the
// context's). legacy is the raw mkfs arguments an older release kept,
// which the caller may ignore only on a formatted device.
func StageFormat(c *csi.VolumeCapability, ctx map[string]string) (f Format, legacy string, err error) {
	var unknown []string
	for k := range ctx {
		switch {
		case k == ParamFsType || isFormatParam(k) || k == ParamLegacyMkfsOptions ||
			strings.HasPrefix(k, sidecarPrefix) || strings.HasPrefix(k, provisionerPrefix):
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return Format{}, "", fmt.Errorf("volume context has unknown keys %s: csi-thin accepts %s", strings.Join(unknown, ", "), accepted())
	}
	if fs, ok := ctx[ParamFsType]; ok && !filesystems[fs] {
		return Format{}, "", fmt.Errorf("volume context %s=%q: use ext4 or xfs", ParamFsType, fs)
	}
	fs := fsTypeOf(ctx)
	if c.GetMount() != nil {
		fs = FsType(c, ctx)
	}
	f, err = ParseFormat(fs, ctx)
	if err != nil {
		return Format{}, "", fmt.Errorf("volume context: %w", err)
	}
	return f, ctx[ParamLegacyMkfsOptions], nil
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

// Topology is the segment of the node.
func Topology(nodeID string) *csi.Topology {
	return &csi.Topology{Segments: map[string]string{TopologyKey: nodeID}}
}
