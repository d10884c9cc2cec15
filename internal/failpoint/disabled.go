//go:build !failpoints

package failpoint

// Enabled reports whether this build arms failpoints: false without the
// tag failpoints, so the environment variable is ignored.
const Enabled = false

type arm struct{}

func newArm(string) arm { return arm{} }

// Hit does nothing: failpoints are compiled out of this build.
func (p *Point) Hit() {}
