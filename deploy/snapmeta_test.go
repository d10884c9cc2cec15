package deploy

import (
	"crypto/x509"
	"encoding/pem"
	"flag"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/pkg/driver"
)

// TestSnapshotMetadata checks that the SnapshotMetadata parts fit
// together: the forwarder's flags, the nodes' headless Service and
// listener, the certificates' names and chain, and the
// SnapshotMetadataService's address and CA.
func TestSnapshotMetadata(t *testing.T) {
	objs := render(t, valueSet{name: "snapshot-metadata", set: []string{"--set", "snapshotMetadata.enabled=true"}})
	deps := ofKind[appsv1.Deployment](objs)
	if len(deps) != 1 {
		t.Fatalf("%d Deployments, want the forwarder's", len(deps))
	}
	pod := deps[0].Spec.Template
	secrets := map[string]*corev1.Secret{}
	for _, s := range ofKind[corev1.Secret](objs) {
		secrets[s.Name] = s
	}
	services := map[string]*corev1.Service{}
	for _, s := range ofKind[corev1.Service](objs) {
		services[s.Name] = s
	}

	// The forwarder: valid flags, its TLS files in its Secret.
	var fwd, sidecar *corev1.Container
	for i, c := range pod.Spec.Containers {
		switch c.Name {
		case "csi-thin":
			fwd = &pod.Spec.Containers[i]
		case "csi-snapshot-metadata":
			sidecar = &pod.Spec.Containers[i]
		}
	}
	if fwd == nil || sidecar == nil {
		t.Fatalf("the Deployment needs csi-thin and csi-snapshot-metadata containers")
	}
	fs := flag.NewFlagSet("csi-thin", flag.ContinueOnError)
	klog.InitFlags(fs)
	opts := driver.DefaultOptions()
	opts.AddFlags(fs)
	if err := fs.Parse(fwd.Args); err != nil {
		t.Fatal(err)
	}
	if err := opts.Validate(); err != nil {
		t.Fatalf("the forwarder's flags: %v", err)
	}
	if opts.Mode != driver.ModeForwarder {
		t.Fatalf("--mode %q", opts.Mode)
	}
	if !slices.Contains(sidecar.Args, "--csi-address="+socketPath) || opts.Endpoint != "unix://"+socketPath {
		t.Errorf("the sidecar (%q) and the forwarder (%s) must share %s", sidecar.Args, opts.Endpoint, socketPath)
	}
	fwdSecret := mountedSecret(t, pod.Spec, fwd, opts.SnapshotMetadata.TLSCert, secrets)

	// The nodes: the forwarder's address is the headless Service, which
	// selects the DaemonSet's pods and their listener's port.
	host, port, err := net.SplitHostPort(opts.SnapshotMetadata.Nodes)
	if err != nil {
		t.Fatal(err)
	}
	name, ns, _ := strings.Cut(strings.TrimSuffix(host, ".svc"), ".")
	nodesSvc := services[name]
	if nodesSvc == nil || ns != namespace || nodesSvc.Spec.ClusterIP != "None" {
		t.Fatalf("--snapshot-metadata-nodes %s is not a headless Service of the release", host)
	}
	ds := daemonSets(objs)[0]
	if !labels.SelectorFromSet(nodesSvc.Spec.Selector).Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("Service %s does not select the node pods", name)
	}
	node := parseDriverArgs(t, mustContainer(t, ds, "csi-thin"))
	if !strings.HasSuffix(node.SnapshotMetadata.Address, ":"+port) || nodesSvc.Spec.Ports[0].Port != int32(atoi(t, port)) {
		t.Errorf("nodes listen on %s, the forwarder calls port %s, the Service has %d", node.SnapshotMetadata.Address, port, nodesSvc.Spec.Ports[0].Port)
	}
	nodeSecret := mountedSecret(t, ds.Spec.Template.Spec, mustContainer(t, ds, "csi-thin"), node.SnapshotMetadata.TLSCert, secrets)

	// The certificates: one CA; the nodes' for the name the forwarder
	// checks, the forwarder's for the name the nodes check, the sidecar's
	// for the Service in the SnapshotMetadataService.
	sms := ofKind[SnapshotMetadataService](objs)
	if len(sms) != 1 {
		t.Fatalf("%d SnapshotMetadataService objects", len(sms))
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(sms[0].Spec.CACert) || string(sms[0].Spec.CACert) != string(fwdSecret.Data["ca.crt"]) || string(nodeSecret.Data["ca.crt"]) != string(fwdSecret.Data["ca.crt"]) {
		t.Fatal("the SnapshotMetadataService, the forwarder and the nodes must share one CA")
	}
	verify := func(what string, pemBytes []byte, dnsName string, usage x509.ExtKeyUsage) *x509.Certificate {
		b, _ := pem.Decode(pemBytes)
		if b == nil {
			t.Fatalf("%s: no PEM certificate", what)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: dnsName, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		return c
	}
	verify("the nodes' certificate", nodeSecret.Data["tls.crt"], host, x509.ExtKeyUsageServerAuth)
	client := verify("the forwarder's certificate", fwdSecret.Data["client.crt"], "", x509.ExtKeyUsageClientAuth)
	if client.Subject.CommonName != node.SnapshotMetadata.ClientName {
		t.Errorf("the forwarder's certificate is of %q, the nodes take %q", client.Subject.CommonName, node.SnapshotMetadata.ClientName)
	}
	smsHost, smsPort, err := net.SplitHostPort(sms[0].Spec.Address)
	if err != nil {
		t.Fatal(err)
	}
	verify("the sidecar's certificate", fwdSecret.Data["tls.crt"], smsHost, x509.ExtKeyUsageServerAuth)
	svcName, _, _ := strings.Cut(smsHost, ".")
	svc := services[svcName]
	if svc == nil || svc.Spec.Ports[0].Port != int32(atoi(t, smsPort)) {
		t.Fatalf("the SnapshotMetadataService's address %s is not a Service port", sms[0].Spec.Address)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
		t.Errorf("Service %s does not select the forwarder's pod", svcName)
	}
}

// mountedSecret is the Secret whose volume holds file in container c, and
// it must hold the file's key.
func mountedSecret(t *testing.T, spec corev1.PodSpec, c *corev1.Container, file string, secrets map[string]*corev1.Secret) *corev1.Secret {
	t.Helper()
	for _, m := range c.VolumeMounts {
		key, ok := strings.CutPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				s := secrets[v.Secret.SecretName]
				if s == nil || len(s.Data[key]) == 0 {
					t.Fatalf("%s: Secret %s has no %s", file, v.Secret.SecretName, key)
				}
				return s
			}
		}
	}
	t.Fatalf("%s is on no Secret volume of container %s", file, c.Name)
	return nil
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("port %q: %v", s, err)
	}
	return n
}
