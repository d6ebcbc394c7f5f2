package handshake_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpcutil/grpcutil/handshake"
)

// benchFuncs is one round trip: the client sends a 32-byte token, the server
// answers with a short message.
var benchFuncs = handshake.Funcs{
	Client: func(_ context.Context, m handshake.Messenger, _ credentials.AuthInfo) (any, error) {
		if err := m.Send(make([]byte, 32)); err != nil {
			return nil, err
		}
		return m.Recv()
	},
	Server: func(_ context.Context, m handshake.Messenger, _ credentials.AuthInfo) (any, error) {
		if _, err := m.Recv(); err != nil {
			return nil, err
		}
		return nil, m.Send([]byte("ok"))
	},
}

// benchCreds returns the TLS pair alone (Native) or wrapped (Wrapped).
func benchCreds(b *testing.B, wrapped bool) (client, server credentials.TransportCredentials) {
	client, server = tlsClient(b), tlsServer(b)
	if wrapped {
		client, server = handshake.Wrap(client, benchFuncs), handshake.Wrap(server, benchFuncs)
	}
	return client, server
}

// BenchmarkConnectionSetup measures a new connection to a real gRPC server up
// to the end of its first RPC: TLS alone vs TLS wrapped with one exchange.
func BenchmarkConnectionSetup(b *testing.B) {
	for _, bc := range []struct {
		name    string
		wrapped bool
	}{{"Native", false}, {"Wrapped", true}} {
		b.Run(bc.name, func(b *testing.B) {
			clientCreds, serverCreds := benchCreds(b, bc.wrapped)
			srv := startServer(b, serverCreds)
			ctx := testContext(b)
			req := &healthpb.HealthCheckRequest{}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				cc, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(clientCreds))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := healthpb.NewHealthClient(cc).Check(ctx, req); err != nil {
					b.Fatal(err)
				}
				_ = cc.Close()
				<-srv.rec.results
			}
		})
	}
}

// BenchmarkRPC measures unary RPCs on an established connection: the wrapper
// must cost nothing per message once the handshake is done.
func BenchmarkRPC(b *testing.B) {
	for _, bc := range []struct {
		name    string
		wrapped bool
	}{{"Native", false}, {"Wrapped", true}} {
		b.Run(bc.name, func(b *testing.B) {
			clientCreds, serverCreds := benchCreds(b, bc.wrapped)
			srv := startServer(b, serverCreds)
			hc := newClient(b, srv.addr, clientCreds)
			ctx := testContext(b)
			req := &healthpb.HealthCheckRequest{}
			if _, err := hc.Check(ctx, req); err != nil { // connect outside the timer
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := hc.Check(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
