// Command cluster-dns is the cluster harness's DNS: it answers the names
// of the cluster's Services, as CoreDNS does in a real cluster, so that
// pods (and commands run in the control plane's namespace) reach a Service
// by its name.
//
// The harness runs no kube-proxy, so a Service's cluster IP routes nowhere
// (but for those the nodes DNAT, -routed). A name therefore resolves to the
// addresses of the Service's ready endpoints, as a headless Service's does;
// a client must use the port its pods listen on, so a test's Service has a
// port equal to its target port. Names outside the cluster's domain are
// refused: nothing is forwarded out of the namespace.
//
//	cluster-dns -kubeconfig FILE -listen HOST_IP:53 [-domain cluster.local] [-routed default/kubernetes]
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// ttl is short: endpoints change as pods restart, and tests look again.
const ttl = 1

func main() {
	kubeconfig := flag.String("kubeconfig", "", "the kubeconfig to read Services and EndpointSlices with")
	listen := flag.String("listen", "", "HOST:PORT to answer on, over UDP and TCP")
	domain := flag.String("domain", "cluster.local", "the cluster's DNS domain (kubelet's clusterDomain)")
	routed := flag.String("routed", "default/kubernetes", "comma-separated NAMESPACE/NAME of Services whose cluster IP the nodes route (answered with that IP)")
	flag.Parse()
	if *kubeconfig == "" || *listen == "" {
		fmt.Fprintln(os.Stderr, "usage: cluster-dns -kubeconfig FILE -listen HOST:PORT [-domain cluster.local] [-routed default/kubernetes]")
		os.Exit(2)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster-dns:", err)
		os.Exit(1)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster-dns:", err)
		os.Exit(1)
	}
	r := &resolver{kube: kube, zone: dns.Fqdn("svc." + *domain), routed: map[string]bool{}}
	for _, s := range strings.Split(*routed, ",") {
		if s = strings.TrimSpace(s); s != "" {
			r.routed[s] = true
		}
	}
	errs := make(chan error, 2)
	for _, network := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: *listen, Net: network, Handler: r}
		go func() { errs <- srv.ListenAndServe() }()
	}
	fmt.Fprintf(os.Stderr, "cluster-dns: answering %s on %s (udp, tcp)\n", r.zone, *listen)
	fmt.Fprintln(os.Stderr, "cluster-dns:", <-errs)
	os.Exit(1)
}

type resolver struct {
	kube   kubernetes.Interface
	zone   string // svc.<domain>.
	routed map[string]bool
}

func (r *resolver) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	if len(q.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	question := q.Question[0]
	name := strings.ToLower(question.Name)
	if !dns.IsSubDomain(r.zone, name) {
		m.Rcode = dns.RcodeRefused
		m.Authoritative = false
		w.WriteMsg(m)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ips, rcode := r.lookup(ctx, strings.TrimSuffix(name, "."+r.zone))
	m.Rcode = rcode
	if rcode == dns.RcodeSuccess && (question.Qtype == dns.TypeA || question.Qtype == dns.TypeANY) {
		for _, ip := range ips {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
				A:   ip,
			})
		}
	}
	fmt.Fprintf(os.Stderr, "cluster-dns: %s %s: %s %v\n", dns.TypeToString[question.Qtype], name, dns.RcodeToString[rcode], ips)
	w.WriteMsg(m)
}

// lookup resolves SERVICE.NAMESPACE: the Service's ready endpoints, or its
// cluster IP if it is routed.
func (r *resolver) lookup(ctx context.Context, rel string) ([]net.IP, int) {
	parts := strings.Split(rel, ".")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return nil, dns.RcodeNameError
	}
	svcName, ns := parts[0], parts[1]
	svc, err := r.kube.CoreV1().Services(ns).Get(ctx, svcName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, dns.RcodeNameError
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "cluster-dns: get service %s/%s: %v\n", ns, svcName, err)
		return nil, dns.RcodeServerFailure
	}
	if r.routed[ns+"/"+svcName] && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		if ip := net.ParseIP(svc.Spec.ClusterIP).To4(); ip != nil {
			return []net.IP{ip}, dns.RcodeSuccess
		}
	}
	eps, err := r.kube.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svcName})
	if err != nil {
		fmt.Fprintf(os.Stderr, "cluster-dns: list endpoint slices of %s/%s: %v\n", ns, svcName, err)
		return nil, dns.RcodeServerFailure
	}
	return readyIPv4(eps.Items), dns.RcodeSuccess
}

// readyIPv4 are the IPv4 addresses of the ready endpoints, sorted, once each.
func readyIPv4(items []discoveryv1.EndpointSlice) []net.IP {
	var addrs []string
	for _, s := range items {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			addrs = append(addrs, e.Addresses...)
		}
	}
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	var ips []net.IP
	for _, a := range addrs {
		if ip := net.ParseIP(a).To4(); ip != nil {
			ips = append(ips, ip)
		}
	}
	return ips
}
