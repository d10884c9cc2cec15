package volcap

import (
	"fmt"
	"math/bits"
	"sort"
	"strconv"
	"strings"
)

// Formatting parameters of a StorageClass. Each is checked and turned into
// one fixed mkfs flag; no other argument reaches mkfs.
const (
	ParamBlockSize       = "blockSize"       // ext4 -b, xfs -b size=
	ParamInodeSize       = "inodeSize"       // ext4 -I, xfs -i size=
	ParamBytesPerInode   = "bytesPerInode"   // ext4 -i
	ParamNumberOfInodes  = "numberOfInodes"  // ext4 -N
	ParamExt4BigAlloc    = "ext4BigAlloc"    // ext4 -O bigalloc
	ParamExt4ClusterSize = "ext4ClusterSize" // ext4 -C

	// ParamLegacyMkfsOptions held raw mkfs arguments in older releases. It is
	// refused in StorageClasses; in the volume context of a volume made then
	// it is ignored once the volume is formatted.
	ParamLegacyMkfsOptions = "mkfsOptions"
)

// Smallest filesystems mkfs accepts, measured with the flags csi-thin
// passes (ext4: -F -m0; xfs: -f). mkfs.xfs refuses filesystems under
// 300 MiB whatever its options. mkfs.ext4 accepts 128 KiB with its own
// choices and 256 KiB with 4 KiB blocks; bigalloc needs six clusters and at
// least 384 KiB, an inode ratio sixteen inodes, a number of inodes their
// table twice over on top of 1 MiB.
const (
	minXFSBytes  = 300 << 20
	minExt4Bytes = 256 << 10
)

// Format is how a mount volume's filesystem is made: a filesystem and the
// formatting parameters that apply to it (0 or false: mkfs's default).
type Format struct {
	FsType         string
	BlockSize      uint64
	InodeSize      uint64
	BytesPerInode  uint64
	NumberOfInodes uint64
	BigAlloc       bool
	ClusterSize    uint64
}

// formatParam is one formatting parameter: which filesystems take it and
// how its value is checked and kept.
type formatParam struct {
	fs    map[string]bool
	parse func(f *Format, v string) error
}

var (
	ext4Only = map[string]bool{"ext4": true}
	bothFS   = map[string]bool{"ext4": true, "xfs": true}
)

var formatParams = map[string]formatParam{
	ParamBlockSize: {bothFS, func(f *Format, v string) (err error) {
		// xfs cannot mount blocks larger than the 4 KiB page.
		f.BlockSize, err = powerOfTwo(v, 1024, 4096)
		return err
	}},
	ParamInodeSize: {bothFS, func(f *Format, v string) (err error) {
		// mke2fs picks 1 KiB blocks for small filesystems, and an ext4
		// inode may not be larger than a block.
		if f.FsType == "xfs" {
			f.InodeSize, err = powerOfTwo(v, 512, 2048)
		} else {
			f.InodeSize, err = powerOfTwo(v, 128, 1024)
		}
		return err
	}},
	ParamBytesPerInode: {ext4Only, func(f *Format, v string) (err error) {
		f.BytesPerInode, err = number(v, 1024, 64<<20)
		return err
	}},
	ParamNumberOfInodes: {ext4Only, func(f *Format, v string) (err error) {
		f.NumberOfInodes, err = number(v, 16, 1<<32-1)
		return err
	}},
	ParamExt4BigAlloc: {ext4Only, func(f *Format, v string) (err error) {
		f.BigAlloc, err = strconv.ParseBool(v)
		if err != nil || (v != "true" && v != "false") {
			return fmt.Errorf("use true or false")
		}
		return nil
	}},
	ParamExt4ClusterSize: {ext4Only, func(f *Format, v string) (err error) {
		f.ClusterSize, err = powerOfTwo(v, 2048, 64<<10)
		return err
	}},
}

// isFormatParam reports whether k names a formatting parameter.
func isFormatParam(k string) bool {
	_, ok := formatParams[k]
	return ok
}

