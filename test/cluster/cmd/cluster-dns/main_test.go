package main

import (
	"net"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

// recorder is a dns.ResponseWriter that keeps the reply.
type recorder struct {
	dns.ResponseWriter
	reply *dns.Msg
}

func (r *recorder) WriteMsg(m *dns.Msg) error { r.reply = m; return nil }

func service(ns, name, clusterIP string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{ClusterIP: clusterIP}}
}

func slice(ns, svc, name string, ready map[string]bool) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for ip, r := range ready {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &r}})
	}
	return s
}

func TestServeDNS(t *testing.T) {
	objs := []runtime.Object{
		service("default", "kubernetes", "10.96.0.1"),
		slice("default", "kubernetes", "kubernetes", map[string]bool{"10.77.0.1": true}),
		service("csi-thin", "nodes", corev1.ClusterIPNone),
		slice("csi-thin", "nodes", "nodes-a", map[string]bool{"10.77.129.5": true, "10.77.128.7": true, "10.77.128.9": false}),
		slice("csi-thin", "nodes", "nodes-b", map[string]bool{"10.77.129.5": true}),
		service("csi-thin", "sidecar", "10.96.0.40"),
		slice("csi-thin", "sidecar", "sidecar-a", map[string]bool{"10.77.128.3": true}),
		service("csi-thin", "empty", "10.96.0.41"),
	}
	r := &resolver{kube: fake.NewClientset(objs...), zone: "svc.cluster.local.", routed: map[string]bool{"default/kubernetes": true}}
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
	}{
		{"kubernetes.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"10.96.0.1"}},
		{"Nodes.CSI-thin.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"10.77.128.7", "10.77.129.5"}},
		{"sidecar.csi-thin.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, []string{"10.77.128.3"}},
		{"sidecar.csi-thin.svc.cluster.local.", dns.TypeAAAA, dns.RcodeSuccess, nil},
		{"empty.csi-thin.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, nil},
		{"missing.csi-thin.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil},
		{"a.b.csi-thin.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil},
		{"svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nil},
		{"example.com.", dns.TypeA, dns.RcodeRefused, nil},
	} {
		t.Run(tc.name+"/"+dns.TypeToString[tc.qtype], func(t *testing.T) {
			q := new(dns.Msg)
			q.SetQuestion(tc.name, tc.qtype)
			rec := &recorder{}
			r.ServeDNS(rec, q)
			if rec.reply == nil {
				t.Fatal("no reply")
			}
			if rec.reply.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[rec.reply.Rcode], dns.RcodeToString[tc.rcode])
			}
			var got []string
			for _, rr := range rec.reply.Answer {
				a, ok := rr.(*dns.A)
				if !ok {
					t.Fatalf("answer %v is not an A record", rr)
				}
				if a.Hdr.Name != tc.name {
					t.Errorf("answer for %q, want the question's name %q", a.Hdr.Name, tc.name)
				}
				got = append(got, a.A.String())
			}
			if len(got) != len(tc.want) {
				t.Fatalf("answers %v, want %v", got, tc.want)
			}
			for i := range got {
				if !net.ParseIP(got[i]).Equal(net.ParseIP(tc.want[i])) {
					t.Fatalf("answers %v, want %v", got, tc.want)
				}
			}
		})
	}
}
