package kvcertverify_test

import (
	"context"
	"fmt"
	"log"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpcutil/grpcutil/kvcertverify"
	"github.com/grpcutil/grpcutil/kvstore"
)

func Example() {
	ctx := context.Background()
	store := kvstore.NewMemory() // S3 in production

	// Server: a key and certificate of its own, published under
	// certs/<address> before it serves.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	serverCreds, err := kvcertverify.NewServerTransportCredentials(ctx, store, lis.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer serverCreds.Close() // revokes: deletes the published certificate
	s := grpc.NewServer(grpc.Creds(serverCreds))
	healthpb.RegisterHealthServer(s, health.NewServer())
	go s.Serve(lis)
	defer s.Stop()

	// Client: accepts the server only with a certificate published for the
	// address it dialed.
	clientCreds := kvcertverify.NewClientTransportCredentials(store)
	defer clientCreds.Close()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(clientCreds))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.GetStatus())
	// Output: SERVING
}
