package thinmeta

import "io"

// What the tests ask of a Reader that callers do not.

// BlocksRead is how many blocks the reader has read from its device.
func (r *Reader) BlocksRead() uint64 { return r.reads.Load() }

// ReadCalls is how many reads the reader has issued to its device.
func (r *Reader) ReadCalls() uint64 { return r.calls.Load() }

// DirectIO reports whether the reader reads with O_DIRECT.
func (r *Reader) DirectIO() bool { return r.direct }

// NewReaderAt reads metadata from ra, as Open does from a device.
func NewReaderAt(name string, ra io.ReaderAt) *Reader { return newReader(name, ra) }

// BufferedFallback is bufferedFallback.
var BufferedFallback = bufferedFallback
