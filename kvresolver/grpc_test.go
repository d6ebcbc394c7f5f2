package kvresolver_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/grpcutil/grpcutil/kvresolver"
	"github.com/grpcutil/grpcutil/kvstore"
	"github.com/grpcutil/grpcutil/kvstore/kvstoretest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	interval  = 50 * time.Millisecond
	heartbeat = 50 * time.Millisecond
	// ttl is long enough that a loaded machine does not let a live
	// server's record lapse between heartbeats.
	ttl = 5 * time.Second
	// eventually bounds waits for eventual behaviour; generous, as the
	// machine is shared.
	eventually = 30 * time.Second
)

var errBoom = errors.New("boom")

// counter is a health service that counts the calls it serves.
type counter struct {
	healthpb.UnimplementedHealthServer
	n *atomic.Int64
}

func (c counter) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	c.n.Add(1)
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// backend is a real grpc-go server on loopback.
type backend struct {
	addr  string
	calls atomic.Int64
	srv   *grpc.Server
	done  chan struct{}
	reg   *kvresolver.Registration
}

func startBackend(t testing.TB) *backend {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: lis.Addr().String(), srv: grpc.NewServer(), done: make(chan struct{})}
	healthpb.RegisterHealthServer(b.srv, counter{n: &b.calls})
	go func() {
		defer close(b.done)
		b.srv.Serve(lis)
	}()
	t.Cleanup(b.stop)
	return b
}

func (b *backend) stop() {
	b.srv.Stop()
	<-b.done
}

