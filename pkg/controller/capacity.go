package controller

import (
	"context"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// GetCapacity reports the largest volume this node's pool can take now;
// none for another node's topology, or while the pool is unhealthy. Capabilities and parameters, when
// given, must be ones csi-thin supports.
func (s *Server) GetCapacity(ctx context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	if caps := req.GetVolumeCapabilities(); len(caps) > 0 {
		if err := volcap.CheckAll(caps); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	if _, err := volcap.Parameters(req.GetParameters()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "StorageClass %v", err)
	}
	block := s.engine.BlockSizeBytes()
	if t := req.GetAccessibleTopology(); t != nil && !onNode(t, s.nodeID) {
		klog.V(4).InfoS("GetCapacity for another node", "topology", t.GetSegments(), "node", s.nodeID)
		return capacity(0, block), nil
	}
	if err := s.engine.Health(); err != nil {
		// Nothing can be created in it: keep the scheduler away.
		klog.V(2).InfoS("GetCapacity: the pool is unhealthy, reporting no capacity", "err", err)
		return capacity(0, block), nil
	}
	c, err := s.engine.Capacity()
	if err != nil {
		return nil, err
	}
	klog.V(4).InfoS("GetCapacity", "availableBytes", c.AvailableBytes, "budgetBytes", c.BudgetBytes, "promisedBytes", c.PromisedBytes)
	return capacity(c.AvailableBytes, block), nil
}

// capacity is GetCapacity's answer for available bytes in a pool of
// blocks of block bytes. The largest volume is whole blocks: a request
// for the available bytes rounded up would exceed them.
func capacity(available, block uint64) *csi.GetCapacityResponse {
	avail := toInt64(available)
	b := toInt64(block)
	return &csi.GetCapacityResponse{
		AvailableCapacity: avail,
		MaximumVolumeSize: wrapperspb.Int64(avail / b * b),
		MinimumVolumeSize: wrapperspb.Int64(b),
	}
}
