package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// machine is what the figures were measured on: the host, which
// test/bench/run describes in $BENCH_HOST_* (User-Mode Linux shows none
// of it), and the kernel they ran in.
type machine struct {
	hostCPUs, hostCPU, hostMemory, hostKernel string
	hostLoad                                  string // load average at the start
	kernel                                    string
	cpus                                      int
	memory                                    string
}

func readMachine() machine {
	m := machine{
		hostCPUs: os.Getenv("BENCH_HOST_NPROC"), hostCPU: os.Getenv("BENCH_HOST_CPU"),
		hostMemory: os.Getenv("BENCH_HOST_MEMORY"), hostKernel: os.Getenv("BENCH_HOST_KERNEL"),
		hostLoad: os.Getenv("BENCH_HOST_LOAD"),
		cpus:     runtime.NumCPU(), memory: memTotal(),
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.kernel = unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Machine[:])
	}
	return m
}

// memTotal is /proc/meminfo's MemTotal.
func memTotal() string {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return "?"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func (m machine) String() string {
	return fmt.Sprintf("host: %s CPUs (%s), %s memory, Linux %s, load average at the start %s (1, 5, 15 minutes)\n"+
		"kernel measured in: User-Mode Linux %s, %d CPU, %s memory",
		orUnknown(m.hostCPUs), orUnknown(m.hostCPU), orUnknown(m.hostMemory), orUnknown(m.hostKernel), orUnknown(m.hostLoad),
		m.kernel, m.cpus, m.memory)
}
