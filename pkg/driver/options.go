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

	"github.com/csi-thin/csi-thin/pkg/forward"
	"github.com/csi-thin/csi-thin/pkg/thinpool"
)

// The modes csi-thin runs in (--mode).
const (
	// ModeNode serves a node's pool: the DaemonSet's csi-thin.
	ModeNode = "node"
	// ModeForwarder serves the cluster's snapshot calls and its
	// SnapshotMetadata service beside the sidecars that make them,
	// relaying each call to the node that holds its volume, snapshot or
	// group.
	ModeForwarder = "forwarder"
)

// What a forwarder serves (--forward).
const (
	// ForwardSnapshots is the controller service's snapshot calls and the
	// group controller service, for a csi-snapshotter that is not per
	// node.
	ForwardSnapshots = "snapshots"
	// ForwardSnapshotMetadata is the SnapshotMetadata service, for the
	// external-snapshot-metadata sidecar.
	ForwardSnapshotMetadata = "snapshot-metadata"
	// DefaultForward is both.
	DefaultForward = ForwardSnapshots + "," + ForwardSnapshotMetadata
)

// Options are csi-thin's settings, one flag each.
type Options struct {
	Mode     string
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

	// Forward is what a forwarder serves: a comma-separated list of
	// ForwardSnapshots and ForwardSnapshotMetadata.
	Forward string

	SnapshotMetadata SnapshotMetadataOptions
}

// SnapshotMetadataOptions are the settings of a node's listener for the
// forwarder, which carries SnapshotMetadata and the relayed snapshot
// calls, and of the forwarder's way to the nodes. The flags are named
// after the service they first carried. The TLS files are this end's
// certificate and key and the CA of the other end.
type SnapshotMetadataOptions struct {
	Address    string // node: host:port of the listener; empty: off
	Format     string // node: variable or fixed
	ClientName string // node: the name the forwarder's certificate carries
	Nodes      string // forwarder: HOST:PORT list of the nodes' servers
	ServerName string // forwarder: the name the nodes' certificate carries
	TLSCert    string
	TLSKey     string
	TLSCA      string
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
		Mode:               ModeNode,
		Forward:            DefaultForward,
		SnapshotMetadata: SnapshotMetadataOptions{
			Format:     "variable",
			ClientName: "csi-thin-snapshot-metadata-forwarder",
		},
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
	fs.StringVar(&o.Mode, "mode", o.Mode, "node: serve this node's pool; forwarder: serve, on --endpoint, the cluster's snapshot calls and SnapshotMetadata service (--forward) for the sidecars beside it, relaying each call to the node of its volume, snapshot or group (see docs/forwarder.md)")
	fs.StringVar(&o.Forward, "forward", o.Forward, "forwarder: what it serves, a comma-separated list of snapshots (the snapshot calls of the controller and group controller services, for a csi-snapshotter without --node-deployment) and snapshot-metadata (SnapshotMetadata, for the external-snapshot-metadata sidecar)")
	sm := &o.SnapshotMetadata
	fs.StringVar(&sm.Address, "snapshot-metadata-address", sm.Address, "node: listen for the forwarder on this host:port (e.g. :9443), with mutual TLS (--snapshot-metadata-tls-*): SnapshotMetadata and the snapshot calls the forwarder relays, nothing else; empty: off")
	fs.StringVar(&sm.Format, "snapshot-metadata-format", sm.Format, "node: variable (adjacent blocks merged into one range) or fixed (one range per pool block)")
	fs.StringVar(&sm.ClientName, "snapshot-metadata-client-name", sm.ClientName, "node: accept on --snapshot-metadata-address only clients whose certificate names this (common name or DNS name): the forwarder's")
	fs.StringVar(&sm.Nodes, "snapshot-metadata-nodes", sm.Nodes, "forwarder: the nodes' listeners (--snapshot-metadata-address), HOST:PORT[,HOST:PORT...]; each address a host resolves to is a node (a headless Service of the node pods)")
	fs.StringVar(&sm.ServerName, "snapshot-metadata-server-name", sm.ServerName, "forwarder: the name the nodes' certificate must carry; default: the host of --snapshot-metadata-nodes")
	fs.StringVar(&sm.TLSCert, "snapshot-metadata-tls-cert", sm.TLSCert, "PEM certificate: the node's listener's server certificate, or the forwarder's client certificate")
	fs.StringVar(&sm.TLSKey, "snapshot-metadata-tls-key", sm.TLSKey, "PEM private key of --snapshot-metadata-tls-cert")
	fs.StringVar(&sm.TLSCA, "snapshot-metadata-tls-ca", sm.TLSCA, "PEM CA certificate that signed the other end's certificate (the forwarder's, on a node; the nodes', on the forwarder)")
}

