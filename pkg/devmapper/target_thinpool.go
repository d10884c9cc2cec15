package devmapper

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Data block size limits of the thin-pool target, in 512-byte sectors: from
// 64 KiB to 1 GiB, in steps of 64 KiB (drivers/md/dm-thin.c).
const (
	MinDataBlockSize = 128     // 64 KiB
	MaxDataBlockSize = 2097152 // 1 GiB
)

// maxPoolFeatures is how many feature arguments the kernel's thin-pool
// constructor accepts at once (parse_pool_features reads a group of 0 to 4).
const maxPoolFeatures = 4

// Thin-pool feature argument names, in the order the kernel emits them.
const (
	featSkipBlockZeroing  = "skip_block_zeroing"
	featIgnoreDiscard     = "ignore_discard"
	featNoDiscardPassdown = "no_discard_passdown"
	featReadOnly          = "read_only"
	featErrorIfNoSpace    = "error_if_no_space"
)

// PoolFeatures are the optional feature arguments of a thin-pool table. The
// zero value is the kernel's default: zero new blocks, pass discards down,
// read-write, queue I/O when out of data space.
type PoolFeatures struct {
	SkipBlockZeroing  bool // skip_block_zeroing: do not zero newly provisioned blocks
	IgnoreDiscard     bool // ignore_discard: disable discard support
	NoDiscardPassdown bool // no_discard_passdown: process discards but do not pass them to the data device
	ReadOnly          bool // read_only: refuse all metadata changes
	ErrorIfNoSpace    bool // error_if_no_space: fail I/O instead of queueing it when out of data space
}

// names returns the set features in the kernel's order.
func (f PoolFeatures) names() []string {
	var out []string
	if f.SkipBlockZeroing {
		out = append(out, featSkipBlockZeroing)
	}
	if f.IgnoreDiscard {
		out = append(out, featIgnoreDiscard)
	}
	if f.NoDiscardPassdown {
		out = append(out, featNoDiscardPassdown)
	}
	if f.ReadOnly {
		out = append(out, featReadOnly)
	}
	if f.ErrorIfNoSpace {
		out = append(out, featErrorIfNoSpace)
	}
	return out
}

// set turns on the feature called name; it reports false for a name the
// kernel does not know.
func (f *PoolFeatures) set(name string) bool {
	switch name {
	case featSkipBlockZeroing:
		f.SkipBlockZeroing = true
	case featIgnoreDiscard:
		f.IgnoreDiscard = true
	case featNoDiscardPassdown:
		f.NoDiscardPassdown = true
	case featReadOnly:
		f.ReadOnly = true
	case featErrorIfNoSpace:
		f.ErrorIfNoSpace = true
	default:
		return false
	}
	return true
}

// PoolTable is the table of a thin-pool target: its devices, data block
// size and low water mark, as in
// Documentation/admin-guide/device-mapper/thin-provisioning.rst.
type PoolTable struct {
	MetadataDev   string       // metadata device, "major:minor" or a path
	DataDev       string       // data device, "major:minor" or a path
	DataBlockSize uint32       // sectors, MinDataBlockSize to MaxDataBlockSize, a multiple of MinDataBlockSize
	LowWaterMark  uint64       // free data blocks below which the kernel raises an event
	Features      PoolFeatures // optional feature arguments
}

// Validate checks the table against the kernel's rules before it is loaded.
func (p PoolTable) Validate() error {
	if err := checkTargetDev("thin-pool metadata device", p.MetadataDev); err != nil {
		return err
	}
	if err := checkTargetDev("thin-pool data device", p.DataDev); err != nil {
		return err
	}
	if p.MetadataDev == p.DataDev {
		return invalidf("thin-pool metadata and data device are both %q: use two different devices", p.DataDev)
	}
	if p.DataBlockSize < MinDataBlockSize || p.DataBlockSize > MaxDataBlockSize || p.DataBlockSize%MinDataBlockSize != 0 {
		return invalidf("thin-pool data block size %d sectors is not allowed: use a multiple of %d from %d (64 KiB) to %d (1 GiB) sectors",
			p.DataBlockSize, MinDataBlockSize, MinDataBlockSize, MaxDataBlockSize)
	}
	if n := len(p.Features.names()); n > maxPoolFeatures {
		return invalidf("thin-pool table has %d feature arguments but the kernel accepts at most %d: drop ignore_discard or no_discard_passdown (ignore_discard implies no passdown)",
			n, maxPoolFeatures)
	}
	return nil
}

// Params renders the table parameters as the kernel documents them:
// <metadata dev> <data dev> <data block size> <low water mark>
// <number of feature args> [<arg>]*. The feature count is always present,
// and features come in the kernel's own order. Params does not validate;
// call Validate first.
func (p PoolTable) Params() string {
	feats := p.Features.names()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %d %d %d", p.MetadataDev, p.DataDev, p.DataBlockSize, p.LowWaterMark, len(feats))
	for _, f := range feats {
		b.WriteByte(' ')
		b.WriteString(f)
	}
	return b.String()
}

