package node

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/csi-thin/csi-thin/pkg/volcap"
)

// checkLegacyMkfsOptions decides about the raw mkfs arguments that the
// volume context of a volume created by an older release may hold. On a
// formatted device they no longer matter and are ignored with a warning,
// so that such volumes keep working; on a blank one csi-thin would have
// to pass them to mkfs, which it no longer does with arguments it cannot
// check, so staging is refused.
func (s *Server) checkLegacyMkfsOptions(id, device, legacy string) error {
	existing, err := s.mounter.GetDiskFormat(device)
	if err != nil {
		return fmt.Errorf("check whether volume %s's device %s is formatted: %w", id, device, err)
	}
	if existing == "" {
		return status.Errorf(codes.InvalidArgument, "volume %s: the volume context holds %s=%q, raw mkfs arguments that csi-thin no longer "+
			"passes, and the volume is blank: replace them in the PersistentVolume with the formatting parameters %s",
			id, volcap.ParamLegacyMkfsOptions, legacy, volcap.FormatParamList())
	}
	klog.InfoS("Warning: ignoring mkfsOptions in the volume context: the volume is formatted already", "volumeID", id,
		"mkfsOptions", legacy, "filesystem", existing)
	return nil
}
