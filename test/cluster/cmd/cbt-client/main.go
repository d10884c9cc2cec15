// Command cbt-client is the cluster tests' backup client: it reads a
// VolumeSnapshot's allocated blocks, or the blocks changed since an earlier
// snapshot, through the cluster's Kubernetes SnapshotMetadata service, as a
// backup tool does, from a pod:
//
//  1. the VolumeSnapshot's content names its CSI driver, whose
//     SnapshotMetadataService object gives the service's address, CA and
//     token audience;
//  2. a token for that audience, of the pod's service account
//     (TokenRequest);
//  3. GetMetadataAllocated or GetMetadataDelta over TLS, the base snapshot
//     by its CSI handle.
//
// It prints the stream as one JSON list, a record per message, in the form
// of external-snapshot-metadata's snapshot-metadata-lister -o json. That
// lister does the same at v1.1.0, but reads the SnapshotMetadataService
// through the v1alpha1 API, which v1.1.0's CRD no longer serves.
//
//	cbt-client -snapshot NAME [-previous-snapshot NAME] [-starting-offset N] [-max-results N] [-service-account NAME]
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

var (
	snapshots = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshots"}
	contents  = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshotcontents"}
	services  = schema.GroupVersionResource{Group: "cbt.storage.k8s.io", Version: "v1beta1", Resource: "snapshotmetadataservices"}
)

const nsFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

func main() {
	snapshot := flag.String("snapshot", "", "the VolumeSnapshot, in the pod's namespace")
	previous := flag.String("previous-snapshot", "", "an earlier VolumeSnapshot of the same volume: list the blocks changed since it")
	offset := flag.Int64("starting-offset", 0, "the byte offset to start from")
	maxResults := flag.Int("max-results", 0, "ranges per message (0: the service decides)")
	account := flag.String("service-account", "default", "the pod's service account, whose token the call carries")
	flag.Parse()
	if *snapshot == "" {
		fmt.Fprintln(os.Stderr, "usage: cbt-client -snapshot NAME [-previous-snapshot NAME] [-starting-offset N] [-max-results N]")
		os.Exit(2)
	}
	if err := run(*snapshot, *previous, *offset, int32(*maxResults), *account); err != nil {
		fmt.Fprintln(os.Stderr, "cbt-client:", err)
		os.Exit(1)
	}
}

func run(snapshot, previous string, offset int64, maxResults int32, account string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := os.ReadFile(nsFile)
	if err != nil {
		return fmt.Errorf("the pod's namespace: %w", err)
	}
	ns := strings.TrimSpace(string(b))
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}

	driver, _, err := content(ctx, dyn, ns, snapshot)
	if err != nil {
		return err
	}
	var baseID string
	if previous != "" {
		if _, baseID, err = content(ctx, dyn, ns, previous); err != nil {
			return err
		}
	}
	sms, err := dyn.Resource(services).Get(ctx, driver, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("the SnapshotMetadataService of %s: %w", driver, err)
	}
	address, _, _ := unstructured.NestedString(sms.Object, "spec", "address")
	audience, _, _ := unstructured.NestedString(sms.Object, "spec", "audience")
	caB64, _, _ := unstructured.NestedString(sms.Object, "spec", "caCert")
	var ca []byte
	if err := json.Unmarshal([]byte(`"`+caB64+`"`), &ca); err != nil {
		return fmt.Errorf("SnapshotMetadataService %s: caCert: %w", driver, err)
	}
	tr, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, account, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{Audiences: []string{audience}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("a token for audience %q: %w", audience, err)
	}

	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return fmt.Errorf("SnapshotMetadataService %s: caCert holds no PEM certificate", driver)
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("SnapshotMetadataService %s: address %q: %w", driver, address, err)
	}
	creds := credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12})
	conn, err := grpc.NewClient(address, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()

	method, req := "GetMetadataAllocated", allocatedRequest(tr.Status.Token, ns, snapshot, offset, maxResults)
	if previous != "" {
		method, req = "GetMetadataDelta", deltaRequest(tr.Status.Token, ns, baseID, snapshot, offset, maxResults)
	}
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/snapshotmetadata.SnapshotMetadata/"+method, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return err
	}
	if err := stream.SendMsg(req); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	if err := stream.CloseSend(); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	var records []record
	for {
		var msg raw
		err := stream.RecvMsg(&msg)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		r, err := decodeResponse(msg)
		if err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		records = append(records, r)
	}
	if records == nil {
		records = []record{}
	}
	return json.NewEncoder(os.Stdout).Encode(records)
}

// content is the CSI driver and snapshot handle of a ready VolumeSnapshot.
func content(ctx context.Context, dyn dynamic.Interface, ns, name string) (driver, handle string, err error) {
	vs, err := dyn.Resource(snapshots).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", "", fmt.Errorf("VolumeSnapshot %s/%s: %w", ns, name, err)
	}
	vsc, _, _ := unstructured.NestedString(vs.Object, "status", "boundVolumeSnapshotContentName")
	if vsc == "" {
		return "", "", fmt.Errorf("VolumeSnapshot %s/%s has no content yet", ns, name)
	}
	c, err := dyn.Resource(contents).Get(ctx, vsc, metav1.GetOptions{})
	if err != nil {
		return "", "", fmt.Errorf("VolumeSnapshotContent %s: %w", vsc, err)
	}
	driver, _, _ = unstructured.NestedString(c.Object, "spec", "driver")
	handle, _, _ = unstructured.NestedString(c.Object, "status", "snapshotHandle")
	if driver == "" || handle == "" {
		return "", "", fmt.Errorf("VolumeSnapshotContent %s names no driver or snapshot handle yet", vsc)
	}
	return driver, handle, nil
}
