package driver

import (
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// Options are csi-thin's settings, one flag each.
type Options struct {
	Endpoint string // unix:///csi/csi.sock
	NodeID   string
	StateDir string

	PoolName           string
	PoolSize           ByteSize // loopback pool size
	PoolMaxSize        ByteSize // loopback pool auto-grow limit; 0: no auto-grow
	PoolGrowPercent    float64
	PoolFSReserve      float64 // percent
	DataDevice         string
	MetadataDevice     string
	BlockSize          ByteSize
	OverprovisionRatio float64
	DataReserve        float64 // percent
	MetadataReserve    float64 // percent
	ErrorIfNoSpace     bool
	// GroupSnapshotTimeout bounds how long a group snapshot keeps its
	// volumes frozen and suspended.
	GroupSnapshotTimeout time.Duration

	MaxVolumes int64

	MetricsAddress string // host:port for /metrics; empty: no metrics server
}

// DefaultOptions are the settings before flags.
func DefaultOptions() Options {
	return Options{
		Endpoint:           "unix:///csi/csi.sock",
		StateDir:           "/var/lib/csi-thin",
		PoolName:           thinpool.DefaultPoolName,
		PoolSize:           100 << 30,
		PoolGrowPercent:    thinpool.DefaultGrowPercent,
		PoolFSReserve:      thinpool.DefaultFSReservePercent,
		BlockSize:          thinpool.DefaultBlockSizeBytes,
		OverprovisionRatio: thinpool.DefaultOverprovisionRatio,
		DataReserve:        thinpool.DefaultDataReservePercent,
		MetadataReserve:    thinpool.DefaultMetadataReservePercent,
		ErrorIfNoSpace:     true,

		GroupSnapshotTimeout: thinpool.DefaultGroupSnapshotTimeout,
	}
}

// AddFlags registers every option on fs.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Endpoint, "endpoint", o.Endpoint, "CSI endpoint: unix:///path/to/csi.sock")
	fs.StringVar(&o.NodeID, "node-id", o.NodeID, "this node's name (the Kubernetes node name); required")
	fs.StringVar(&o.StateDir, "state-dir", o.StateDir, "directory for the state database and, for a loopback pool, its backing files")
	fs.StringVar(&o.PoolName, "pool-name", o.PoolName, "device-mapper name of the thin pool; volumes are named after it")
	fs.Var(&o.PoolSize, "pool-size", "size of a loopback pool (e.g. 100Gi); a larger size on a later start grows the pool")
	fs.Var(&o.PoolMaxSize, "pool-max-size", "let a loopback pool grow by itself, before it fills, up to this size (e.g. 500Gi); 0: it grows only with --pool-size")
	fs.Float64Var(&o.PoolGrowPercent, "pool-grow-percent", o.PoolGrowPercent, "auto-grow step, in percent of the pool's size; the pool grows once less than one step is free")
	fs.Float64Var(&o.PoolFSReserve, "pool-fs-reserve-percent", o.PoolFSReserve, "auto-grow stops where the filled pool files would leave less than this percentage of the state directory's file system free")
	fs.StringVar(&o.DataDevice, "data-device", o.DataDevice, "block device for the pool's data (with --metadata-device); empty: a loopback pool in --state-dir")
	fs.StringVar(&o.MetadataDevice, "metadata-device", o.MetadataDevice, "block device for the pool's metadata (with --data-device)")
	fs.Var(&o.BlockSize, "block-size", "pool data block size, 64Ki to 1Gi in 64Ki steps; fixed when the pool is created")
	fs.Float64Var(&o.OverprovisionRatio, "overprovision-ratio", o.OverprovisionRatio, "volume and snapshot sizes may add up to this many times the pool's size")
	fs.Float64Var(&o.DataReserve, "data-reserve-percent", o.DataReserve, "refuse new volumes while free data space is below this percentage")
	fs.Float64Var(&o.MetadataReserve, "metadata-reserve-percent", o.MetadataReserve, "refuse new volumes while free metadata space is below this percentage")
	fs.DurationVar(&o.GroupSnapshotTimeout, "group-snapshot-timeout", o.GroupSnapshotTimeout, "the longest a group snapshot keeps its volumes' filesystems frozen and devices suspended; past it the group is undone and may be retried")
	fs.BoolVar(&o.ErrorIfNoSpace, "error-if-no-space", o.ErrorIfNoSpace, "fail writes at once when the pool is full instead of queueing them until it grows")
	fs.Int64Var(&o.MaxVolumes, "max-volumes", o.MaxVolumes, "most volumes the scheduler may place on this node; 0: no limit")
	fs.StringVar(&o.MetricsAddress, "metrics-address", o.MetricsAddress, "serve Prometheus metrics on /metrics at this host:port (e.g. :9809); empty: no metrics server")
}

