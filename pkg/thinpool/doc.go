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
// and the pool's thin ids always agree.
//
// The journal's intent names every record one transaction completes, and
// each of them carries the change (creating, deleting) and the
// transaction id; recovery settles or rolls back all of them together. A
// group snapshot is one intent of its members and the group's record,
// created by one create_snap each and committed by one transaction id
// step: the whole group or none. The same intent batches unrelated
// changes: concurrent creates can share one intent, one durable commit
// and one transaction id step by building one change of their records
// (each apply then undoes its own thin devices if a later one fails, or
// the batch drops the failed record from the intent before the step).
// Recovery of a mixed intent rolls its creates back and finishes its
// deletes. A database of format 1, which held one record's id, is
// upgraded in place when opened (store.go).
//
// Group snapshots (groupsnapshot.go, window.go): the engine freezes every
// member's mounted filesystem (FIFREEZE on a mount point the kernel's
// mountinfo names), then suspends every active member, takes the
// snapshots, resumes all and thaws all, within Config.GroupSnapshotTimeout.
// The engine holds that policy (which members, in which order, until
// when) because it alone knows the members' devices and holds their
// locks; pkg/devmapper holds the ioctls, which keep their errno. A crash
// inside the window leaves devices suspended and filesystems frozen: start
// resumes and thaws them.
//
// The package does not import CSI,
// though its messages name what a user sets: a StorageClass, a capacity
// range's required_bytes and limit_bytes.
//
// Names: creating a name that is taken returns the record of that name
// when it answers the request, and fails with ErrExists, saying what
// differs, when it does not. For a volume the one rule is
// (*Volume).Answers: the same source, equal parameters and a size within
// the range asked (a volume grown since still answers under the limit).
// The name is looked up before the source, so a retry is answered once its
// source is gone. A new volume's size is VolumeSize's.
//
// Locks: calls on the same id, or creating the same name, wait for each
// other on the engine's own per-key locks (locks.go), so that the engine
// is safe for any caller, not only one that orders its calls itself;
// calls on different ones run in parallel. Journaled changes, Expand's
// record and grows also hold the pool-wide lock, across the intent's
// durable commit and the pool's messages. Reads (Get, List, Capacity,
// Usage, Health, Condition) wait for no lock.
//
// Contexts: every method that can wait for a lock takes the request's
// context. A caller whose context ends while it waits, or has ended
// before, gets the context's error (errors.Is finds context.Canceled or
// context.DeadlineExceeded), holds no lock, and the records and the pool
// are as they were. The context bounds only the waits: once a change has
// written its intent, it runs to its end or its rollback as the journal
// has it, whatever becomes of the context.
package thinpool
