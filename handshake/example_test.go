package handshake_test

import (
	"context"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpcutil/grpcutil/handshake"
)

// The client presents a token after the inner handshake; the server accepts
// only the one it knows and hands the result to its handlers. Insecure inner
// credentials keep the example short: use TLS (or kvcertverify) in practice.
func Example() {
	funcs := handshake.Funcs{
		Client: func(ctx context.Context, m handshake.Messenger, _ credentials.AuthInfo) (any, error) {
			return nil, m.Send([]byte("token-for-worker-7"))
		},
		Server: func(ctx context.Context, m handshake.Messenger, _ credentials.AuthInfo) (any, error) {
			token, err := m.Recv()
			if err != nil {
				return nil, err
			}
			if !strings.HasPrefix(string(token), "token-for-") {
				return nil, handshake.Reject("unknown token")
			}
			return strings.TrimPrefix(string(token), "token-for-"), nil // the client's identity
		},
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := grpc.NewServer(
		grpc.Creds(handshake.Wrap(insecure.NewCredentials(), funcs)),
		grpc.UnaryInterceptor(handshake.UnaryServerInterceptor(func(ctx context.Context, _ credentials.AuthInfo) error {
			ai, ok := handshake.FromContext(ctx)
			if !ok {
				return fmt.Errorf("no handshake")
			}
			fmt.Println("server: call from", ai.Value(), "over", ai.AuthType())
			return nil
		})),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(handshake.Wrap(insecure.NewCredentials(), funcs)))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cc.Close()
	resp, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("client:", resp.GetStatus())
	// Output:
	// server: call from worker-7 over insecure+handshake
	// client: SERVING
}