// Validate checks the options, with messages that name the flag and say
// what it may be. The pool's own settings are checked again by the engine.
func (o *Options) Validate() error {
	if o.NodeID == "" {
		return fmt.Errorf("--node-id is required: pass the Kubernetes node name (in a DaemonSet, from spec.nodeName)")
	}
	if _, err := socketPath(o.Endpoint); err != nil {
		return err
	}
	if !filepath.IsAbs(o.StateDir) {
		return fmt.Errorf("--state-dir %q must be an absolute path", o.StateDir)
	}
	if (o.DataDevice == "") != (o.MetadataDevice == "") {
		return fmt.Errorf("--data-device and --metadata-device go together: give both, or neither for a loopback pool in --state-dir")
	}
	if o.PoolMaxSize != 0 && o.DataDevice != "" {
		return fmt.Errorf("--pool-max-size applies to loopback pools: a pool on --data-device takes that device's size, so grow the device instead (csi-thin follows it)")
	}
	if o.PoolMaxSize != 0 && o.PoolMaxSize < o.PoolSize {
		return fmt.Errorf("--pool-max-size %s is below --pool-size %s: raise it, or 0 to turn auto-grow off", o.PoolMaxSize.String(), o.PoolSize.String())
	}
	if o.PoolGrowPercent < 1 || o.PoolGrowPercent > 100 {
		return fmt.Errorf("--pool-grow-percent %g: use 1 to 100", o.PoolGrowPercent)
	}
	if o.GroupSnapshotTimeout <= 0 {
		return fmt.Errorf("--group-snapshot-timeout %v: use a positive duration, such as 10s", o.GroupSnapshotTimeout)
	}
	if o.PoolFSReserve <= 0 || o.PoolFSReserve >= 100 {
		return fmt.Errorf("--pool-fs-reserve-percent %g: use more than 0 and less than 100", o.PoolFSReserve)
	}
	if o.MaxVolumes < 0 {
		return fmt.Errorf("--max-volumes %d is negative", o.MaxVolumes)
	}
	if err := validMetricsAddress(o.MetricsAddress); err != nil {
		return err
	}
	if err := o.engineConfig().Validate(); err != nil {
		return fmt.Errorf("pool settings: %w", err)
	}
	return nil
}

func (o *Options) engineConfig() thinpool.Config {
	return thinpool.Config{
		StateDir: o.StateDir, PoolName: o.PoolName,
		DataDevice: o.DataDevice, MetadataDevice: o.MetadataDevice,
		PoolSizeBytes: uint64(o.PoolSize), BlockSizeBytes: uint64(o.BlockSize),
		MaxSizeBytes: uint64(o.PoolMaxSize), GrowPercent: o.PoolGrowPercent, FSReservePercent: o.PoolFSReserve,
		OverprovisionRatio: o.OverprovisionRatio,
		DataReservePercent: o.DataReserve, MetadataReservePercent: o.MetadataReserve,
		ErrorIfNoSpace: o.ErrorIfNoSpace, GroupSnapshotTimeout: o.GroupSnapshotTimeout,
	}
}

// socketPath is the path of a unix:// endpoint.
func socketPath(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "unix" {
		return "", fmt.Errorf("--endpoint %q: use unix:///path/to/csi.sock", endpoint)
	}
	p := u.Path
	if p == "" {
		p = u.Opaque
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("--endpoint %q: the socket path must be absolute, as in unix:///csi/csi.sock", endpoint)
	}
	return p, nil
}

// validMetricsAddress checks a --metrics-address: empty, or HOST:PORT with
// a port number (0 picks a free port, which the log names).
func validMetricsAddress(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return fmt.Errorf("--metrics-address %q: use HOST:PORT or :PORT with a port number, as in :9809 or 127.0.0.1:9809", addr)
	}
	return nil
}

// ByteSize is a size flag: bytes, or a number with a binary (Ki, Mi, Gi,
// Ti) or decimal (K, M, G, T) suffix, as Kubernetes quantities are written.
type ByteSize uint64

var sizeSuffixes = []struct {
	suffix string
	mult   uint64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"Pi", 1 << 50},
	{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15},
}

// Set parses a size.
func (b *ByteSize) Set(s string) error {
	num, mult := s, uint64(1)
	for _, sf := range sizeSuffixes {
		if strings.HasSuffix(s, sf.suffix) {
			num, mult = strings.TrimSuffix(s, sf.suffix), sf.mult
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return fmt.Errorf("size %q: use bytes or a whole number with Ki, Mi, Gi or Ti, as in 100Gi", s)
	}
	if n > 0 && mult > ^uint64(0)/n {
		return fmt.Errorf("size %q is too large", s)
	}
	*b = ByteSize(n * mult)
	return nil
}

// String formats the size in the largest binary unit that divides it.
func (b *ByteSize) String() string {
	if b == nil || *b == 0 {
		return "0"
	}
	for i := 4; i >= 0; i-- {
		m := uint64(1) << (10 * (i + 1))
		if uint64(*b)%m == 0 {
			return strconv.FormatUint(uint64(*b)/m, 10) + sizeSuffixes[i].suffix
		}
	}
	return strconv.FormatUint(uint64(*b), 10)
}

// checkPrivileges says what to do when csi-thin cannot drive the kernel.
func checkPrivileges() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("csi-thin must run as root with CAP_SYS_ADMIN (a privileged container): it creates device-mapper and loop devices and mounts filesystems")
	}
	return nil
}