// register announces b under "hello" in s.
func (b *backend) register(t testing.TB, s kvstore.Store, opts ...kvresolver.RegisterOption) {
	t.Helper()
	opts = append([]kvresolver.RegisterOption{kvresolver.WithHeartbeat(heartbeat), kvresolver.WithTTL(ttl)}, opts...)
	reg, err := kvresolver.Register(context.Background(), s, "hello", b.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	b.reg = reg
	t.Cleanup(func() { reg.Close() })
}

func newClient(t testing.TB, lookup kvresolver.LookupFunc, opts ...kvresolver.Option) healthpb.HealthClient {
	t.Helper()
	opts = append([]kvresolver.Option{kvresolver.WithInterval(interval)}, opts...)
	rb, err := kvresolver.NewBuilder(lookup, opts...)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("kv:///hello", grpc.WithResolvers(rb), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// rpcs makes n calls one after the other and returns the first error.
func rpcs(c healthpb.HealthClient, n int) error {
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), eventually)
		_, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// until makes calls, which must all succeed, until cond holds.
func until(t *testing.T, c healthpb.HealthClient, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(eventually)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		if err := rpcs(c, 1); err != nil {
			t.Fatalf("RPC failed while waiting until %s: %v", what, err)
		}
	}
}

// quiet makes calls until b gets none in a batch of 30.
func quiet(t *testing.T, c healthpb.HealthClient, b *backend) {
	t.Helper()
	until(t, c, b.addr+" gets no traffic", func() bool {
		n := b.calls.Load()
		if err := rpcs(c, 30); err != nil {
			t.Fatalf("RPC failed: %v", err)
		}
		return b.calls.Load() == n
	})
}

func counts(bs ...*backend) []int64 {
	var ns []int64
	for _, b := range bs {
		ns = append(ns, b.calls.Load())
	}
	return ns
}

func reset(bs ...*backend) {
	for _, b := range bs {
		b.calls.Store(0)
	}
}

func TestRoundRobinOverRegistry(t *testing.T) {
	store := kvstore.NewMemory()
	var bs []*backend
	for range 3 {
		b := startBackend(t)
		b.register(t, store)
		bs = append(bs, b)
	}
	client := newClient(t, kvresolver.StoreLookup(store, ""))
	until(t, client, "all three servers get traffic", func() bool {
		return bs[0].calls.Load() > 0 && bs[1].calls.Load() > 0 && bs[2].calls.Load() > 0
	})

	// An even share of 300 calls.
	reset(bs...)
	if err := rpcs(client, 300); err != nil {
		t.Fatal(err)
	}
	for i, n := range counts(bs...) {
		if n < 95 || n > 105 {
			t.Fatalf("server %d served %d of 300 calls (all: %v), want about 100", i, n, counts(bs...))
		}
	}

	// A fourth server registers and gets traffic.
	b4 := startBackend(t)
	b4.register(t, store)
	until(t, client, "the new server gets traffic", func() bool { return b4.calls.Load() > 0 })
	bs = append(bs, b4)

	// One deregisters: its traffic stops, and no call fails (it still
	// runs, so a call already routed to it completes).
	if err := bs[0].reg.Close(); err != nil {
		t.Fatal(err)
	}
	quiet(t, client, bs[0])
	reset(bs...)
	if err := rpcs(client, 300); err != nil {
		t.Fatal(err)
	}
	got := counts(bs...)
	if got[0] != 0 {
		t.Fatalf("deregistered server served %d calls", got[0])
	}
	for i, n := range got[1:] {
		if n < 95 || n > 105 {
			t.Fatalf("server %d served %d of 300 calls (all: %v), want about 100", i+1, n, got)
		}
	}
	// Now it can go.
	bs[0].stop()
	if err := rpcs(client, 30); err != nil {
		t.Fatal(err)
	}
}

func TestStoreFailureKeepsLastGoodSet(t *testing.T) {
	mem := kvstore.NewMemory()
	faulty := kvstoretest.NewFaulty(mem)
	var bs []*backend
	for range 3 {
		b := startBackend(t)
		b.register(t, mem)
		bs = append(bs, b)
	}
	client := newClient(t, kvresolver.StoreLookup(faulty, ""), kvresolver.WithLookupTimeout(200*time.Millisecond))
	until(t, client, "all three servers get traffic", func() bool {
		return bs[0].calls.Load() > 0 && bs[1].calls.Load() > 0 && bs[2].calls.Load() > 0
	})

	// The store fails for readers; meanwhile a server comes and one goes.
	for _, tc := range []struct {
		name string
		fail func()
	}{
		{"errors", func() { faulty.Fail(kvstoretest.OpList|kvstoretest.OpGet, errBoom) }},
		{"list errors only", func() { faulty.Fail(kvstoretest.OpList, errBoom) }},
		{"get errors only", func() { faulty.Fail(kvstoretest.OpGet, errBoom) }},
		// Every lookup times out.
		{"hangs", func() { faulty.SetLatency(time.Hour) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fail()
			before := faulty.Calls(kvstoretest.OpList)
			b4 := startBackend(t)
			b4.register(t, mem)
			if err := bs[0].reg.Close(); err != nil {
				t.Fatal(err)
			}
			until(t, client, "a few lookups failed", func() bool { return faulty.Calls(kvstoretest.OpList) >= before+3 })

			// Traffic flows on the last good set: the old three, the
			// deregistered one too, not the new one.
			reset(bs...)
			if err := rpcs(client, 300); err != nil {
				t.Fatalf("RPC failed while the store fails: %v", err)
			}
			for i, n := range counts(bs...) {
				if n < 95 || n > 105 {
					t.Fatalf("server %d served %d of 300 calls (all: %v), want about 100", i, n, counts(bs...))
				}
			}
			if n := b4.calls.Load(); n != 0 {
				t.Fatalf("server the resolver cannot have seen served %d calls", n)
			}

			// The store recovers: changes are picked up.
			faulty.Heal()
			until(t, client, "the new server gets traffic", func() bool { return b4.calls.Load() > 0 })
			quiet(t, client, bs[0])

			// Back to the three for the next case.
			b4.reg.Close()
			bs[0].register(t, mem)
			until(t, client, "the old server gets traffic again", func() bool { return bs[0].calls.Load() > 0 })
			quiet(t, client, b4)
		})
	}
}

func TestLookupTimeoutKeepsTraffic(t *testing.T) {
	b := startBackend(t)
	var slow atomic.Bool
	lookup := func(ctx context.Context, _ string) ([]string, error) {
		if slow.Load() {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return []string{b.addr}, nil
	}
	client := newClient(t, lookup, kvresolver.WithLookupTimeout(20*time.Millisecond))
	if err := rpcs(client, 10); err != nil {
		t.Fatal(err)
	}
	slow.Store(true)
	if err := rpcs(client, 100); err != nil {
		t.Fatal(err)
	}
}

func TestAbandonedRegistrationExpires(t *testing.T) {
	mem := kvstore.NewMemory()
	var bs []*backend
	for range 3 {
		b := startBackend(t)
		bs = append(bs, b)
	}
	// bs[0] registers through a store it will lose: its heartbeats and
	// its final Delete fail, as when its process dies.
	lost := kvstoretest.NewFaulty(mem)
	bs[0].register(t, lost, kvresolver.WithTTL(500*time.Millisecond))
	bs[1].register(t, mem)
	bs[2].register(t, mem)
	client := newClient(t, kvresolver.StoreLookup(mem, ""))
	until(t, client, "all three servers get traffic", func() bool {
		return bs[0].calls.Load() > 0 && bs[1].calls.Load() > 0 && bs[2].calls.Load() > 0
	})

	lost.Fail(kvstoretest.OpPut|kvstoretest.OpDelete, errBoom)
	quiet(t, client, bs[0])
	if _, err := mem.Get(context.Background(), bs[0].reg.Key()); err != nil {
		t.Fatalf("the record should still be in the store, expired: %v", err)
	}
	reset(bs...)
	if err := rpcs(client, 100); err != nil {
		t.Fatal(err)
	}
	if got := counts(bs...); got[0] != 0 || got[1] == 0 || got[2] == 0 {
		t.Fatalf("calls %v, want none to the expired server", got)
	}
	if err := bs[0].reg.Close(); !errors.Is(err, errBoom) {
		t.Fatalf("Close of a registration that cannot delete: %v", err)
	}
}

func TestNoGoroutineAfterClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	store := kvstore.NewMemory()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	var n atomic.Int64
	healthpb.RegisterHealthServer(srv, counter{n: &n})
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(lis)
	}()
	reg, err := kvresolver.Register(context.Background(), store, "hello", lis.Addr().String(), kvresolver.WithHeartbeat(heartbeat))
	if err != nil {
		t.Fatal(err)
	}
	rb, err := kvresolver.NewBuilder(kvresolver.StoreLookup(store, ""), kvresolver.WithInterval(interval))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("kv:///hello", grpc.WithResolvers(rb), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	if err := rpcs(healthpb.NewHealthClient(conn), 10); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	<-served
	if keys, _ := store.List(context.Background(), ""); len(keys) != 0 {
		t.Fatalf("keys left after Close: %v", keys)
	}
}

func TestBadInputThroughGRPC(t *testing.T) {
	store := kvstore.NewMemory()
	store.Put(context.Background(), "services/junk/10.0.0.1:80", []byte("\x00\x01 not json"))
	for _, tc := range []struct {
		name, target string
		lookup       kvresolver.LookupFunc
		want         string
	}{
		{"no name", "kv:///", kvresolver.StoreLookup(store, ""), `kvresolver: target "kv:///" has no name (want kv:///<name>)`},
		{"malformed address", "kv:///hello", func(context.Context, string) ([]string, error) { return []string{"10.0.0.1"}, nil },
			`kvresolver: lookup of "hello" returned no valid address: kvresolver: invalid address "10.0.0.1": address 10.0.0.1: missing port in address`},
		{"garbage record", "kv:///junk", kvresolver.StoreLookup(store, ""),
			`kvresolver: lookup of "junk": kvresolver: no valid record under "services/junk/", 1 malformed: "services/junk/10.0.0.1:80": kvresolver: invalid record: want '{' at byte 0, got '\x00'`},
		{"lookup fails", "kv:///hello", func(context.Context, string) ([]string, error) { return nil, errBoom }, `kvresolver: lookup of "hello": boom`},
		{"nobody registered", "kv:///hello", kvresolver.StoreLookup(store, ""), `kvresolver: lookup of "hello" found no addresses`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rb, err := kvresolver.NewBuilder(tc.lookup, kvresolver.WithInterval(interval))
			if err != nil {
				t.Fatal(err)
			}
			conn, err := grpc.NewClient(tc.target, grpc.WithResolvers(rb), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), eventually)
			defer cancel()
			_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("RPC error %v, want Unavailable with %q", err, tc.want)
			}
		})
	}
}

