package thinpool

import (
	"errors"

	"k8s.io/klog/v2"

	dm "github.com/csi-thin/csi-thin/pkg/devmapper"
)

// noteHealth logs the pool's state when it changes: once when the pool
// fills or turns unhealthy, with what to do (what to run when its
// metadata is in question), and once when it is well again. Health is
// read on every change, health call and metrics scrape; the log says it
// once.
func (e *Engine) noteHealth(st dm.PoolStatus, statusErr, health error) {
	state := PoolState(health)
	if was, _ := e.lastState.Swap(state).(string); was == state || (was == "" && health == nil) {
		return
	}
	switch {
	case health == nil:
		klog.InfoS("The pool is healthy again", "pool", e.pool)
	case errors.Is(health, ErrNoSpace):
		klog.ErrorS(health, "The pool is out of data space: creates are refused and writes to unwritten blocks fail or queue; deletes still work",
			"pool", e.pool)
	case statusErr == nil && !st.Fail && !st.Error && !st.NeedsCheck && st.Mode != dm.PoolModeReadOnly:
		klog.ErrorS(health, "The pool is unhealthy: changes are refused until it is well", "pool", e.pool, "state", state)
	default:
		meta := e.metadataDevice()
		klog.ErrorS(health, "The pool's metadata is in question: changes are refused until it is repaired. "+
			"If the kernel log (dmesg) shows metadata I/O errors or the pool reports needs_check: stop csi-thin, "+
			"remove the pool's volume devices and the pool, run `thin_check "+meta+"` and, if it fails, "+
			"`thin_repair -i "+meta+" -o <a fresh device of the same size>` and copy that back; then start csi-thin "+
			"(README, Troubleshooting)", "pool", e.pool, "metadata", meta, "state", state)
	}
}

// metadataDevice is the device that holds the pool's metadata, as
// thin_check and thin_repair take it.
func (e *Engine) metadataDevice() string {
	if e.backing == nil {
		return "<metadata device>"
	}
	return devicePathOf(e.backing, false)
}
