package driver

import "strings"

// methodName is the method of a gRPC full method name,
// "/csi.v1.Node/NodeStageVolume" → "NodeStageVolume".
func methodName(fullMethod string) string {
	return fullMethod[strings.LastIndex(fullMethod, "/")+1:]
}
