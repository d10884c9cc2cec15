package forward

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
)

// Peers lists the addresses (HOST:PORT) of every node's listener.
type Peers func(ctx context.Context) ([]string, error)

// ResolvePeers are the servers at spec, a comma-separated list of
// HOST:PORT: each host is resolved at every call, and each of its
// addresses is a node. A headless Service of the node pods resolves to
// every node's pod; an IP address is one node.
func ResolvePeers(spec string) (Peers, error) {
	var hosts, ports []string
	for _, hp := range strings.Split(spec, ",") {
		host, port, err := net.SplitHostPort(strings.TrimSpace(hp))
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("node address %q: use HOST:PORT, as in csi-thin-snapshot-metadata-nodes.csi-thin.svc:9443", hp)
		}
		hosts, ports = append(hosts, host), append(ports, port)
	}
	return func(ctx context.Context) ([]string, error) {
		var addrs []string
		for i, host := range hosts {
			ips, err := net.DefaultResolver.LookupHost(ctx, host)
			if err != nil {
				return nil, fmt.Errorf("resolve the nodes' address %s: %w", host, err)
			}
			for _, ip := range ips {
				addrs = append(addrs, net.JoinHostPort(ip, ports[i]))
			}
		}
		slices.Sort(addrs)
		return slices.Compact(addrs), nil
	}, nil
}