// ParsePoolParams parses thin-pool table parameters, such as the kernel
// returns for a table status request, into a PoolTable. The feature count
// may be missing when there are no features; a count that does not match
// the features, an unknown or repeated feature, or a table that Validate
// refuses is an error.
func ParsePoolParams(s string) (PoolTable, error) {
	f := strings.Fields(s)
	if len(f) < 4 {
		return PoolTable{}, invalidf("thin-pool table %q has %d fields: want <metadata dev> <data dev> <data block size> <low water mark> [<feature count> <feature>...]", s, len(f))
	}
	p := PoolTable{MetadataDev: f[0], DataDev: f[1]}
	bs, err := strconv.ParseUint(f[2], 10, 32)
	if err != nil {
		return PoolTable{}, invalidf("thin-pool table %q: data block size %q is not a number of sectors", s, f[2])
	}
	p.DataBlockSize = uint32(bs)
	if p.LowWaterMark, err = strconv.ParseUint(f[3], 10, 64); err != nil {
		return PoolTable{}, invalidf("thin-pool table %q: low water mark %q is not a number of blocks", s, f[3])
	}
	if len(f) > 4 {
		n, err := strconv.ParseUint(f[4], 10, 64)
		if err != nil {
			return PoolTable{}, invalidf("thin-pool table %q: feature count %q is not a number", s, f[4])
		}
		feats := f[5:]
		if n != uint64(len(feats)) {
			return PoolTable{}, invalidf("thin-pool table %q: feature count is %d but %d features follow", s, n, len(feats))
		}
		seen := make(map[string]bool, len(feats))
		for _, name := range feats {
			if seen[name] {
				return PoolTable{}, invalidf("thin-pool table %q: feature %q is repeated", s, name)
			}
			seen[name] = true
			if !p.Features.set(name) {
				return PoolTable{}, invalidf("thin-pool table %q: unknown feature %q: want %s, %s, %s, %s or %s", s, name,
					featSkipBlockZeroing, featIgnoreDiscard, featNoDiscardPassdown, featReadOnly, featErrorIfNoSpace)
			}
		}
	}
	if err := p.Validate(); err != nil {
		return PoolTable{}, fmt.Errorf("thin-pool table %q: %w", s, err)
	}
	return p, nil
}

// PoolMode is the mode a thin-pool reports in its status.
type PoolMode string

// Pool modes as the kernel prints them.
const (
	PoolModeReadWrite      PoolMode = "rw"                // normal operation
	PoolModeReadOnly       PoolMode = "ro"                // metadata may not change (read_only, metadata errors, out of metadata space)
	PoolModeOutOfDataSpace PoolMode = "out_of_data_space" // no free data blocks: writes to unprovisioned blocks queue or fail
)

// PoolStatus is the parsed status line of a thin-pool target (pool_status
// in drivers/md/dm-thin.c). When Fail or Error is set no other field is.
type PoolStatus struct {
	Fail  bool // the pool is in fail mode: all I/O fails
	Error bool // the kernel could not read the pool's metadata

	TransactionID uint64 // userspace transaction id stored in the metadata
	MetadataUsed  uint64 // used metadata blocks (4 KiB each)
	MetadataTotal uint64 // metadata blocks (4 KiB each)
	DataUsed      uint64 // used data blocks
	DataTotal     uint64 // data blocks

	HeldMetadataRoot    uint64 // block of the held metadata snapshot root
	HasHeldMetadataRoot bool   // a metadata snapshot is held

	Mode            PoolMode // rw, ro or out_of_data_space
	DiscardPassdown bool     // discard_passdown: discards go down to the data device
	IgnoreDiscard   bool     // ignore_discard: discards are disabled altogether
	ErrorIfNoSpace  bool     // error_if_no_space; false means queue_if_no_space
	NeedsCheck      bool     // needs_check: run thin_check before using the pool again

	// MetadataLowWatermark is the free metadata block count below which
	// the kernel raises an event; 0 when the kernel is too old to print it
	// (before 4.19).
	MetadataLowWatermark uint64
}

