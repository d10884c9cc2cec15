package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/klog/v2"
)

// lvm is lvm2 driving a thin pool of its own on its own disk, the way
// LVM-based CSI drivers (TopoLVM, OpenEBS LVM LocalPV) run it: one
// process per call, a volume group lock around each, the metadata written
// to the physical volume and backed up to the node's root disk (here the
// ext4 state disk). udev is not running in the harness, so lvm2 is told
// not to wait for it and to make its device nodes itself.
type lvm struct {
	b        *bench
	vg, pool string
	env      []string
	size     string // -V of a new volume
}

const lvmConf = `# csi-thin benchmark: lvm2 without udev, on one disk.
devices {
	obtain_device_list_from_udev = 0
	external_device_info_source = "none"
	global_filter = [ "a|^%s$|", "r|.*|" ]
	use_devicesfile = 0
	hints = "none"
}
activation {
	udev_sync = 0
	udev_rules = 0
	monitoring = 0
}
global {
	use_lvmpolld = 0
	event_activation = 0
}
backup {
	backup = 1
	backup_dir = "%s"
	archive = 1
	archive_dir = "%s"
}
`

// setupLVM makes a volume group on the lvm2 disk and a thin pool in it
// with as much metadata as csi-thin's pools have, 64 KiB chunks as
// csi-thin's blocks, and zeroing of new blocks as csi-thin's pools do.
// Cleanup removes the volume group.
func (b *bench) setupLVM(backupRoot string) (*lvm, error) {
	disk := b.cfg.disks[diskLVM]
	size, err := diskSize(disk)
	if err != nil {
		return nil, err
	}
	dataMiB := (size - metaBytes - 128*mib) / mib
	if dataMiB < 1024 {
		return nil, fmt.Errorf("%s (%s) has %d MiB: it needs %d MiB, make it larger", disk, diskRoles[diskLVM], size/mib, (metaBytes+128*mib+gib)/mib)
	}
	sys := b.workPath("lvm")
	backup, archive := filepath.Join(backupRoot, "backup"), filepath.Join(backupRoot, "archive")
	for _, d := range []string{sys, backup, archive, "/run/lock/lvm", "/run/lvm"} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(sys, "lvm.conf"), fmt.Appendf(nil, lvmConf, disk, backup, archive), 0o644); err != nil {
		return nil, err
	}
	l := &lvm{
		b: b, vg: "csithinbench", pool: "pool",
		env:  append(os.Environ(), "LVM_SYSTEM_DIR="+sys, "LVM_SUPPRESS_FD_WARNINGS=1"),
		size: fmt.Sprintf("%dm", b.cfg.volSize/mib),
	}
	ctx := b.ctx
	if err := l.run(ctx, "pvcreate", "-q", "-y", disk); err != nil {
		return nil, err
	}
	if err := l.run(ctx, "vgcreate", "-q", l.vg, disk); err != nil {
		return nil, err
	}
	b.defer_("remove volume group "+l.vg, func() error { return l.run(context.Background(), "vgremove", "-q", "-ff", "-y", l.vg) })
	if err := l.run(ctx, "lvcreate", "-q", "-y", "--type", "thin-pool", "-L", fmt.Sprintf("%dm", dataMiB),
		"--poolmetadatasize", fmt.Sprintf("%dm", metaBytes/mib), "--poolmetadataspare", "n",
		"--chunksize", "64k", "--zero", "y", "-n", l.pool, l.vg); err != nil {
		return nil, err
	}
	klog.InfoS("lvm2 thin pool ready", "vg", l.vg, "pool", l.pool, "dataMiB", dataMiB, "disk", disk)
	return l, nil
}

// run runs one lvm2 command.
func (l *lvm) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = l.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (l *lvm) lv(name string) string { return l.vg + "/" + name }

// The volumes are created inactive (-an), as csi-thin's are: a CSI volume
// is activated when it is staged.

func (l *lvm) createVolume(ctx context.Context, name string) (string, error) {
	return name, l.run(ctx, "lvcreate", "-q", "-an", "-V", l.size, "-T", l.lv(l.pool), "-n", name)
}

func (l *lvm) createSnapshot(ctx context.Context, name, volumeID string) (string, error) {
	return name, l.run(ctx, "lvcreate", "-q", "-an", "-s", l.lv(volumeID), "-n", name)
}

// restore is a thin snapshot of the snapshot: a new writable thin volume
// that shares its blocks, which is what csi-thin's restore is too.
func (l *lvm) restore(ctx context.Context, name, snapshotID string) (string, error) {
	return name, l.run(ctx, "lvcreate", "-q", "-an", "-s", l.lv(snapshotID), "-n", name)
}

func (l *lvm) deleteVolume(ctx context.Context, id string) error {
	return l.run(ctx, "lvremove", "-q", "-y", l.lv(id))
}

func (l *lvm) deleteSnapshot(ctx context.Context, id string) error { return l.deleteVolume(ctx, id) }
