package h2c

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// BenchmarkUnaryRPC compares, in one run, a loopback unary RPC on grpc-go's
// native transport (the baseline) with the same RPC through Dialer and
// Server (upgrade and prior knowledge, both reaching the native transport)
// and through the ServeHTTP path (x/net/http2 + grpc.Server.ServeHTTP).
//
//	go test -run '^$' -bench UnaryRPC -benchtime 20000x -count 3 ./h2c/
func BenchmarkUnaryRPC(b *testing.B) {
	payload := make([]byte, 64)
	run := func(b *testing.B, cc grpc.ClientConnInterface) {
		ctx := context.Background()
		in := payload
		var out []byte
		if err := cc.Invoke(ctx, "/h2ctest.Echo/Unary", &in, &out); err != nil { // connect
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if err := cc.Invoke(ctx, "/h2ctest.Echo/Unary", &in, &out); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("Native", func(b *testing.B) {
		gs := newGRPCServer(b)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go gs.Serve(ln)
		cc, err := grpc.NewClient("passthrough:///"+ln.Addr().String(),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(bytesCodec{})))
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Close()
		run(b, cc)
	})
	b.Run("DialerUpgrade", func(b *testing.B) {
		gs := newGRPCServer(b)
		addr := startServer(b, &Server{HTTP2Handler: gs})
		run(b, newClient(b, addr, Dialer{}))
	})
	b.Run("DialerPriorKnowledge", func(b *testing.B) {
		gs := newGRPCServer(b)
		addr := startServer(b, &Server{HTTP2Handler: gs})
		run(b, newClient(b, addr, Dialer{PriorKnowledge: true}))
	})
	b.Run("ServeHTTP", func(b *testing.B) {
		gs := newGRPCServer(b)
		addr := startServer(b, &Server{HTTP2Handler: http.HandlerFunc(gs.ServeHTTP)})
		run(b, newClient(b, addr, Dialer{}))
	})
}

// BenchmarkUnaryRPCRatio measures the same four paths as BenchmarkUnaryRPC
// but interleaved call by call, so that load from other processes falls on
// all of them alike, and reports throughput relative to the native transport
// (native time per call / path time per call; 1.0 is native speed).
//
//	go test -run '^$' -bench UnaryRPCRatio -benchtime 20000x ./h2c/
func BenchmarkUnaryRPCRatio(b *testing.B) {
	gs := newGRPCServer(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go gs.Serve(ln)
	native, err := grpc.NewClient("passthrough:///"+ln.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(bytesCodec{})))
	if err != nil {
		b.Fatal(err)
	}
	defer native.Close()
	addr := startServer(b, &Server{HTTP2Handler: gs})
	gs2 := newGRPCServer(b)
	slowAddr := startServer(b, &Server{HTTP2Handler: http.HandlerFunc(gs2.ServeHTTP)})
	paths := []struct {
		name string
		cc   grpc.ClientConnInterface
		d    time.Duration
	}{
		{"native", native, 0},
		{"upgrade", newClient(b, addr, Dialer{}), 0},
		{"prior", newClient(b, addr, Dialer{PriorKnowledge: true}), 0},
		{"servehttp", newClient(b, slowAddr, Dialer{}), 0},
	}
	ctx := context.Background()
	in := make([]byte, 64)
	var out []byte
	for _, p := range paths { // connect
		if err := p.cc.Invoke(ctx, "/h2ctest.Echo/Unary", &in, &out); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		for j := range paths {
			i := (n + j) % len(paths) // rotate the order: no path always goes first
			start := time.Now()
			if err := paths[i].cc.Invoke(ctx, "/h2ctest.Echo/Unary", &in, &out); err != nil {
				b.Fatal(err)
			}
			paths[i].d += time.Since(start)
		}
	}
	for _, p := range paths[1:] {
		b.ReportMetric(float64(paths[0].d)/float64(p.d), p.name+"/native")
	}
	b.ReportMetric(float64(paths[0].d)/float64(b.N), "native-ns/call")
}