// countingBuilder counts the ResolveNow calls grpc-go makes.
type countingBuilder struct {
	*kvresolver.Builder
	resolveNows atomic.Int64
	mu          sync.Mutex
	rs          []resolver.Resolver
}

type countingResolver struct {
	resolver.Resolver
	b *countingBuilder
}

func (r countingResolver) ResolveNow(o resolver.ResolveNowOptions) {
	r.b.resolveNows.Add(1)
	r.Resolver.ResolveNow(o)
}

func (b *countingBuilder) Build(t resolver.Target, cc resolver.ClientConn, o resolver.BuildOptions) (resolver.Resolver, error) {
	r, err := b.Builder.Build(t, cc, o)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rs = append(b.rs, r)
	return countingResolver{r, b}, nil
}

// lookupLoad runs a channel over subconns servers that all refuse
// connections, so grpc-go keeps asking for re-resolution, and spammers
// goroutines that call ResolveNow as fast as they can, for about d. It
// returns the lookups and the ResolveNow calls grpc-go and the spammers made.
func lookupLoad(tb testing.TB, subconns, spammers int, every, d time.Duration) (lookups, grpcCalls, spamCalls int64, elapsed time.Duration) {
	var addrs []string
	for range subconns {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addrs = append(addrs, lis.Addr().String())
		lis.Close() // connections are refused
	}
	var n atomic.Int64
	lookup := func(context.Context, string) ([]string, error) {
		n.Add(1)
		return addrs, nil
	}
	kb, err := kvresolver.NewBuilder(lookup, kvresolver.WithInterval(every))
	if err != nil {
		tb.Fatal(err)
	}
	cb := &countingBuilder{Builder: kb}
	conn, err := grpc.NewClient("kv:///hello", grpc.WithResolvers(cb), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	conn.Connect()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var spam atomic.Int64
	for range spammers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				cb.mu.Lock()
				rs := cb.rs
				cb.mu.Unlock()
				for _, r := range rs {
					r.ResolveNow(resolver.ResolveNowOptions{})
					spam.Add(1)
				}
			}
		})
	}
	timer := time.NewTimer(d)
	<-timer.C
	close(stop)
	wg.Wait()
	return n.Load(), cb.resolveNows.Load(), spam.Load(), time.Since(start)
}

