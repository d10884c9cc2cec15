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

// deploymentContainer is the container of a Deployment's pod by name, or
// nil.
func deploymentContainer(d *appsv1.Deployment, name string) *corev1.Container {
	for i, c := range d.Spec.Template.Spec.Containers {
		if c.Name == name {
			return &d.Spec.Template.Spec.Containers[i]
		}
	}
	return nil
}

// TestForwarder checks that the forwarder's parts fit together, in every
// value set that has one: its csi-thin's flags and what it serves, the
// sidecars beside it on one socket, the nodes' headless Service and
// listener, the certificates' names and chain, and, with snapshot
// metadata, the SnapshotMetadataService's address and CA.
func TestForwarder(t *testing.T) {
	forEachValueSet(t, func(t *testing.T, v valueSet, want expectation, objs []object) {
		deps := ofKind[appsv1.Deployment](objs)
		if !want.forwarder() {
			if len(deps) != 0 {
				t.Fatalf("%d Deployments, want none without a forwarder", len(deps))
			}
			for _, ds := range daemonSets(objs) {
				if a := parseDriverArgs(t, mustContainer(t, ds, "csi-thin")).SnapshotMetadata.Address; a != "" {
					t.Errorf("%s: the nodes listen on %q without a forwarder", ds.Name, a)
				}
			}
			return
		}
		if len(deps) != 1 {
			t.Fatalf("%d Deployments, want the forwarder's", len(deps))
		}
		dep := deps[0]
		pod := dep.Spec.Template
		secrets := map[string]*corev1.Secret{}
		for _, s := range ofKind[corev1.Secret](objs) {
			secrets[s.Name] = s
		}
		services := map[string]*corev1.Service{}
		for _, s := range ofKind[corev1.Service](objs) {
			services[s.Name] = s
		}

		// The forwarder: valid flags, serving what the sidecars beside it
		// call, on the socket they share.
		fwd := deploymentContainer(dep, "csi-thin")
		snapshotter := deploymentContainer(dep, "csi-snapshotter")
		sidecar := deploymentContainer(dep, "csi-snapshot-metadata")
		if fwd == nil || (snapshotter != nil) != want.clusterSnapshots || (sidecar != nil) != want.snapshotMetadata {
			t.Fatalf("containers %v: want csi-thin, csi-snapshotter %v, csi-snapshot-metadata %v", pod.Spec.Containers, want.clusterSnapshots, want.snapshotMetadata)
		}
		if len(pod.Spec.Containers) != 1+len(slices.DeleteFunc([]*corev1.Container{snapshotter, sidecar}, func(c *corev1.Container) bool { return c == nil })) {
			t.Errorf("unexpected containers in %v", pod.Spec.Containers)
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
		var serves []string
		if want.clusterSnapshots {
			serves = append(serves, driver.ForwardSnapshots)
		}
		if want.snapshotMetadata {
			serves = append(serves, driver.ForwardSnapshotMetadata)
		}
		if opts.Forward != strings.Join(serves, ",") {
			t.Errorf("--forward=%s, want %s", opts.Forward, strings.Join(serves, ","))
		}
		for _, c := range []*corev1.Container{snapshotter, sidecar} {
			if c != nil && (flags(t, c)["csi-address"] != socketPath || opts.Endpoint != "unix://"+socketPath || mount(c, "socket-dir") == nil) {
				t.Errorf("%s (%q) and the forwarder (%s) must share %s", c.Name, c.Args, opts.Endpoint, socketPath)
			}
		}
		for _, c := range pod.Spec.Containers {
			if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Privileged != nil && *sc.Privileged {
				t.Errorf("container %s may gain privileges: the forwarder's pod needs none", c.Name)
			}
		}
		fwdSecret := mountedSecret(t, pod.Spec, fwd, opts.SnapshotMetadata.TLSCert, secrets)
		if ds := daemonSets(objs)[0]; fwd.Image != mustContainer(t, ds, "csi-thin").Image || !slices.Equal(fwd.Command, []string{driverPath}) {
			t.Errorf("the forwarder runs %q %q, the nodes %q %q: one image for both", fwd.Image, fwd.Command, mustContainer(t, ds, "csi-thin").Image, mustContainer(t, ds, "csi-thin").Command)
		}

		// The cluster's csi-snapshotter: the nodes' flags but
		// --node-deployment, with leader election in its namespace.
		if snapshotter != nil {
			f := flags(t, snapshotter)
			for name, value := range map[string]string{"leader-election": "true", "leader-election-namespace": "$(NAMESPACE)", "extra-create-metadata": "true"} {
				if f[name] != value {
					t.Errorf("csi-snapshotter --%s=%q, want %q", name, f[name], value)
				}
			}
			if _, ok := f["node-deployment"]; ok {
				t.Errorf("the cluster's csi-snapshotter sets --node-deployment: it would watch only contents labelled with a node")
			}
			if fieldEnv(snapshotter)["NAMESPACE"] != "metadata.namespace" {
				t.Errorf("csi-snapshotter env NAMESPACE from %q", fieldEnv(snapshotter)["NAMESPACE"])
			}
			expand(t, snapshotter, map[string]string{"NAMESPACE": namespace})
			wantImage := "registry.k8s.io/sig-storage/csi-snapshotter:v8.7.0"
			if v.name == "full" {
				wantImage = "registry.example.com/sig-storage/csi-snapshotter:v8.7.0"
			}
			if snapshotter.Image != wantImage {
				t.Errorf("csi-snapshotter image %q, want %q (sidecars.snapshotter's)", snapshotter.Image, wantImage)
			}
		}

		// The nodes: the forwarder's address is the headless Service, which
		// selects the DaemonSets' pods and their listener's port.
		host, port, err := net.SplitHostPort(opts.SnapshotMetadata.Nodes)
		if err != nil {
			t.Fatal(err)
		}
		name, ns, _ := strings.Cut(strings.TrimSuffix(host, ".svc"), ".")
		nodesSvc := services[name]
		if nodesSvc == nil || ns != namespace || nodesSvc.Spec.ClusterIP != "None" {
			t.Fatalf("--snapshot-metadata-nodes %s is not a headless Service of the release", host)
		}
		var nodeSecret *corev1.Secret
		var node driver.Options
		for _, ds := range daemonSets(objs) {
			if !labels.SelectorFromSet(nodesSvc.Spec.Selector).Matches(labels.Set(ds.Spec.Template.Labels)) {
				t.Errorf("Service %s does not select the pods of %s", name, ds.Name)
			}
			node = parseDriverArgs(t, mustContainer(t, ds, "csi-thin"))
			if !strings.HasSuffix(node.SnapshotMetadata.Address, ":"+port) || nodesSvc.Spec.Ports[0].Port != int32(atoi(t, port)) {
				t.Errorf("%s listens on %q, the forwarder calls port %s, the Service has %d", ds.Name, node.SnapshotMetadata.Address, port, nodesSvc.Spec.Ports[0].Port)
			}
			nodeSecret = mountedSecret(t, ds.Spec.Template.Spec, mustContainer(t, ds, "csi-thin"), node.SnapshotMetadata.TLSCert, secrets)
		}

		// The certificates: one CA; the nodes' for the name the forwarder
		// checks, the forwarder's for the name the nodes check.
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(fwdSecret.Data["ca.crt"]) || string(nodeSecret.Data["ca.crt"]) != string(fwdSecret.Data["ca.crt"]) {
			t.Fatal("the forwarder and the nodes must share one CA")
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

		// Snapshot metadata: the SnapshotMetadataService names the
		// sidecar's Service, whose certificate and CA it carries.
		sms := ofKind[SnapshotMetadataService](objs)
		if !want.snapshotMetadata {
			if len(sms) != 0 {
				t.Errorf("%d SnapshotMetadataService objects without snapshot metadata", len(sms))
			}
			return
		}
		if len(sms) != 1 {
			t.Fatalf("%d SnapshotMetadataService objects", len(sms))
		}
		if string(sms[0].Spec.CACert) != string(fwdSecret.Data["ca.crt"]) {
			t.Fatal("the SnapshotMetadataService must carry the forwarder's and the nodes' CA")
		}
		smsHost, smsPort, err := net.SplitHostPort(sms[0].Spec.Address)
		if err != nil {
			t.Fatal(err)
		}
		verify("the sidecar's certificate", fwdSecret.Data["tls.crt"], smsHost, x509.ExtKeyUsageServerAuth)
		if mountedSecret(t, pod.Spec, sidecar, flags(t, sidecar)["tls-cert"], secrets) != fwdSecret {
			t.Errorf("the sidecar's certificate is not the forwarder Secret's")
		}
		svcName, _, _ := strings.Cut(smsHost, ".")
		svc := services[svcName]
		if svc == nil || svc.Spec.Ports[0].Port != int32(atoi(t, smsPort)) {
			t.Fatalf("the SnapshotMetadataService's address %s is not a Service port", sms[0].Spec.Address)
		}
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			t.Errorf("Service %s does not select the forwarder's pod", svcName)
		}
		if f := flags(t, sidecar); svc.Spec.Ports[0].TargetPort.String() != "grpc" || f["port"] != strconv.Itoa(int(sidecar.Ports[0].ContainerPort)) {
			t.Errorf("Service %s targets %s, the sidecar listens on --port=%s (container port %d)", svcName, svc.Spec.Ports[0].TargetPort.String(), f["port"], sidecar.Ports[0].ContainerPort)
		}
	})
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
