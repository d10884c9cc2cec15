// Package thinmeta reads the on-disk metadata of a dm-thin pool (the
// kernel's persistent-data format: a superblock and copy-on-write btrees
// of 4 KiB blocks) straight from the metadata device, to say which blocks
// of a thin device are mapped and which differ between two thin devices.
//
// It reads a metadata snapshot, the superblock copy a pool holds after the
// reserve_metadata_snap message: the blocks that copy reaches stay as they
// are while it is held, whatever the pool does meanwhile. Reads bypass the
// page cache (O_DIRECT), because the kernel writes the metadata past it.
// Walks stream extents to a callback, in order, holding a path of nodes
// per tree and a small cache: memory follows the depth of the trees, never
// the size of a device. A delta does not read the subtrees two devices
// share, which is what a snapshot and its origin have in common until one
// is written.
//
// Every block is checked as the kernel checks it (checksum, block number,
// entry counts) and more (key order, key ranges, tree depth): corrupt or
// hostile metadata gives an error that names the block, never a panic or
// an endless walk. The package knows nothing of volumes or CSI.
package thinmeta
