package driver

import (
	"flag"
	"strings"
	"testing"
)

func parse(t *testing.T, args ...string) (Options, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	o := DefaultOptions()
	o.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	return o, o.Validate()
}

// A node's SnapshotMetadata listener, and a forwarder, with their TLS.
var (
	smTLS       = []string{"--snapshot-metadata-tls-cert", "/tls/tls.crt", "--snapshot-metadata-tls-key", "/tls/tls.key", "--snapshot-metadata-tls-ca", "/tls/ca.crt"}
	smNode      = append([]string{"--snapshot-metadata-address", ":9443"}, smTLS...)
	smForwarder = append([]string{"--mode", "forwarder", "--snapshot-metadata-nodes", "csi-thin-nodes.csi-thin.svc:9443"}, smTLS...)
)

func TestOptions(t *testing.T) {
	base := []string{"--node-id", "n1"}
	cases := []struct {
		name    string
		args    []string
		wantErr string // empty: valid
	}{
		{"the documented command line", []string{"--endpoint", "unix:///csi/csi.sock", "--node-id", "n1", "--state-dir", "/var/lib/csi-thin", "--pool-size", "100Gi"}, ""},
		{"defaults with a node id", base, ""},
		{"no node id", nil, "--node-id is required"},
		{"tcp endpoint", append(base, "--endpoint", "tcp://0.0.0.0:10000"), "unix:///path"},
		{"relative socket", append(base, "--endpoint", "unix://csi.sock"), "absolute"},
		{"relative state dir", append(base, "--state-dir", "state"), "absolute path"},
		{"bad size", append(base, "--pool-size", "100GB"), "use bytes or a whole number"},
		{"tiny pool", append(base, "--pool-size", "1Mi"), "at least 64 MiB"},
		{"data device alone", append(base, "--data-device", "/dev/sdb"), "go together"},
		{"both devices", append(base, "--data-device", "/dev/sdb", "--metadata-device", "/dev/sdc"), ""},
		{"odd block size", append(base, "--block-size", "100Ki"), "multiple of 64 KiB"},
		{"ratio below 1", append(base, "--overprovision-ratio", "0.5"), "below 1"},
		{"auto-grow", append(base, "--pool-size", "10Gi", "--pool-max-size", "100Gi", "--pool-grow-percent", "10"), ""},
		{"auto-grow below the size", append(base, "--pool-size", "10Gi", "--pool-max-size", "5Gi"), "--pool-max-size 5Gi is below --pool-size 10Gi"},
		{"auto-grow on block devices", append(base, "--data-device", "/dev/sdb", "--metadata-device", "/dev/sdc", "--pool-max-size", "1Ti"), "applies to loopback pools"},
		{"grow step 0", append(base, "--pool-grow-percent", "0"), "--pool-grow-percent 0: use 1 to 100"},
		{"grow step too large", append(base, "--pool-grow-percent", "150"), "use 1 to 100"},
		{"no file system reserve", append(base, "--pool-fs-reserve-percent", "0"), "more than 0 and less than 100"},
		{"negative max volumes", append(base, "--max-volumes", "-1"), "negative"},
		{"metrics on a port", append(base, "--metrics-address", ":9809"), ""},
		{"metrics on loopback", append(base, "--metrics-address", "127.0.0.1:9809"), ""},
		{"metrics on IPv6 loopback", append(base, "--metrics-address", "[::1]:9809"), ""},
		{"metrics on a free port", append(base, "--metrics-address", "127.0.0.1:0"), ""},
		{"metrics off", append(base, "--metrics-address", ""), ""},
		{"metrics port without colon", append(base, "--metrics-address", "9809"), "--metrics-address \"9809\": use HOST:PORT"},
		{"metrics port by name", append(base, "--metrics-address", ":http"), "with a port number"},
		{"metrics port too large", append(base, "--metrics-address", ":65536"), "with a port number"},
		{"metrics URL", append(base, "--metrics-address", "http://0.0.0.0:9809/metrics"), "use HOST:PORT"},
		{"snapshot metadata with TLS", append(base, smNode...), ""},
		{"snapshot metadata, fixed ranges", append(append(base, smNode...), "--snapshot-metadata-format", "fixed"), ""},
		{"snapshot metadata, unknown format", append(append(base, smNode...), "--snapshot-metadata-format", "blocks"), "use variable or fixed"},
		{"snapshot metadata without TLS", append(base, "--snapshot-metadata-address", ":9443"), "only with mutual TLS: --snapshot-metadata-tls-cert is required"},
		{"snapshot metadata without a CA", append(base, smNode[:6]...), "--snapshot-metadata-tls-ca is required"},
		{"snapshot metadata, relative cert", append(append(base, smNode...), "--snapshot-metadata-tls-cert", "tls.crt"), "must be an absolute path"},
		{"snapshot metadata port without colon", append(append(base, smNode...), "--snapshot-metadata-address", "9443"), "use HOST:PORT"},
		{"TLS without the listener", append(base, "--snapshot-metadata-tls-cert", "/t/tls.crt"), "set --snapshot-metadata-address too"},
		{"forwarder flags on a node", append(append(base, smNode...), "--snapshot-metadata-nodes", "n.svc:9443"), "--mode=forwarder"},
		{"what a forwarder serves, on a node", append(base, "--forward", "snapshots"), "--forward is the forwarder's: use it with --mode=forwarder"},
		{"unknown mode", append(base, "--mode", "controller"), "--mode \"controller\": use node or forwarder"},
		{"the mode's old name", append(smForwarder, "--mode", "snapshot-metadata-forwarder"), "use node or forwarder"},
		{"forwarder", smForwarder, ""},
		{"forwarder needs no node id or pool", append(smForwarder, "--pool-size", "1Mi"), ""},
		{"forwarder of snapshots", append(smForwarder, "--forward", "snapshots"), ""},
		{"forwarder of snapshot metadata", append(smForwarder, "--forward", "snapshot-metadata"), ""},
		{"forwarder of both, spaced", append(smForwarder, "--forward", "snapshot-metadata, snapshots"), ""},
		{"forwarder of nothing", append(smForwarder, "--forward", ""), "--forward \"\": give snapshots, snapshot-metadata or both"},
		{"forwarder of volumes", append(smForwarder, "--forward", "snapshots,volumes"), "give snapshots, snapshot-metadata or both"},
		{"forwarder without nodes", append([]string{"--mode", "forwarder"}, smTLS...), "needs --snapshot-metadata-nodes"},
		{"forwarder with a bad node address", append(smForwarder, "--snapshot-metadata-nodes", "n.svc"), "use HOST:PORT"},
		{"forwarder without TLS", []string{"--mode", "forwarder", "--snapshot-metadata-nodes", "n.svc:9443"}, "only with mutual TLS: --snapshot-metadata-tls-cert is required"},
		{"forwarder with a listener", append(smForwarder, "--snapshot-metadata-address", ":9443"), "the forwarder serves --endpoint only"},
		{"forwarder on TCP", append(smForwarder, "--endpoint", "tcp://:1"), "unix:///path"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(t, c.args...)
			if c.wantErr == "" && err != nil {
				t.Fatalf("valid options refused: %v", err)
			}
			if c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("got %v, want an error saying %q", err, c.wantErr)
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	cases := []struct {
		in   string
		want uint64
		str  string
	}{
		{"100Gi", 100 << 30, "100Gi"},
		{"64Ki", 64 << 10, "64Ki"},
		{"1536Mi", 1536 << 20, "1536Mi"},
		{"1G", 1e9, "1000000000"},
		{"4096", 4096, "4Ki"},
		{"1000", 1000, "1000"},
	}
	for _, c := range cases {
		var b ByteSize
		if err := b.Set(c.in); err != nil || uint64(b) != c.want || b.String() != c.str {
			t.Errorf("%q: %d %q %v, want %d %q", c.in, b, b.String(), err, c.want, c.str)
		}
	}
	for _, bad := range []string{"", "Gi", "-1Gi", "1.5Gi", "1GB", "99999999999999999999Pi"} {
		var b ByteSize
		if err := b.Set(bad); err == nil {
			t.Errorf("%q accepted as %d", bad, b)
		}
	}
}

func TestForwarderServerName(t *testing.T) {
	sm := SnapshotMetadataOptions{Nodes: "a.svc:9443,b.svc:9443"}
	if got := sm.serverName(); got != "a.svc" {
		t.Errorf("default server name %q, want a.svc", got)
	}
	sm.ServerName = "nodes.example"
	if got := sm.serverName(); got != "nodes.example" {
		t.Errorf("server name %q, want nodes.example", got)
	}
}