// formatParamNames are the formatting parameters, sorted.
func formatParamNames() []string {
	var names []string
	for k := range formatParams {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// ParseFormat checks the formatting parameters of a volume context for a
// filesystem. Other keys are left to the caller.
func ParseFormat(fsType string, ctx map[string]string) (Format, error) {
	if !filesystems[fsType] {
		return Format{}, fmt.Errorf("filesystem %q is not supported: use ext4 or xfs", fsType)
	}
	f := Format{FsType: fsType}
	for _, k := range formatParamNames() {
		v, ok := ctx[k]
		if !ok {
			continue
		}
		p := formatParams[k]
		if !p.fs[fsType] {
			return Format{}, fmt.Errorf("parameter %s applies to ext4 only, and the filesystem is %s: remove it or use ext4", k, fsType)
		}
		if err := p.parse(&f, v); err != nil {
			return Format{}, fmt.Errorf("parameter %s=%q: %v", k, v, err)
		}
	}
	return f, f.check()
}

// check refuses combinations mkfs would refuse, or would make fail on a
// volume of the size the controller picks.
func (f Format) check() error {
	switch f.FsType {
	case "xfs":
		if f.BlockSize != 0 && f.InodeSize != 0 && f.InodeSize > f.BlockSize/2 {
			return fmt.Errorf("parameter %s=%d: xfs inodes may be at most half a block, and %s is %d", ParamInodeSize, f.InodeSize, ParamBlockSize, f.BlockSize)
		}
	case "ext4":
		if f.BytesPerInode != 0 && f.BytesPerInode < f.BlockSize {
			return fmt.Errorf("parameter %s=%d is below %s=%d: give at least one block per inode", ParamBytesPerInode, f.BytesPerInode, ParamBlockSize, f.BlockSize)
		}
		if f.BytesPerInode != 0 && f.NumberOfInodes != 0 {
			return fmt.Errorf("parameters %s and %s both set how many inodes there are: give one", ParamBytesPerInode, ParamNumberOfInodes)
		}
		if f.ClusterSize != 0 {
			if !f.BigAlloc {
				return fmt.Errorf("parameter %s needs %s=true", ParamExt4ClusterSize, ParamExt4BigAlloc)
			}
			if f.BlockSize == 0 {
				return fmt.Errorf("parameter %s needs %s: a cluster is 2 to 16 blocks", ParamExt4ClusterSize, ParamBlockSize)
			}
			if f.ClusterSize < 2*f.BlockSize || f.ClusterSize > 16*f.BlockSize {
				return fmt.Errorf("parameter %s=%d: a cluster is 2 to 16 blocks of %s=%d", ParamExt4ClusterSize, f.ClusterSize, ParamBlockSize, f.BlockSize)
			}
		}
		if f.BigAlloc && f.NumberOfInodes != 0 {
			return fmt.Errorf("parameter %s cannot be used with %s, which sizes inode tables by cluster: give %s instead", ParamNumberOfInodes, ParamExt4BigAlloc, ParamBytesPerInode)
		}
	}
	return nil
}

// MkfsArgs are the mkfs arguments of the format, before the ones the
// mounter adds (ext4: -F -m0, xfs: -f) and the device.
func (f Format) MkfsArgs() []string {
	var args []string
	n := func(v uint64) string { return strconv.FormatUint(v, 10) }
	if f.FsType == "xfs" {
		if f.BlockSize != 0 {
			args = append(args, "-b", "size="+n(f.BlockSize))
		}
		if f.InodeSize != 0 {
			args = append(args, "-i", "size="+n(f.InodeSize))
		}
		return args
	}
	if f.BlockSize != 0 {
		args = append(args, "-b", n(f.BlockSize))
	}
	if f.InodeSize != 0 {
		args = append(args, "-I", n(f.InodeSize))
	}
	if f.BytesPerInode != 0 {
		args = append(args, "-i", n(f.BytesPerInode))
	}
	if f.NumberOfInodes != 0 {
		args = append(args, "-N", n(f.NumberOfInodes))
	}
	if f.BigAlloc {
		args = append(args, "-O", "bigalloc")
	}
	if f.ClusterSize != 0 {
		args = append(args, "-C", n(f.ClusterSize))
	}
	return args
}

// MinBytes is the smallest device mkfs makes this filesystem on.
func (f Format) MinBytes() uint64 {
	if f.FsType == "xfs" {
		return minXFSBytes
	}
	m := uint64(minExt4Bytes)
	if f.BigAlloc {
		cluster := f.ClusterSize
		if cluster == 0 {
			cluster = 64 << 10 // 16 blocks of 4 KiB, mke2fs's default
		}
		m = max(m, 384<<10, 6*cluster)
	}
	if f.BytesPerInode != 0 {
		m = max(m, 16*f.BytesPerInode)
	}
	if f.NumberOfInodes != 0 {
		m = max(m, 1<<20+2*f.NumberOfInodes*max(f.InodeSize, 256))
	}
	return m
}

// number parses a decimal integer in [lo, hi].
func number(v string, lo, hi uint64) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || strings.TrimLeft(v, "0123456789") != "" {
		return 0, fmt.Errorf("not a whole number: give a decimal number from %d to %d", lo, hi)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("give a number from %d to %d", lo, hi)
	}
	return n, nil
}

// powerOfTwo parses a power of two in [lo, hi].
func powerOfTwo(v string, lo, hi uint64) (uint64, error) {
	n, err := number(v, lo, hi)
	if err != nil {
		return 0, fmt.Errorf("give a power of two from %d to %d", lo, hi)
	}
	if bits.OnesCount64(n) != 1 {
		return 0, fmt.Errorf("not a power of two: give one from %d to %d", lo, hi)
	}
	return n, nil
}

// FormatParamList lists the formatting parameters, for messages.
func FormatParamList() string { return strings.Join(formatParamNames(), ", ") }
