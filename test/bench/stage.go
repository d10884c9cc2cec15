package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"k8s.io/klog/v2"
)

// stageFS is a filesystem a volume is staged with, and the commands that
// format and mount a device with it as csi-thin does (k8s.io/mount-utils
// with csi-thin's flags), for the bare baseline.
type stageFS struct {
	name  string
	mkfs  []string // before the device
	mount []string // mount(8) options
	// grow is the command that grows the mounted filesystem (DEV, DIR are
	// replaced): NodeStageVolume runs it after every mount.
	grow []string
}

var stageFilesystems = []stageFS{
	{"ext4", []string{"mkfs.ext4", "-F", "-m0"}, []string{"-t", "ext4"}, []string{"resize2fs", "DEV"}},
	{"xfs", []string{"mkfs.xfs", "-f"}, []string{"-t", "xfs", "-o", "nouuid"}, []string{"xfs_growfs", "-d", "DIR"}},
}

// stageExtras are the commands NodeStageVolume runs besides mkfs and
// mount, as k8s.io/mount-utils runs them: blkid before formatting, and
// to grow the filesystem to its device blockdev --getro, blkid again and
// the filesystem's grow command.
func stageExtras(fs stageFS, dev, dir string) [][]string {
	blkid := []string{"blkid", "-p", "-s", "TYPE", "-s", "PTTYPE", "-o", "export", dev}
	grow := make([]string, len(fs.grow))
	for i, a := range fs.grow {
		grow[i] = strings.NewReplacer("DEV", dev, "DIR", dir).Replace(a)
	}
	return [][]string{blkid, {"blockdev", "--getro", dev}, blkid, grow}
}

// stageResult is, by filesystem, NodeStageVolume of a blank volume
// (activate, mkfs, mount), bare mkfs and mount of a blank volume's active
// device, the other commands NodeStageVolume runs, timed on that device
// once mounted, and the start of a process that does nothing.
type stageResult struct {
	stage, bare, extras map[string]Sample
	process             Sample
}

// measureStage alternates the two, --stage-runs of each by filesystem,
// each on a new volume of --stage-size, after one untimed run of each
// that brings the tools into the page cache.
func (b *bench) measureStage(d *csiThin) (stageResult, error) {
	r := stageResult{stage: map[string]Sample{}, bare: map[string]Sample{}, extras: map[string]Sample{}}
	size := int64(b.cfg.stageSize)
	for i := -1; i < b.cfg.stageRuns; i++ {
		for _, fs := range stageFilesystems {
			bare, extras, err := b.bareFormatMount(d, fmt.Sprintf("bare-%s-%d", fs.name, i), size, fs)
			if err != nil {
				return r, err
			}
			if i >= 0 {
				r.bare[fs.name] = append(r.bare[fs.name], bare)
				r.extras[fs.name] = append(r.extras[fs.name], extras)
			}

			ctx, cancel := d.call()
			id, err := d.create(ctx, fmt.Sprintf("stage-%s-%d", fs.name, i), size, mountCapability(fs.name), "")
			if err != nil {
				cancel()
				return r, err
			}
			t0 := time.Now()
			staging, err := d.stage(ctx, id, mountCapability(fs.name))
			dt := time.Since(t0)
			if err == nil {
				err = d.unstage(ctx, id, staging)
			}
			if err == nil {
				err = d.deleteVolume(ctx, id)
			}
			cancel()
			if err != nil {
				return r, err
			}
			if i >= 0 {
				r.stage[fs.name] = append(r.stage[fs.name], dt)
				klog.InfoS("Stage", "fs", fs.name, "run", i+1, "NodeStageVolume", dt, "bare mkfs and mount", bare, "other commands", extras)
			}
		}
	}
	for range b.cfg.serial {
		t0 := time.Now()
		if err := command("true"); err != nil {
			return r, err
		}
		r.process = append(r.process, time.Since(t0))
	}
	return r, nil
}

// bareFormatMount times mkfs and mount of a new volume's device, which it
// activates by staging the volume as a block volume first, then the
// other commands of a stage on the mounted device.
func (b *bench) bareFormatMount(d *csiThin, name string, size int64, fs stageFS) (bare, extras time.Duration, err error) {
	ctx, cancel := d.call()
	defer cancel()
	id, err := d.create(ctx, name, size, blockCapability(), "")
	if err != nil {
		return 0, 0, err
	}
	staging, err := d.stage(ctx, id, blockCapability())
	if err != nil {
		return 0, 0, err
	}
	dev, err := b.thinDevice(d.name, id)
	if err != nil {
		return 0, 0, err
	}
	dir := b.workPath("bare", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if err := command(append(fs.mkfs, dev)...); err != nil {
		return 0, 0, err
	}
	if err := command(append(append([]string{"mount"}, fs.mount...), dev, dir)...); err != nil {
		return 0, 0, err
	}
	bare = time.Since(t0)
	t0 = time.Now()
	for _, c := range stageExtras(fs, dev, dir) {
		if err := command(c...); err != nil {
			return 0, 0, err
		}
	}
	extras = time.Since(t0)
	if err := unmount(dir); err != nil {
		return 0, 0, err
	}
	if err := d.unstage(ctx, id, staging); err != nil {
		return 0, 0, err
	}
	return bare, extras, d.deleteVolume(ctx, id)
}

// command runs a command, its output in the error when it fails.
func command(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