// Validate checks the options, with messages that name the flag and say
// what it may be. The pool's own settings are checked again by the engine.
func (o *Options) Validate() error {
	switch o.Mode {
	case ModeNode:
	case ModeForwarder:
		return o.validateForwarder()
	default:
		return fmt.Errorf("--mode %q: use %s or %s", o.Mode, ModeNode, ModeForwarder)
	}
	if o.Forward != DefaultForward {
		return fmt.Errorf("--forward is the forwarder's: use it with --mode=%s", ModeForwarder)
	}
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
	if err := o.SnapshotMetadata.validateNode(); err != nil {
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

// validateNode checks a node's SnapshotMetadata listener: off, or on a
// TCP address with all three TLS files, since it serves other hosts.
func (sm *SnapshotMetadataOptions) validateNode() error {
	if sm.Nodes != "" || sm.ServerName != "" {
		return fmt.Errorf("--snapshot-metadata-nodes and --snapshot-metadata-server-name are the forwarder's: use them with --mode=%s", ModeForwarder)
	}
	if sm.Format != "variable" && sm.Format != "fixed" {
		return fmt.Errorf("--snapshot-metadata-format %q: use variable or fixed", sm.Format)
	}
	if sm.Address == "" {
		if sm.TLSCert != "" || sm.TLSKey != "" || sm.TLSCA != "" {
			return fmt.Errorf("--snapshot-metadata-tls-* are for the forwarder's listener: set --snapshot-metadata-address too, or drop them")
		}
		return nil
	}
	if err := validHostPort("--snapshot-metadata-address", sm.Address, ":9443"); err != nil {
		return err
	}
	if sm.ClientName == "" {
		return fmt.Errorf("--snapshot-metadata-client-name is empty: give the name the forwarder's certificate carries")
	}
	return sm.validTLS("--snapshot-metadata-address serves the forwarder over TCP only with mutual TLS")
}

func (sm *SnapshotMetadataOptions) validTLS(why string) error {
	for _, f := range []struct{ flag, path string }{
		{"--snapshot-metadata-tls-cert", sm.TLSCert}, {"--snapshot-metadata-tls-key", sm.TLSKey}, {"--snapshot-metadata-tls-ca", sm.TLSCA},
	} {
		if f.path == "" {
			return fmt.Errorf("%s: %s is required", why, f.flag)
		}
		if !filepath.IsAbs(f.path) {
			return fmt.Errorf("%s %q must be an absolute path", f.flag, f.path)
		}
	}
	return nil
}

// validateForwarder checks the forwarder's options: its socket, its nodes
// and its TLS files. It has no pool, so the pool's flags are not checked.
func (o *Options) validateForwarder() error {
	if _, err := socketPath(o.Endpoint); err != nil {
		return err
	}
	if err := validMetricsAddress(o.MetricsAddress); err != nil {
		return err
	}
	if err := validForward(o.Forward); err != nil {
		return err
	}
	sm := o.SnapshotMetadata
	if sm.Address != "" {
		return fmt.Errorf("--snapshot-metadata-address is a node's listener: the forwarder serves --endpoint only")
	}
	if sm.Nodes == "" {
		return fmt.Errorf("--mode=%s needs --snapshot-metadata-nodes: the nodes' headless Service, as in csi-thin-snapshot-metadata-nodes.csi-thin.svc:9443", ModeForwarder)
	}
	if _, err := forward.ResolvePeers(sm.Nodes); err != nil {
		return fmt.Errorf("--snapshot-metadata-nodes: %w", err)
	}
	return sm.validTLS("--mode=" + ModeForwarder + " talks to the nodes only with mutual TLS")
}

// validForward checks --forward: one or both of what a forwarder serves.
func validForward(list string) error {
	for _, what := range strings.Split(list, ",") {
		switch strings.TrimSpace(what) {
		case ForwardSnapshots, ForwardSnapshotMetadata:
		default:
			return fmt.Errorf("--forward %q: give %s, %s or both, separated by a comma", list, ForwardSnapshots, ForwardSnapshotMetadata)
		}
	}
	return nil
}

// forwards reports whether a forwarder serves what (ForwardSnapshots or
// ForwardSnapshotMetadata).
func (o *Options) forwards(what string) bool {
	for _, w := range strings.Split(o.Forward, ",") {
		if strings.TrimSpace(w) == what {
			return true
		}
	}
	return false
}

// serverName is the name the nodes' certificate must carry.
func (sm *SnapshotMetadataOptions) serverName() string {
	if sm.ServerName != "" {
		return sm.ServerName
	}
	first, _, _ := strings.Cut(sm.Nodes, ",")
	host, _, _ := net.SplitHostPort(strings.TrimSpace(first))
	return host
}

// validHostPort checks a HOST:PORT or :PORT flag with a port number.
func validHostPort(flag, addr, example string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return fmt.Errorf("%s %q: use HOST:PORT or :PORT with a port number, as in %s", flag, addr, example)
	}
	return nil
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
