package metricsint_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	metrics "github.com/rcrowley/go-metrics"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/grpcutil/grpcutil/metricsint"
)

// BenchmarkUnaryRPC measures one unary RPC over loopback TCP without
// interceptors (Native), with pass-through interceptors (Noop) and with the
// metricsint server and client interceptors (Wrapped), in the same run.
// Compare allocs/op here; for time, BenchmarkUnaryRPCInterleaved is steadier
// on a loaded machine.
func BenchmarkUnaryRPC(b *testing.B) {
	b.Run("Native", func(b *testing.B) {
		benchRPC(b, startEnv(b, nil, nil))
	})
	b.Run("Noop", func(b *testing.B) {
		benchRPC(b, noopEnv(b))
	})
	b.Run("Wrapped", func(b *testing.B) {
		reg := metrics.NewRegistry()
		env := instrumented(b, reg)
		benchRPC(b, env)
		if got := reg.Get("rpc." + callName + ".server.handled.OK").(metrics.Counter).Count(); got < int64(b.N) {
			b.Fatalf("handled.OK = %d after %d calls", got, b.N)
		}
	})
}

// noopEnv starts a server and client with pass-through interceptors, to
// separate the cost of grpc-go's interceptor plumbing from ours.
func noopEnv(b *testing.B) *testEnv {
	return startEnv(b,
		[]grpc.ServerOption{grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			return h(ctx, req)
		})},
		[]grpc.DialOption{grpc.WithChainUnaryInterceptor(func(ctx context.Context, m string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return inv(ctx, m, req, reply, cc, opts...)
		})})
}

// BenchmarkUnaryRPCInterleaved runs the same loopback unary RPC on three
// connections, alternating batches between them (in a rotating order) so that
// the load of a shared machine falls on all three alike: native (no
// interceptors), noop (pass-through interceptors on both sides, which isolates
// grpc-go's interceptor plumbing) and metrics (metricsint on both sides). It
// reports for each the mean wall time per call and the mean CPU time per call
// of the whole process (client and server both live in it), and the ratios
// metrics/native and metrics/noop of both. The CPU ratios are the steadier
// figure on a loaded machine.
func BenchmarkUnaryRPCInterleaved(b *testing.B) {
	envs := []*testEnv{startEnv(b, nil, nil), noopEnv(b), instrumented(b, metrics.NewRegistry()), standardEnv(b)}
	ctx := context.Background()
	in := wrapperspb.String("hello")
	out := new(wrapperspb.StringValue)
	for _, env := range envs {
		if err := env.conn.Invoke(ctx, methodCall, in, out); err != nil {
			b.Fatal(err)
		}
	}
	var wall, cpu [4]time.Duration
	const batch = 64
	b.ResetTimer()
	for round, done := 0, 0; done < b.N; round, done = round+1, done+batch {
		n := min(batch, b.N-done)
		for k := range envs {
			i := (round + k) % len(envs)
			start, startCPU := time.Now(), processCPU(b)
			for range n {
				if err := envs[i].conn.Invoke(ctx, methodCall, in, out); err != nil {
					b.Fatal(err)
				}
			}
			cpu[i] += processCPU(b) - startCPU
			wall[i] += time.Since(start)
		}
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N) }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(per(wall[0]), "native-ns/call")
	b.ReportMetric(per(wall[2]), "metrics-ns/call")
	b.ReportMetric(float64(wall[2])/float64(wall[0]), "wall-metrics/native")
	b.ReportMetric(float64(wall[2])/float64(wall[1]), "wall-metrics/noop")
	b.ReportMetric(per(cpu[0]), "native-cpu-ns/call")
	b.ReportMetric(per(cpu[2]), "metrics-cpu-ns/call")
	b.ReportMetric(float64(cpu[2])/float64(cpu[0]), "cpu-metrics/native")
	b.ReportMetric(float64(cpu[2])/float64(cpu[1]), "cpu-metrics/noop")
	b.ReportMetric(float64(cpu[3])/float64(cpu[0]), "cpu-stdtimer/native")
}

// stdTimers is GoMetrics with go-metrics' own StandardTimer in place of the
// batching timer, for comparison.
type stdTimers struct {
	metricsint.Backend
	r metrics.Registry
}

func (s stdTimers) Timer(name string) (metricsint.Timer, error) {
	t, ok := s.r.GetOrRegister(name, metrics.NewTimer).(metrics.Timer)
	if !ok {
		return nil, errors.New("not a timer")
	}
	return t, nil
}

func standardEnv(b *testing.B) *testEnv {
	reg := metrics.NewRegistry()
	ic, err := metricsint.New(stdTimers{metricsint.GoMetrics(reg), reg}, "rpc")
	if err != nil {
		b.Fatal(err)
	}
	return startEnv(b,
		[]grpc.ServerOption{grpc.ChainUnaryInterceptor(ic.UnaryServer())},
		[]grpc.DialOption{grpc.WithChainUnaryInterceptor(ic.UnaryClient())})
}

// processCPU returns the user plus system CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchRPC(b *testing.B, env *testEnv) {
	ctx := context.Background()
	in := wrapperspb.String("hello")
	out := new(wrapperspb.StringValue)
	// Warm up the connection and the per-method cache.
	if err := env.conn.Invoke(ctx, methodCall, in, out); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := env.conn.Invoke(ctx, methodCall, in, out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInterceptor measures the interceptors alone around a handler or
// invoker that does nothing; Baseline is that handler called directly.
func BenchmarkInterceptor(b *testing.B) {
	ctx := context.Background()
	req := wrapperspb.String("hello")
	info := &grpc.UnaryServerInfo{FullMethod: methodCall}
	handler := func(context.Context, any) (any, error) { return req, nil }
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }

	b.Run("Baseline", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := handler(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UnaryServer", func(b *testing.B) {
		ui := metricsint.NewUnaryServerInterceptor(metrics.NewRegistry(), "rpc")
		b.ReportAllocs()
		for range b.N {
			if _, err := ui(ctx, req, info, handler); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UnaryClient", func(b *testing.B) {
		ci := metricsint.NewUnaryClientInterceptor(metrics.NewRegistry(), "rpc")
		b.ReportAllocs()
		for range b.N {
			if err := ci(ctx, methodCall, req, req, nil, invoker); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UnaryServerParallel", func(b *testing.B) {
		ui := metricsint.NewUnaryServerInterceptor(metrics.NewRegistry(), "rpc")
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := ui(ctx, req, info, handler); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
