package metricsint_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The test service is a handwritten grpc.ServiceDesc (no generated code):
//
//	service grpcutil.test.Echo {
//	  rpc Call(StringValue) returns (StringValue);      // unary
//	  rpc Chat(stream StringValue) returns (stream StringValue); // bidi
//	}
//
// Call answers by its request: "notfound" -> NotFound, "internal" ->
// Internal, "block" -> waits for the server's release channel, else echo.
// Chat echoes every message, then fails with Internal if the last one was
// "fail".
const (
	echoService = "grpcutil.test.Echo"
	methodCall  = "/grpcutil.test.Echo/Call"
	methodChat  = "/grpcutil.test.Echo/Chat"

	// The sanitized "<service>.<method>" parts of their metric names.
	callName = "grpcutil_test_Echo.Call"
	chatName = "grpcutil_test_Echo.Chat"
)

type echoServer struct {
	entered chan struct{} // a "block" call sends here when it starts
	release chan struct{} // closed to let "block" calls return
}

func (e *echoServer) call(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	switch in.GetValue() {
	case "notfound":
		return nil, status.Error(codes.NotFound, "echo: not found")
	case "internal":
		return nil, status.Error(codes.Internal, "echo: internal")
	case "block":
		e.entered <- struct{}{}
		select {
		case <-e.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return wrapperspb.String(in.GetValue()), nil
}

func (e *echoServer) chat(stream grpc.ServerStream) error {
	last := ""
	for {
		in := new(wrapperspb.StringValue)
		err := stream.RecvMsg(in)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		last = in.GetValue()
		if err := stream.SendMsg(in); err != nil {
			return err
		}
	}
	if last == "fail" {
		return status.Error(codes.Internal, "echo: chat failed")
	}
	return nil
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: echoService,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Call",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			if interceptor == nil {
				return srv.(*echoServer).call(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: methodCall}
			return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return srv.(*echoServer).call(ctx, req.(*wrapperspb.StringValue))
			})
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Chat",
		Handler:       func(srv any, stream grpc.ServerStream) error { return srv.(*echoServer).chat(stream) },
		ServerStreams: true,
		ClientStreams: true,
	}},
}

// testEnv is a real grpc-go server and client over loopback TCP.
type testEnv struct {
	srv  *echoServer
	conn *grpc.ClientConn
}

// startEnv starts an echo server with serverOpts on 127.0.0.1:0 and a client
// with dialOpts; both are stopped by t.Cleanup.
func startEnv(t testing.TB, serverOpts []grpc.ServerOption, dialOpts []grpc.DialOption) *testEnv {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	es := &echoServer{entered: make(chan struct{}), release: make(chan struct{})}
	s := grpc.NewServer(serverOpts...)
	s.RegisterService(&echoDesc, es)
	served := make(chan error, 1)
	go func() { served <- s.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(),
		append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, dialOpts...)...)
	if err != nil {
		s.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		s.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testEnv{srv: es, conn: conn}
}

func (e *testEnv) call(ctx context.Context, value string) error {
	out := new(wrapperspb.StringValue)
	return e.conn.Invoke(ctx, methodCall, wrapperspb.String(value), out)
}

// chat sends values on a Chat stream, reads every echo and returns the
// final status of the stream.
func (e *testEnv) chat(ctx context.Context, values ...string) error {
	cs, err := e.conn.NewStream(ctx, &echoDesc.Streams[0], methodChat)
	if err != nil {
		return err
	}
	for _, v := range values {
		if err := cs.SendMsg(wrapperspb.String(v)); err != nil {
			return err
		}
	}
	if err := cs.CloseSend(); err != nil {
		return err
	}
	for {
		err := cs.RecvMsg(new(wrapperspb.StringValue))
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