func TestLookupsStayAtOnePerInterval(t *testing.T) {
	const every = 50 * time.Millisecond
	lookups, grpcCalls, spamCalls, elapsed := lookupLoad(t, 20, 4, every, time.Second)
	resolveNows := grpcCalls + spamCalls
	// One lookup on Build and at most one per interval after it; a slow
	// machine makes fewer, never more.
	if limit := int64(elapsed/every) + 1; lookups > limit {
		t.Fatalf("%d lookups in %v with a %v interval (limit %d) under %d ResolveNow calls", lookups, elapsed, every, limit, resolveNows)
	}
	if resolveNows < 100 {
		t.Fatalf("only %d ResolveNow calls: the test did not load the resolver", resolveNows)
	}
	t.Logf("%d lookups in %v, %d ResolveNow calls from grpc-go, %d more", lookups, elapsed, grpcCalls, spamCalls)
}

func BenchmarkLookupsPerInterval(b *testing.B) {
	const every = 20 * time.Millisecond
	for _, subconns := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("subconns=%d", subconns), func(b *testing.B) {
			lookups, grpcCalls, spamCalls, elapsed := lookupLoad(b, subconns, 1, every, time.Duration(b.N)*every)
			intervals := float64(elapsed) / float64(every)
			b.ReportMetric(float64(lookups)/intervals, "lookups/interval")
			b.ReportMetric(float64(grpcCalls)/intervals, "grpc-resolvenows/interval")
			b.ReportMetric(float64(spamCalls)/intervals, "extra-resolvenows/interval")
		})
	}
}
