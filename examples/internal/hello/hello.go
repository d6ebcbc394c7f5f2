// Package hello is the examples' tiny gRPC service, written by hand the way
// protoc-gen-go-grpc would write it, with protobuf's well-known wrapper
// messages so that it needs no generated code.
//
// Service "grpcutil.examples.Hello", method "SayHello": the request is the
// caller's name, the response says which server answered and whom it saw.
package hello

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ServiceName is the service's full name.
const ServiceName = "grpcutil.examples.Hello"

// SayHelloMethod is the full method name of SayHello.
const SayHelloMethod = "/" + ServiceName + "/SayHello"

// Server is what a Hello server implements.
type Server interface {
	SayHello(ctx context.Context, name *wrapperspb.StringValue) (*wrapperspb.StringValue, error)
}

// Register registers srv on s.
func Register(s grpc.ServiceRegistrar, srv Server) {
	s.RegisterService(&serviceDesc, srv)
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*Server)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "SayHello",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			if interceptor == nil {
				return srv.(Server).SayHello(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: SayHelloMethod}
			return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return srv.(Server).SayHello(ctx, req.(*wrapperspb.StringValue))
			})
		},
	}},
	Metadata: "hello.proto",
}

// SayHello calls SayHello on conn.
func SayHello(ctx context.Context, conn grpc.ClientConnInterface, name string, opts ...grpc.CallOption) (string, error) {
	out := new(wrapperspb.StringValue)
	if err := conn.Invoke(ctx, SayHelloMethod, wrapperspb.String(name), out, opts...); err != nil {
		return "", err
	}
	return out.GetValue(), nil
}
