// Package devmapper is csi-thin's interface to the Linux device-mapper.
//
// It speaks the dm ioctl protocol on /dev/mapper/control directly (no cgo,
// no dmsetup or lvm binaries) and knows the two targets csi-thin uses:
// thin-pool, with its messages (create_thin, create_snap, delete,
// set_transaction_id, metadata snapshots), and thin. It also attaches loop
// devices, answers block-device questions (size, discard, device node,
// what holds it) and freezes the filesystems on a device (FIFREEZE) for a
// snapshot consistent across devices.
//
// It knows nothing of volumes or CSI: callers name dm devices and thin ids.
// Sizes are in 512-byte sectors unless a name says bytes. Every error from
// the kernel is an *Error that keeps the operation, the device and the errno;
// callers test it with errors.Is against ErrExists, ErrNotFound and ErrBusy,
// or against the errno itself. Devices are named by major:minor in tables
// and nothing waits on udev, so the package works where udev does not run.
package devmapper