// ParsePoolStatus parses a thin-pool status line:
// <transaction id> <used metadata blocks>/<total metadata blocks>
// <used data blocks>/<total data blocks> <held metadata root>
// ro|rw|out_of_data_space ignore_discard|[no_]discard_passdown
// error|queue_if_no_space needs_check|- [<metadata low watermark>],
// or the single word Fail or Error.
func ParsePoolStatus(s string) (PoolStatus, error) {
	f := strings.Fields(s)
	if len(f) == 1 {
		switch f[0] {
		case "Fail":
			return PoolStatus{Fail: true}, nil
		case "Error":
			return PoolStatus{Error: true}, nil
		}
	}
	if len(f) != 8 && len(f) != 9 {
		return PoolStatus{}, invalidf("thin-pool status %q has %d fields: want 8, or 9 with the metadata low watermark, or the single word Fail or Error", s, len(f))
	}
	var st PoolStatus
	var err error
	if st.TransactionID, err = strconv.ParseUint(f[0], 10, 64); err != nil {
		return PoolStatus{}, invalidf("thin-pool status %q: transaction id %q is not a number", s, f[0])
	}
	if st.MetadataUsed, st.MetadataTotal, err = parseUsedTotal(f[1]); err != nil {
		return PoolStatus{}, invalidf("thin-pool status %q: metadata usage: %v", s, err)
	}
	if st.DataUsed, st.DataTotal, err = parseUsedTotal(f[2]); err != nil {
		return PoolStatus{}, invalidf("thin-pool status %q: data usage: %v", s, err)
	}
	if f[3] != "-" {
		root, err := strconv.ParseUint(f[3], 10, 64)
		if err != nil || root == 0 {
			return PoolStatus{}, invalidf("thin-pool status %q: held metadata root %q is neither - nor a non-zero block number", s, f[3])
		}
		st.HeldMetadataRoot, st.HasHeldMetadataRoot = root, true
	}
	switch m := PoolMode(f[4]); m {
	case PoolModeReadWrite, PoolModeReadOnly, PoolModeOutOfDataSpace:
		st.Mode = m
	default:
		return PoolStatus{}, invalidf("thin-pool status %q: unknown pool mode %q: want rw, ro or out_of_data_space", s, f[4])
	}
	switch f[5] {
	case "discard_passdown":
		st.DiscardPassdown = true
	case "no_discard_passdown":
	case "ignore_discard":
		st.IgnoreDiscard = true
	default:
		return PoolStatus{}, invalidf("thin-pool status %q: unknown discard mode %q: want discard_passdown, no_discard_passdown or ignore_discard", s, f[5])
	}
	switch f[6] {
	case "error_if_no_space":
		st.ErrorIfNoSpace = true
	case "queue_if_no_space":
	default:
		return PoolStatus{}, invalidf("thin-pool status %q: unknown no-space mode %q: want error_if_no_space or queue_if_no_space", s, f[6])
	}
	switch f[7] {
	case "needs_check":
		st.NeedsCheck = true
	case "-":
	default:
		return PoolStatus{}, invalidf("thin-pool status %q: unknown check flag %q: want needs_check or -", s, f[7])
	}
	if len(f) == 9 {
		if st.MetadataLowWatermark, err = strconv.ParseUint(f[8], 10, 64); err != nil {
			return PoolStatus{}, invalidf("thin-pool status %q: metadata low watermark %q is not a number of blocks", s, f[8])
		}
	}
	return st, nil
}

// parseUsedTotal parses "<used>/<total>" with used <= total.
func parseUsedTotal(s string) (used, total uint64, err error) {
	u, t, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not <used>/<total>", s)
	}
	if used, err = strconv.ParseUint(u, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("used %q in %q is not a number of blocks", u, s)
	}
	if total, err = strconv.ParseUint(t, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("total %q in %q is not a number of blocks", t, s)
	}
	if used > total {
		return 0, 0, fmt.Errorf("used %d exceeds total %d", used, total)
	}
	return used, total, nil
}

// Usable returns nil when the pool's metadata may change, or an error
// naming why not: fail mode, unreadable metadata, metadata that needs
// checking, read-only mode. A pool out of data space is usable: the
// kernel takes its messages, and a delete frees blocks.
func (s PoolStatus) Usable() error {
	switch {
	case s.Fail:
		return fmt.Errorf("thin-pool is in fail mode: all I/O fails; repair the metadata with thin_repair and reload the pool")
	case s.Error:
		return fmt.Errorf("thin-pool status is Error: the kernel could not read the pool metadata; check the metadata device and the kernel log")
	case s.NeedsCheck:
		return fmt.Errorf("thin-pool metadata needs_check: deactivate the pool and run thin_check (and thin_repair if it fails)")
	case s.Mode == PoolModeReadOnly:
		return fmt.Errorf("thin-pool is read-only: it was loaded read_only, ran out of metadata space or hit a metadata error; see the kernel log")
	case s.Mode != PoolModeReadWrite && s.Mode != PoolModeOutOfDataSpace:
		return fmt.Errorf("thin-pool mode %q is unknown: want rw", s.Mode)
	}
	return nil
}

// checkTargetDev checks a device argument of a target table: non-empty,
// and free of whitespace, NUL and backslash, which the kernel's argument
// splitter would treat as separators, terminators or escapes.
func checkTargetDev(what, dev string) error {
	if dev == "" {
		return invalidf("%s is empty: give a major:minor pair or a device path", what)
	}
	if strings.ContainsFunc(dev, func(r rune) bool { return unicode.IsSpace(r) || r == 0 || r == '\\' }) {
		return invalidf("%s %q contains whitespace, NUL or a backslash: give a major:minor pair or a plain device path", what, dev)
	}
	return nil
}
