package driver

import (
	"context"
	"time"

	"github.com/kubernetes-csi/csi-lib-utils/protosanitizer"
	"google.golang.org/grpc"
	"k8s.io/klog/v2"
)

// logCalls logs each call at V(2), its payload at V(5) with secrets
// stripped, and every failure.
func logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := methodName(info.FullMethod)
	start := time.Now()
	klog.V(5).InfoS("Call", "method", method, "request", protosanitizer.StripSecrets(req))
	resp, err := handler(ctx, req)
	if err != nil {
		klog.ErrorS(err, "Call failed", "method", method, "duration", time.Since(start))
		return resp, err
	}
	klog.V(2).InfoS("Call done", "method", method, "duration", time.Since(start))
	klog.V(5).InfoS("Reply", "method", method, "response", protosanitizer.StripSecrets(resp))
	return resp, nil
}

// logStreams logs each streaming call at V(2), its request at V(5) with
// secrets stripped, and every failure.
func logStreams(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	method := methodName(info.FullMethod)
	start := time.Now()
	err := handler(srv, &loggedStream{ServerStream: ss, method: method})
	if err != nil {
		klog.ErrorS(err, "Call failed", "method", method, "duration", time.Since(start))
		return err
	}
	klog.V(2).InfoS("Call done", "method", method, "duration", time.Since(start))
	return nil
}

// loggedStream logs the request it receives at V(5).
type loggedStream struct {
	grpc.ServerStream
	method string
}

func (s *loggedStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		klog.V(5).InfoS("Call", "method", s.method, "request", protosanitizer.StripSecrets(m))
	}
	return err
}
