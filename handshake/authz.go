package handshake

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// AuthorizeFunc decides whether an RPC may proceed, given the AuthInfo of the
// connection it arrived on (a *AuthInfo for connections made with Wrap; use
// FromContext or a type assertion to reach Value). It must be safe for
// concurrent use. A non-nil error refuses the RPC.
type AuthorizeFunc func(ctx context.Context, ai credentials.AuthInfo) error

// UnaryServerInterceptor returns an interceptor that runs authorize before
// each unary RPC and answers codes.PermissionDenied when it fails or when the
// RPC carries no peer AuthInfo. The error's text is sent to the client.
func UnaryServerInterceptor(authorize AuthorizeFunc) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := check(ctx, authorize); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor returns an interceptor that runs authorize before
// each streaming RPC and answers codes.PermissionDenied when it fails or when
// the RPC carries no peer AuthInfo. The error's text is sent to the client.
func StreamServerInterceptor(authorize AuthorizeFunc) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := check(ss.Context(), authorize); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

func check(ctx context.Context, authorize AuthorizeFunc) error {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return status.Error(codes.PermissionDenied, "handshake: permission denied: connection has no auth info")
	}
	if authorize == nil {
		return status.Error(codes.PermissionDenied, "handshake: permission denied: no authorization function")
	}
	if err := authorize(ctx, p.AuthInfo); err != nil {
		return status.Errorf(codes.PermissionDenied, "handshake: permission denied: %v", err)
	}
	return nil
}
