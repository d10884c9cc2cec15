// Package flows drives the csi-thin binary through the CSI gRPC API the
// way Kubernetes does, in a kernel with dm-thin (make test-kernel): the
// flows users run, with the driver restarted and killed between steps.
package flows

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/csi-thin/csi-thin/internal/kerneltest"
	"github.com/csi-thin/csi-thin/internal/testpool"
)

// driverProc is a csi-thin process and a client connected to it.
type driverProc struct {
	t        *testing.T
	bin      string
	dir      string
	pool     string
	endpoint string
	args     []string // more flags
	cmd      *exec.Cmd
	conn     *grpc.ClientConn
	ctrl     csi.ControllerClient
	node     csi.NodeClient
	ident    csi.IdentityClient
	starts   int
}

// startDriver runs the csi-thin binary named by $CSI_THIN_BINARY (make
// test-kernel builds it) on a fresh loopback pool, with more flags if
// given.
func startDriver(t *testing.T, pool string, args ...string) *driverProc {
	kerneltest.Require(t)
	bin := os.Getenv("CSI_THIN_BINARY")
	if bin == "" {
		t.Skip("needs the csi-thin binary in $CSI_THIN_BINARY: run `make test-kernel`")
	}
	dir := t.TempDir()
	d := &driverProc{t: t, bin: bin, dir: dir, pool: pool, endpoint: "unix://" + filepath.Join(dir, "csi.sock"), args: args}
	t.Cleanup(func() {
		d.stop(syscall.SIGTERM)
		if t.Failed() {
			d.logLogs()
		}
		testpool.RemovePool(t, pool, filepath.Join(dir, "state"))
	})
	d.start()
	return d
}

func (d *driverProc) start() {
	d.t.Helper()
	d.starts++
	log, err := os.Create(filepath.Join(d.dir, fmt.Sprintf("driver-%d.log", d.starts)))
	if err != nil {
		d.t.Fatal(err)
	}
	defer log.Close()
	d.cmd = exec.Command(d.bin, append([]string{"--endpoint", d.endpoint, "--node-id", "flow-node",
		"--state-dir", filepath.Join(d.dir, "state"), "--pool-size", "3Gi", "--pool-name", d.pool, "-v=2"}, d.args...)...)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	conn, err := grpc.NewClient(d.endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		d.t.Fatal(err)
	}
	d.conn, d.ctrl, d.node, d.ident = conn, csi.NewControllerClient(conn), csi.NewNodeClient(conn), csi.NewIdentityClient(conn)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := d.ident.Probe(ctx, &csi.ProbeRequest{})
		cancel()
		if err == nil && resp.GetReady().GetValue() {
			return
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(log.Name())
			d.t.Fatalf("driver not ready after 60s: %v\n%s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logLogs puts the end of each run's driver log into the test's output,
// which is all a failed run leaves: the test's directory goes with it.
func (d *driverProc) logLogs() {
	const keep = 16 << 10
	for i := 1; i <= d.starts; i++ {
		b, err := os.ReadFile(filepath.Join(d.dir, fmt.Sprintf("driver-%d.log", i)))
		if err != nil {
			d.t.Logf("driver log %d: %v", i, err)
			continue
		}
		cut := ""
		if len(b) > keep {
			b, cut = b[len(b)-keep:], " (its end)"
		}
		d.t.Logf("driver log of start %d%s:\n%s", i, cut, b)
	}
}

// stop ends the driver with sig and waits for it.
func (d *driverProc) stop(sig syscall.Signal) {
	if d.cmd == nil {
		return
	}
	d.conn.Close()
	_ = d.cmd.Process.Signal(sig)
	err := d.cmd.Wait()
	var exit *exec.ExitError
	if sig == syscall.SIGTERM && err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 0) {
		d.t.Errorf("driver did not stop cleanly on SIGTERM: %v", err)
	}
	d.cmd = nil
}

// restart stops the driver with SIGTERM and starts it again.
func (d *driverProc) restart() { d.stop(syscall.SIGTERM); d.start() }

// kill stops the driver with SIGKILL, as a crash would, and starts it again.
func (d *driverProc) kill() { d.stop(syscall.SIGKILL); d.start() }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}
