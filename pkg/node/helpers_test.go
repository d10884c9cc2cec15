package node

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	mount "k8s.io/mount-utils"
	"k8s.io/utils/exec"
	testingexec "k8s.io/utils/exec/testing"

	"github.com/csi-thin/csi-thin/pkg/csierr"
)

// run is one command a test expects, and what it answers. do, if set,
// runs while the command does.
type run struct {
	argv []string
	out  string
	err  error
	do   func()
}

// exitStatus is a command's failure with an exit status.
func exitStatus(n int) error { return testingexec.FakeExitError{Status: n} }

// script is a scripted exec: it expects the commands in order, and
// checks at the end of the test that all of them ran. A command it does
// not expect fails the test and exits 127.
type script struct {
	t    *testing.T
	mu   sync.Mutex
	runs []run
	next int
}

var _ exec.Interface = (*script)(nil)

func newScript(t *testing.T) *script {
	t.Helper()
	s := &script{t: t}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.next != len(s.runs) {
			t.Errorf("ran %d commands, want %d: %q did not run", s.next, len(s.runs), s.runs[s.next].argv)
		}
	})
	return s
}

// expect adds commands to those the script expects.
func (s *script) expect(runs ...run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs = append(s.runs, runs...)
}

func (s *script) Command(cmd string, args ...string) exec.Cmd {
	s.mu.Lock()
	defer s.mu.Unlock()
	argv := append([]string{cmd}, args...)
	r := run{argv: argv, err: exitStatus(127)}
	if s.next < len(s.runs) {
		r = s.runs[s.next]
		s.next++
		if !slices.Equal(argv, r.argv) {
			s.t.Errorf("ran %q, want %q", argv, r.argv)
		}
	} else {
		s.t.Errorf("ran %q, want no more commands", argv)
	}
	return testingexec.InitFakeCmd(&testingexec.FakeCmd{
		CombinedOutputScript: []testingexec.FakeAction{
			func() ([]byte, []byte, error) {
				if r.do != nil {
					r.do()
				}
				return []byte(r.out), nil, r.err
			},
		},
	}, cmd, args...)
}

func (s *script) CommandContext(_ context.Context, cmd string, args ...string) exec.Cmd {
	return s.Command(cmd, args...)
}

func (s *script) LookPath(file string) (string, error) { return file, nil }

// scriptedExec expects the commands in order and checks at the end of the
// test that all of them ran.
func scriptedExec(t *testing.T, runs ...run) exec.Interface {
	t.Helper()
	s := newScript(t)
	s.expect(runs...)
	return s
}

// testServer is a server without an engine over a fake mounter.
func testServer(t *testing.T, m *mount.FakeMounter, runs ...run) *Server {
	t.Helper()
	return New(Options{NodeID: "node-1", Mounter: mount.NewSafeFormatAndMount(m, scriptedExec(t, runs...))})
}

// growRuns are the commands growing an ext4 or xfs filesystem runs.
func growRuns(device, mountPath, fsType string) []run {
	grow := run{argv: []string{"resize2fs", device}}
	if fsType == "xfs" {
		grow = run{argv: []string{"xfs_growfs", "-d", mountPath}}
	}
	blkid := run{argv: blkidArgv(device), out: "TYPE=" + fsType + "\n"}
	return []run{
		{argv: []string{"blockdev", "--getro", device}, out: "0\n"},
		blkid,
		blkid,
		grow,
	}
}

func blkidArgv(device string) []string {
	return []string{"blkid", "-p", "-s", "TYPE", "-s", "PTTYPE", "-o", "export", device}
}

// wantCode checks that err is a status with code want (OK: no error).
func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if want == codes.OK {
		if err != nil {
			t.Fatalf("error %v, want none", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %s", want)
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("error %v is not a status, want %s", err, want)
	}
	if st.Code() != want {
		t.Fatalf("code %s (%v), want %s", st.Code(), err, want)
	}
}

// wantCSI checks that err has the CSI code want, as the driver gives it
// to the caller (OK: no error).
func wantCSI(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := csierr.Code(err); got != want {
		t.Fatalf("code %s (%v), want %s", got, err, want)
	}
}

// plain stands for a plain error in tables of codes.
const plain = codes.Code(1 << 20)

// wantPlain checks that err is an error that is not a status (the driver
// maps it to Internal).
func wantPlain(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("no error, want one")
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		t.Fatalf("error %v is a status, want a plain error", err)
	}
}
