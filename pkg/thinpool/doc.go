// Package thinpool is csi-thin's volume engine: it owns a node's thin pool
// and knows which thin device is which volume or snapshot.
//
// A pool lives on sparse loopback files in the state directory or on block
// devices the administrator names. Volume and snapshot records live in a
// bbolt database beside it. Every change to the pool follows one journal:
// the intent is committed to the database, the pool is changed, and the
// pool's transaction id is advanced with a compare-and-swap. The
// transaction id is the commit point: at start, an intent the pool never
// reached is rolled back and one it reached is completed, so the records
// and the pool's thin ids always agree. The package knows nothing of CSI.
//
// Calls on the same id, or creating the same name, wait for each other on
// the engine's own per-key locks (locks.go) and calls on different ones
// run in parallel, so that the engine is safe for any caller, not only for
// one that orders its calls itself.
package thinpool
