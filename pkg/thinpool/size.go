package thinpool

// RoundUp is size rounded up to whole blocks of block bytes, which must
// not be 0: the size a volume asked to hold size bytes gets, as a thin
// device maps whole pool blocks. The engine rounds every size it is given
// so with its own block size (BlockSizeBytes); the CSI services round with
// it to check a request against its limit before they ask. size may be
// anything up to the largest whole number of blocks a uint64 holds.
func RoundUp(size, block uint64) uint64 {
	return (size + block - 1) / block * block
}
