package kvresolver_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpcutil/grpcutil/kvresolver"
	"github.com/grpcutil/grpcutil/kvstore"
)

// A client reaches servers through a lookup function of its own.
func ExampleNewBuilder() {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, counter{n: new(atomic.Int64)})
	go srv.Serve(lis)
	defer srv.Stop()

	lookup := func(ctx context.Context, target string) ([]string, error) {
		return []string{lis.Addr().String()}, nil
	}
	b, err := kvresolver.NewBuilder(lookup, kvresolver.WithInterval(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	// Use real transport credentials outside an example.
	conn, err := grpc.NewClient("kv:///hello", grpc.WithResolvers(b), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.GetStatus())
	// Output: SERVING
}

// Servers announce themselves in a store, and clients find them there.
func ExampleRegister() {
	ctx := context.Background()
	store := kvstore.NewMemory() // S3 in production

	for _, addr := range []string{"10.0.1.8:8443", "10.0.1.7:8443"} {
		reg, err := kvresolver.Register(ctx, store, "hello", addr,
			kvresolver.WithHeartbeat(10*time.Second),
			kvresolver.WithMetadata(map[string]string{"zone": "eu-west-1a"}))
		if err != nil {
			log.Fatal(err)
		}
		defer reg.Close() // deletes the record
	}

	lookup := kvresolver.StoreLookup(store, "")
	addrs, err := lookup(ctx, "hello")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(addrs)

	recs, err := kvresolver.ReadRecords(ctx, store, "", "hello")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(recs[0].Address, recs[0].Metadata["zone"])

	// A client would use the lookup with a Builder:
	//	b, err := kvresolver.NewBuilder(lookup)
	//	conn, err := grpc.NewClient("kv:///hello", grpc.WithResolvers(b), ...)

	// Output:
	// [10.0.1.7:8443 10.0.1.8:8443]
	// 10.0.1.7:8443 eu-west-1a
}
