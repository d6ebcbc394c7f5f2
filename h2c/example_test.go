package h2c_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpcutil/grpcutil/h2c"
)

// A gRPC server and a plain HTTP handler share one cleartext port; a grpc-go
// client reaches the gRPC server by HTTP/1.1 Upgrade, landing on grpc-go's
// native transport.
func Example() {
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	defer gs.Stop()

	srv := &h2c.Server{
		HTTP2Handler:      gs,
		NonUpgradeHandler: http.NotFoundHandler(),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	conn, err := grpc.NewClient(ln.Addr().String(),
		grpc.WithContextDialer(h2c.Dialer{}.DialContext),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.GetStatus())
	// Output: SERVING
}

// Prior knowledge skips the HTTP/1.1 exchange where the client knows the
// server speaks h2c.
func ExampleDialer_priorKnowledge() {
	d := h2c.Dialer{PriorKnowledge: true}
	conn, err := grpc.NewClient("127.0.0.1:50051",
		grpc.WithContextDialer(d.DialContext),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
}
