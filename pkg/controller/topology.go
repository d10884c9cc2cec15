package controller

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// onNode reports whether topology t is the segment of node nodeID.
func onNode(t *csi.Topology, nodeID string) bool {
	return t.GetSegments()[volcap.TopologyKey] == nodeID
}

// checkTopology returns nil when accessibility requirements allow a
// volume on node nodeID: none are given, or the requisite topologies name
// the node, or, when none is requisite, the preferred ones do. The
// requisite ones decide, as the CSI spec has it: the volume must be
// accessible from one of them, and a preferred topology must be one of
// them too, else the request is InvalidArgument. A node they do not name
// is ResourceExhausted: this node's controller cannot provision elsewhere.
func checkTopology(req *csi.TopologyRequirement, nodeID string) error {
	requisite, preferred := req.GetRequisite(), req.GetPreferred()
	if len(requisite) > 0 {
		for _, p := range preferred {
			if !slices.ContainsFunc(requisite, func(r *csi.Topology) bool { return maps.Equal(r.GetSegments(), p.GetSegments()) }) {
				return status.Errorf(codes.InvalidArgument,
					"accessibility requirements: the preferred topology %v is not among the requisite ones (%s), and the CSI spec "+
						"requires every preferred topology to be requisite too: fix the caller's accessibility_requirements",
					p.GetSegments(), describeTopologies(requisite))
			}
		}
	}
	allowed := requisite
	if len(allowed) == 0 {
		allowed = preferred
	}
	if len(allowed) == 0 {
		return nil
	}
	for _, t := range allowed {
		if onNode(t, nodeID) {
			return nil
		}
	}
	return status.Errorf(codes.ResourceExhausted,
		"this csi-thin controller provisions on node %q only, and the accessibility requirements name %s: "+
			"the csi-thin of one of those nodes must provision it; run the csi-provisioner and csi-snapshotter sidecars "+
			"with --node-deployment and use a StorageClass with volumeBindingMode WaitForFirstConsumer",
		nodeID, describeTopologies(allowed))
}

// describeTopologies names the nodes of topologies for a message, the first
// few of them.
func describeTopologies(ts []*csi.Topology) string {
	const most = 5
	var names []string
	for i, t := range ts {
		if i == most {
			names = append(names, fmt.Sprintf("and %d more", len(ts)-most))
			break
		}
		if n, ok := t.GetSegments()[volcap.TopologyKey]; ok {
			names = append(names, fmt.Sprintf("node %q", n))
		} else {
			names = append(names, fmt.Sprintf("a topology without %s (%v)", volcap.TopologyKey, t.GetSegments()))
		}
	}
	return strings.Join(names, ", ")
}

// hasTopology reports whether a request gives accessibility requirements:
// a topology-aware caller (the external-provisioner with
// WaitForFirstConsumer) asks for this node's topology.
func hasTopology(req *csi.TopologyRequirement) bool {
	return len(req.GetRequisite()) > 0 || len(req.GetPreferred()) > 0
}
