package controller

import (
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/csi-thin/csi-thin/pkg/volcap"
)

func node(name string) *csi.Topology { return volcap.Topology(name) }

func TestCheckTopology(t *testing.T) {
	other := &csi.Topology{Segments: map[string]string{"topology.kubernetes.io/zone": "a"}}
	tests := []struct {
		name string
		req  *csi.TopologyRequirement
		code codes.Code
		msg  string // in the message; `"n1"` for ResourceExhausted
	}{
		{name: "none", req: nil},
		{name: "empty", req: &csi.TopologyRequirement{}},
		{name: "requisite is this node", req: &csi.TopologyRequirement{Requisite: []*csi.Topology{node("n1")}}},
		{name: "requisite includes this node", req: &csi.TopologyRequirement{Requisite: []*csi.Topology{node("n2"), node("n1"), node("n3")}}},
		{name: "preferred alone is this node", req: &csi.TopologyRequirement{Preferred: []*csi.Topology{node("n1")}}},
		{name: "preferred elsewhere, requisite includes this node", req: &csi.TopologyRequirement{
			Requisite: []*csi.Topology{node("n2"), node("n1")}, Preferred: []*csi.Topology{node("n2")}}},
		{name: "this node's segment among others", req: &csi.TopologyRequirement{Requisite: []*csi.Topology{
			{Segments: map[string]string{volcap.TopologyKey: "n1", "topology.kubernetes.io/zone": "a"}}}}},

		{name: "requisite another node", req: &csi.TopologyRequirement{Requisite: []*csi.Topology{node("n2")}}, code: codes.ResourceExhausted},
		{name: "preferred another node", req: &csi.TopologyRequirement{Preferred: []*csi.Topology{node("n2")}}, code: codes.ResourceExhausted},
		{name: "no csi-thin segment", req: &csi.TopologyRequirement{Requisite: []*csi.Topology{other}}, code: codes.ResourceExhausted},
		{name: "a node whose name extends this one's", req: &csi.TopologyRequirement{Requisite: []*csi.Topology{node("n10")}}, code: codes.ResourceExhausted},
		{name: "requisite other nodes, preferred one of them", req: &csi.TopologyRequirement{
			Requisite: []*csi.Topology{node("n2"), node("n3")}, Preferred: []*csi.Topology{node("n3")}}, code: codes.ResourceExhausted},

		// The volume must be accessible from a requisite topology, and
		// every preferred one must be requisite too.
		{name: "requisite another node, preferred this node", req: &csi.TopologyRequirement{
			Requisite: []*csi.Topology{node("n2")}, Preferred: []*csi.Topology{node("n1")}}, code: codes.InvalidArgument,
			msg: "is not among the requisite ones (node \"n2\")"},
		{name: "requisite this node, preferred another", req: &csi.TopologyRequirement{
			Requisite: []*csi.Topology{node("n1")}, Preferred: []*csi.Topology{node("n2")}}, code: codes.InvalidArgument,
			msg: "fix the caller's accessibility_requirements"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkTopology(tt.req, "n1")
			if status.Code(err) != tt.code {
				t.Fatalf("checkTopology = %v, want code %s", err, tt.code)
			}
			msg := tt.msg
			if tt.code == codes.ResourceExhausted {
				msg = `"n1"` // names this node
			}
			if err != nil && !strings.Contains(err.Error(), msg) {
				t.Fatalf("message %q does not say %s", err, msg)
			}
		})
	}
}

func TestDescribeTopologies(t *testing.T) {
	var ts []*csi.Topology
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		ts = append(ts, node(n))
	}
	got := describeTopologies(ts)
	if want := `node "a", node "b", node "c", node "d", node "e", and 2 more`; got != want {
		t.Fatalf("describeTopologies = %q, want %q", got, want)
	}
	got = describeTopologies([]*csi.Topology{{Segments: map[string]string{"zone": "z"}}})
	if !strings.Contains(got, "without "+volcap.TopologyKey) || !strings.Contains(got, "zone:z") {
		t.Fatalf("describeTopologies = %q", got)
	}
}

func TestOnNode(t *testing.T) {
	if !onNode(node("n1"), "n1") || onNode(node("n2"), "n1") || onNode(nil, "n1") || onNode(&csi.Topology{}, "n1") {
		t.Fatal("onNode is wrong")
	}
}
