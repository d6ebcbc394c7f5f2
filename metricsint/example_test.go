package metricsint_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"sync"

	metrics "github.com/rcrowley/go-metrics"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpcutil/grpcutil/metricsint"
)

// Example instruments a health server and its client with one registry,
// makes one call and reads the metrics back.
func Example() {
	reg := metrics.NewRegistry()

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	s := grpc.NewServer(
		grpc.ChainUnaryInterceptor(metricsint.NewUnaryServerInterceptor(reg, "rpc")),
		grpc.ChainStreamInterceptor(metricsint.NewStreamServerInterceptor(reg, "rpc")))
	healthpb.RegisterHealthServer(s, health.NewServer())
	go s.Serve(lis)
	defer s.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(metricsint.NewUnaryClientInterceptor(reg, "rpc")),
		grpc.WithChainStreamInterceptor(metricsint.NewStreamClientInterceptor(reg, "rpc")))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		log.Fatal(err)
	}

	for _, name := range []string{
		"rpc.grpc_health_v1_Health.Check.server.started",
		"rpc.grpc_health_v1_Health.Check.server.handled.OK",
		"rpc.grpc_health_v1_Health.Check.client.in_flight",
		"rpc.total.client.handled.OK",
	} {
		fmt.Println(name, reg.Get(name).(metrics.Counter).Count())
	}
	fmt.Println("rpc.grpc_health_v1_Health.Check.server.latency count",
		reg.Get("rpc.grpc_health_v1_Health.Check.server.latency").(metrics.Timer).Count())
	// Output:
	// rpc.grpc_health_v1_Health.Check.server.started 1
	// rpc.grpc_health_v1_Health.Check.server.handled.OK 1
	// rpc.grpc_health_v1_Health.Check.client.in_flight 0
	// rpc.total.client.handled.OK 1
	// rpc.grpc_health_v1_Health.Check.server.latency count 1
}

// mapBackend is a Backend of another kind: plain atomic counters and a
// no-op timer, kept in maps. It shows the seam; a real one would wrap a
// metrics library.
type mapBackend struct {
	mu       sync.Mutex
	counters map[string]*metrics.StandardCounter
	timers   map[string]metrics.Timer
}

func (m *mapBackend) Counter(name string) (metricsint.Counter, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.counters[name]
	if !ok {
		c = new(metrics.StandardCounter)
		m.counters[name] = c
	}
	return c, nil
}

func (m *mapBackend) Timer(name string) (metricsint.Timer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.timers[name]
	if !ok {
		t = metrics.NilTimer{}
		m.timers[name] = t
	}
	return t, nil
}

// ExampleNew plugs a Backend other than go-metrics' registry in through New.
func ExampleNew() {
	b := &mapBackend{counters: map[string]*metrics.StandardCounter{}, timers: map[string]metrics.Timer{}}
	ic, err := metricsint.New(b, "app.rpc")
	if err != nil {
		log.Fatal(err)
	}
	// Call the interceptor directly; a server would install it with
	// grpc.ChainUnaryInterceptor(ic.UnaryServer()).
	info := &grpc.UnaryServerInfo{FullMethod: "/shop.v1.Cart/Add"}
	ic.UnaryServer()(context.Background(), nil, info, func(context.Context, any) (any, error) { return nil, nil })
	fmt.Println(b.counters["app.rpc.shop_v1_Cart.Add.server.handled.OK"].Count())
	fmt.Println(b.counters["app.rpc.total.server.started"].Count())
	// Output:
	// 1
	// 1
}
