// Command csi-thin is the csi-thin CSI driver: one process per node serves
// the identity, controller and node services for the node's thin pool.
// With --mode=forwarder it serves instead, off the nodes, the cluster's
// snapshot calls beside a cluster-wide csi-snapshotter and its
// SnapshotMetadata service beside the external-snapshot-metadata sidecar,
// relaying each call to the node that holds its volume, snapshot or group.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/pkg/driver"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("csi-thin", flag.ContinueOnError)
	klog.InitFlags(fs)
	opts := driver.DefaultOptions()
	opts.AddFlags(fs)
	version := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: csi-thin --endpoint unix:///csi/csi.sock --node-id NODE --state-dir /var/lib/csi-thin --pool-size 100Gi\n")
		fmt.Fprintf(fs.Output(), "       csi-thin --mode=forwarder [--forward snapshots,snapshot-metadata] --endpoint unix:///csi/csi.sock --snapshot-metadata-nodes NODES:PORT --snapshot-metadata-tls-cert FILE --snapshot-metadata-tls-key FILE --snapshot-metadata-tls-ca FILE\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Println(driver.Version)
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "csi-thin: unexpected arguments %q: every setting is a flag (see --help)\n", fs.Args())
		return 2
	}
	if err := opts.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "csi-thin: %v\n", err)
		return 2
	}
	var d interface{ Run(context.Context) error }
	var err error
	if opts.Mode == driver.ModeForwarder {
		d, err = driver.NewForwarder(opts)
	} else {
		d, err = driver.New(opts)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "csi-thin: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := d.Run(ctx); err != nil {
		klog.ErrorS(err, "csi-thin stopped")
		return 1
	}
	klog.InfoS("csi-thin stopped")
	klog.Flush()
	return 0
}
