package metricsint_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metrics "github.com/rcrowley/go-metrics"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/grpcutil/grpcutil/metricsint"
)

// go-metrics ticks every Meter (inside each Timer) from one package-level
// goroutine that never stops by design; it is not ours to leak.
var ignoreArbiter = goleak.IgnoreAnyFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, ignoreArbiter)
}

// instrumented starts a server and client that both record into reg under
// "rpc", using the four New*Interceptor functions.
func instrumented(t testing.TB, reg metrics.Registry, opts ...metricsint.Option) *testEnv {
	t.Helper()
	return startEnv(t,
		[]grpc.ServerOption{
			grpc.ChainUnaryInterceptor(metricsint.NewUnaryServerInterceptor(reg, "rpc", opts...)),
			grpc.ChainStreamInterceptor(metricsint.NewStreamServerInterceptor(reg, "rpc", opts...)),
		},
		[]grpc.DialOption{
			grpc.WithChainUnaryInterceptor(metricsint.NewUnaryClientInterceptor(reg, "rpc", opts...)),
			grpc.WithChainStreamInterceptor(metricsint.NewStreamClientInterceptor(reg, "rpc", opts...)),
		})
}

// count returns the count of the Counter or Timer named name, failing the
// test when there is none.
func count(t testing.TB, reg metrics.Registry, name string) int64 {
	t.Helper()
	switch m := reg.Get(name).(type) {
	case metrics.Counter:
		return m.Count()
	case metrics.Timer:
		return m.Count()
	case nil:
		t.Fatalf("metric %q is not registered", name)
	default:
		t.Fatalf("metric %q is a %T", name, m)
	}
	return 0
}

// expect checks the counts of the named metrics.
func expect(t testing.TB, reg metrics.Registry, want map[string]int64) {
	t.Helper()
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if got := count(t, reg, n); got != want[n] {
			t.Errorf("%s = %d, want %d", n, got, want[n])
		}
	}
}

// both returns want with every "<side>" in its keys replaced by server and
// by client.
func both(want map[string]int64) map[string]int64 {
	out := make(map[string]int64, 2*len(want))
	for k, v := range want {
		out[strings.ReplaceAll(k, "<side>", "server")] = v
		out[strings.ReplaceAll(k, "<side>", "client")] = v
	}
	return out
}

func TestUnaryCounts(t *testing.T) {
	reg := metrics.NewRegistry()
	env := instrumented(t, reg)
	ctx := testCtx(t)
	const n = 25
	for i := range n {
		if err := env.call(ctx, fmt.Sprint("hello ", i)); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, reg, both(map[string]int64{
		"rpc." + callName + ".<side>.started":    n,
		"rpc." + callName + ".<side>.handled.OK": n,
		"rpc." + callName + ".<side>.latency":    n,
		"rpc." + callName + ".<side>.in_flight":  0,
		"rpc.total.<side>.started":               n,
		"rpc.total.<side>.handled.OK":            n,
		"rpc.total.<side>.latency":               n,
		"rpc.total.<side>.in_flight":             0,
		"rpc.total.<side>.msg_sent":              0,
		"rpc.total.<side>.msg_received":          0,
	}))
	if lat := reg.Get("rpc." + callName + ".server.latency").(metrics.Timer); lat.Min() <= 0 {
		t.Errorf("server latency min = %d, want > 0", lat.Min())
	}
}

func TestPerCodeCounts(t *testing.T) {
	reg := metrics.NewRegistry()
	env := instrumented(t, reg)
	ctx := testCtx(t)
	calls := []struct {
		value string
		code  codes.Code
		times int
	}{
		{"ok", codes.OK, 3},
		{"notfound", codes.NotFound, 2},
		{"internal", codes.Internal, 4},
	}
	for _, c := range calls {
		for range c.times {
			if got := status.Code(env.call(ctx, c.value)); got != c.code {
				t.Fatalf("call(%q) = %v, want %v", c.value, got, c.code)
			}
		}
	}
	expect(t, reg, both(map[string]int64{
		"rpc." + callName + ".<side>.started":          9,
		"rpc." + callName + ".<side>.handled.OK":       3,
		"rpc." + callName + ".<side>.handled.NotFound": 2,
		"rpc." + callName + ".<side>.handled.Internal": 4,
		"rpc." + callName + ".<side>.latency":          9,
		"rpc." + callName + ".<side>.in_flight":        0,
		"rpc.total.<side>.started":                     9,
		"rpc.total.<side>.handled.OK":                  3,
		"rpc.total.<side>.handled.NotFound":            2,
		"rpc.total.<side>.handled.Internal":            4,
	}))
	// Codes that never happened have no metric.
	if m := reg.Get("rpc." + callName + ".server.handled.Unavailable"); m != nil {
		t.Errorf("handled.Unavailable registered: %v", m)
	}
}

func TestStreamCounts(t *testing.T) {
	reg := metrics.NewRegistry()
	env := instrumented(t, reg)
	ctx := testCtx(t)
	if err := env.chat(ctx, "a", "b", "c", "d", "e"); err != nil {
		t.Fatal(err)
	}
	if err := env.chat(ctx, "x", "fail"); status.Code(err) != codes.Internal {
		t.Fatalf("chat(fail) = %v, want Internal", err)
	}
	if err := env.chat(ctx); err != nil {
		t.Fatal(err)
	}
	// One unary call so the totals mix both kinds.
	if err := env.call(ctx, "hi"); err != nil {
		t.Fatal(err)
	}
	expect(t, reg, both(map[string]int64{
		"rpc." + chatName + ".<side>.started":          3,
		"rpc." + chatName + ".<side>.handled.OK":       2,
		"rpc." + chatName + ".<side>.handled.Internal": 1,
		"rpc." + chatName + ".<side>.latency":          3,
		"rpc." + chatName + ".<side>.in_flight":        0,
		"rpc." + chatName + ".<side>.msg_sent":         7,
		"rpc." + chatName + ".<side>.msg_received":     7,
		"rpc.total.<side>.started":                     4,
		"rpc.total.<side>.handled.OK":                  3,
		"rpc.total.<side>.handled.Internal":            1,
		"rpc.total.<side>.msg_sent":                    7,
		"rpc.total.<side>.msg_received":                7,
		"rpc.total.<side>.in_flight":                   0,
	}))
}

// TestNames checks that the registry holds exactly the names doc.go
// documents, and that each is safe for the exporters.
func TestNames(t *testing.T) {
	reg := metrics.NewRegistry()
	metrics.GetOrRegisterCounter("user.own", reg).Inc(1) // shares the registry
	env := instrumented(t, reg)
	ctx := testCtx(t)
	if err := env.call(ctx, "ok"); err != nil {
		t.Fatal(err)
	}
	if err := env.call(ctx, "notfound"); status.Code(err) != codes.NotFound {
		t.Fatal(err)
	}
	if err := env.chat(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	var got []string
	reg.Each(func(name string, _ any) { got = append(got, name) })
	sort.Strings(got)
	var want []string
	for _, side := range []string{"client", "server"} {
		for _, base := range []string{"rpc." + callName, "rpc." + chatName, "rpc.total"} {
			p := base + "." + side + "."
			want = append(want, p+"started", p+"handled.OK", p+"latency", p+"in_flight")
			if base != "rpc."+callName {
				want = append(want, p+"msg_sent", p+"msg_received")
			}
			if base != "rpc."+chatName {
				want = append(want, p+"handled.NotFound")
			}
		}
	}
	want = append(want, "user.own")
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("registered names:\n got %q\nwant %q", got, want)
	}
	for _, n := range got {
		for _, r := range n {
			if !(r == '.' || r == '_' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
				t.Errorf("name %q has %q", n, r)
			}
		}
	}
}

func TestInFlight(t *testing.T) {
	reg := metrics.NewRegistry()
	env := instrumented(t, reg)
	ctx := testCtx(t)
	const k = 4
	errs := make(chan error, k)
	for range k {
		go func() { errs <- env.call(ctx, "block") }()
	}
	for range k {
		select {
		case <-env.srv.entered:
		case <-ctx.Done():
			t.Fatal("blocked calls did not reach the handler")
		}
	}
	// Every client interceptor has begun before its call reached the
	// server, and no handler has returned.
	expect(t, reg, both(map[string]int64{
		"rpc." + callName + ".<side>.in_flight": k,
		"rpc.total.<side>.in_flight":            k,
		"rpc." + callName + ".<side>.started":   k,
	}))
	close(env.srv.release)
	for range k {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	expect(t, reg, both(map[string]int64{
		"rpc." + callName + ".<side>.in_flight":  0,
		"rpc.total.<side>.in_flight":             0,
		"rpc." + callName + ".<side>.handled.OK": k,
	}))
}

// TestClientStreamCancel checks that a client stream abandoned by cancelling
// its context still ends (through grpc.OnFinish), and that a stream whose
// creation fails is counted exactly once.
func TestClientStreamCancel(t *testing.T) {
	reg := metrics.NewRegistry()
	env := instrumented(t, reg)
	ctx := testCtx(t)

	sctx, cancel := context.WithCancel(ctx)
	cs, err := env.conn.NewStream(sctx, &echoDesc.Streams[0], methodChat)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(wrapperspb.String("a")); err != nil {
		t.Fatal(err)
	}
	if err := cs.RecvMsg(new(wrapperspb.StringValue)); err != nil {
		t.Fatal(err)
	}
	cancel() // abandon the stream without reading to the end
	waitFor(t, func() bool {
		return count(t, reg, "rpc."+chatName+".client.in_flight") == 0 &&
			count(t, reg, "rpc."+chatName+".server.in_flight") == 0
	})

	dead, cancelDead := context.WithCancel(ctx)
	cancelDead()
	if _, err := env.conn.NewStream(dead, &echoDesc.Streams[0], methodChat); status.Code(err) != codes.Canceled {
		t.Fatalf("NewStream(cancelled ctx) = %v, want Canceled", err)
	}
	expect(t, reg, map[string]int64{
		"rpc." + chatName + ".client.started":          2,
		"rpc." + chatName + ".client.handled.Canceled": 2,
		"rpc." + chatName + ".client.latency":          2,
		"rpc." + chatName + ".client.in_flight":        0,
		"rpc." + chatName + ".client.msg_sent":         1,
		"rpc." + chatName + ".client.msg_received":     1,
		"rpc." + chatName + ".server.started":          1,
		"rpc." + chatName + ".server.handled.Canceled": 1,
		"rpc.total.client.in_flight":                   0,
	})
}

// waitFor polls cond until it holds or a generous deadline passes; used only
// where the behaviour under test is eventual (a context cancellation seen by
// grpc-go's own goroutines).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met before the deadline")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConcurrent(t *testing.T) {
	reg := metrics.NewRegistry()
	env := instrumented(t, reg)
	ctx := testCtx(t)
	const workers, per = 8, 30
	values := []string{"ok", "notfound", "internal"}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				v := values[(w+i)%len(values)]
				if i%5 == 0 {
					if err := env.chat(ctx, v, v); err != nil {
						errs <- err
						return
					}
					continue
				}
				if err := env.call(ctx, v); v == "ok" && err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	streams := int64(workers * per / 5)
	unary := int64(workers*per) - streams
	var ok, nf, in int64
	for w := range workers {
		for i := range per {
			if i%5 == 0 {
				continue
			}
			switch values[(w+i)%len(values)] {
			case "ok":
				ok++
			case "notfound":
				nf++
			default:
				in++
			}
		}
	}
	expect(t, reg, both(map[string]int64{
		"rpc." + callName + ".<side>.started":          unary,
		"rpc." + callName + ".<side>.handled.OK":       ok,
		"rpc." + callName + ".<side>.handled.NotFound": nf,
		"rpc." + callName + ".<side>.handled.Internal": in,
		"rpc." + chatName + ".<side>.started":          streams,
		"rpc." + chatName + ".<side>.handled.OK":       streams,
		"rpc." + chatName + ".<side>.msg_sent":         2 * streams,
		"rpc." + chatName + ".<side>.msg_received":     2 * streams,
		"rpc.total.<side>.started":                     unary + streams,
		"rpc.total.<side>.latency":                     unary + streams,
		"rpc.total.<side>.in_flight":                   0,
	}))
}

// TestGoMetricsPanics pins down the go-metrics behaviour this package works
// around: its GetOrRegisterCounter panics on a name that holds a Timer.
func TestGoMetricsPanics(t *testing.T) {
	reg := metrics.NewRegistry()
	metrics.GetOrRegisterTimer("x", reg)
	defer func() {
		if recover() == nil {
			t.Error("GetOrRegisterCounter on a Timer's name did not panic")
		}
	}()
	metrics.GetOrRegisterCounter("x", reg)
}

func TestNewConflict(t *testing.T) {
	tests := []struct {
		name    string
		taken   string
		metric  any
		wantErr string
	}{
		{
			name:    "counter name holds a timer",
			taken:   "rpc.total.server.started",
			metric:  metrics.NewTimer(),
			wantErr: `metricsint: metric "rpc.total.server.started" is already registered as *metrics.StandardTimer, not metrics.Counter`,
		},
		{
			name:    "timer name holds a counter",
			taken:   "rpc.total.client.latency",
			metric:  metrics.NewCounter(),
			wantErr: `metricsint: metric "rpc.total.client.latency" is already registered as *metrics.StandardCounter, not metrics.Timer`,
		},
		{
			name:    "counter name holds a gauge",
			taken:   "rpc.total.client.msg_sent",
			metric:  metrics.NewGauge(),
			wantErr: `metricsint: metric "rpc.total.client.msg_sent" is already registered as *metrics.StandardGauge, not metrics.Counter`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := metrics.NewRegistry()
			if err := reg.Register(tt.taken, tt.metric); err != nil {
				t.Fatal(err)
			}
			ic, err := metricsint.New(metricsint.GoMetrics(reg), "rpc")
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("New error = %v, want %q", err, tt.wantErr)
			}
			var ce *metricsint.ConflictError
			if !errors.As(err, &ce) || ce.Name != tt.taken {
				t.Errorf("error %v is not a *ConflictError for %q", err, tt.taken)
			}
			if ic != nil {
				t.Error("New returned interceptors with an error")
			}
			if reg.Get(tt.taken) != tt.metric {
				t.Error("the user's metric was replaced")
			}
		})
	}
	if _, err := metricsint.New(nil, "rpc"); err == nil || err.Error() != "metricsint: nil backend" {
		t.Errorf("New(nil) error = %v", err)
	}
}

// TestConflictFallback checks the New*Interceptor functions: a conflicting
// name is reported once to the error handler and not recorded, everything
// else is recorded, nothing panics.
func TestConflictFallback(t *testing.T) {
	reg := metrics.NewRegistry()
	userTimer := metrics.NewTimer()
	userGauge := metrics.NewGauge()
	mustRegister(t, reg, "rpc.total.server.started", userTimer)                      // totals, at construction
	mustRegister(t, reg, "rpc."+callName+".client.latency", metrics.NewCounter())    // per method
	mustRegister(t, reg, "rpc."+callName+".server.handled.NotFound", userGauge)      // per code
	mustRegister(t, reg, "rpc."+chatName+".server.msg_received", metrics.NewMeter()) // stream

	var mu sync.Mutex
	var reported []string
	handler := metricsint.WithErrorHandler(func(err error) {
		var ce *metricsint.ConflictError
		if !errors.As(err, &ce) {
			t.Errorf("reported error %v is not a *ConflictError", err)
			return
		}
		mu.Lock()
		reported = append(reported, ce.Name)
		mu.Unlock()
	})
	env := instrumented(t, reg, handler)
	ctx := testCtx(t)
	for range 3 {
		if err := env.call(ctx, "ok"); err != nil {
			t.Fatal(err)
		}
		if err := env.call(ctx, "notfound"); status.Code(err) != codes.NotFound {
			t.Fatal(err)
		}
		if err := env.chat(ctx, "a", "b"); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	sort.Strings(reported)
	got := slices.Clone(reported)
	mu.Unlock()
	// The unary and the stream server interceptors each resolve the
	// totals, so that conflict is reported by both.
	want := []string{
		"rpc." + callName + ".client.latency",
		"rpc." + callName + ".server.handled.NotFound",
		"rpc." + chatName + ".server.msg_received",
		"rpc.total.server.started",
		"rpc.total.server.started",
	}
	if !slices.Equal(got, want) {
		t.Errorf("reported conflicts:\n got %q\nwant %q", got, want)
	}
	if userTimer.Count() != 0 || userGauge.Value() != 0 {
		t.Error("the user's metrics were written to")
	}
	expect(t, reg, map[string]int64{
		"rpc." + callName + ".client.started":          6,
		"rpc." + callName + ".client.handled.NotFound": 3,
		"rpc." + callName + ".server.started":          6,
		"rpc." + callName + ".server.handled.OK":       3,
		"rpc." + callName + ".server.latency":          6,
		"rpc." + chatName + ".server.msg_sent":         6,
		"rpc.total.server.handled.OK":                  6,
		"rpc.total.server.msg_received":                6,
		"rpc.total.client.started":                     9,
	})
}

func mustRegister(t *testing.T, reg metrics.Registry, name string, m any) {
	t.Helper()
	if err := reg.Register(name, m); err != nil {
		t.Fatal(err)
	}
}

// TestMaxMethods sends arbitrary method names to a server with an unknown
// service handler: only the first ones get their own metrics.
func TestMaxMethods(t *testing.T) {
	reg := metrics.NewRegistry()
	unknown := func(srv any, stream grpc.ServerStream) error {
		return status.Error(codes.Unimplemented, "no such method")
	}
	env := startEnv(t, []grpc.ServerOption{
		grpc.UnknownServiceHandler(unknown),
		grpc.ChainStreamInterceptor(metricsint.NewStreamServerInterceptor(reg, "rpc", metricsint.WithMaxMethods(2))),
	}, nil)
	ctx := testCtx(t)
	for i := range 5 {
		m := fmt.Sprintf("/peer.Chosen%d/Name", i)
		err := env.conn.Invoke(ctx, m, wrapperspb.String("x"), new(wrapperspb.StringValue))
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("Invoke(%s) = %v", m, err)
		}
	}
	expect(t, reg, map[string]int64{
		"rpc.peer_Chosen0.Name.server.handled.Unimplemented": 1,
		"rpc.peer_Chosen1.Name.server.handled.Unimplemented": 1,
		"rpc._other._other.server.handled.Unimplemented":     3,
		"rpc._other._other.server.started":                   3,
		"rpc.total.server.handled.Unimplemented":             5,
	})
	reg.Each(func(name string, _ any) {
		if strings.Contains(name, "Chosen2") || strings.Contains(name, "Chosen4") {
			t.Errorf("method over the cap registered: %s", name)
		}
	})
}

// TestServerPanic calls the interceptor directly: a panicking handler is
// counted as Internal and leaves nothing in flight.
func TestServerPanic(t *testing.T) {
	reg := metrics.NewRegistry()
	ui := metricsint.NewUnaryServerInterceptor(reg, "rpc")
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the handler's panic", r)
			}
		}()
		ui(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: methodCall},
			func(context.Context, any) (any, error) { panic("boom") })
	}()
	expect(t, reg, map[string]int64{
		"rpc." + callName + ".server.handled.Internal": 1,
		"rpc." + callName + ".server.in_flight":        0,
		"rpc.total.server.in_flight":                   0,
	})
}

// TestContextErrors checks that a handler's bare context error is counted
// under the code grpc-go sends for it.
func TestContextErrors(t *testing.T) {
	reg := metrics.NewRegistry()
	ui := metricsint.NewUnaryServerInterceptor(reg, "")
	info := &grpc.UnaryServerInfo{FullMethod: "/a.B/C"}
	for _, err := range []error{context.Canceled, fmt.Errorf("wrapped: %w", context.DeadlineExceeded), errors.New("plain"), status.Error(codes.Code(99), "odd")} {
		ui(context.Background(), nil, info, func(context.Context, any) (any, error) { return nil, err })
	}
	expect(t, reg, map[string]int64{
		"a_B.C.server.handled.Canceled":         1,
		"a_B.C.server.handled.DeadlineExceeded": 1,
		"a_B.C.server.handled.Unknown":          1,
		"a_B.C.server.handled.Code_99_":         1,
		"total.server.handled.Code_99_":         1,
	})
}

// TestOddCodesBounded has a server answer every call with a different status
// code outside grpc-go's known ones (a grpc-status header may carry any
// number): the client's registry must not grow with each new code.
func TestOddCodesBounded(t *testing.T) {
	reg := metrics.NewRegistry()
	var next atomic.Uint32
	env := startEnv(t,
		[]grpc.ServerOption{grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error {
			return status.Error(codes.Code(1000+next.Add(1)), "odd")
		})},
		[]grpc.DialOption{grpc.WithChainUnaryInterceptor(metricsint.NewUnaryClientInterceptor(reg, "rpc"))})
	ctx := testCtx(t)
	const calls = 100
	const maxOddCodes = 16 // as documented
	for range calls {
		err := env.conn.Invoke(ctx, "/odd.Svc/M", wrapperspb.String("x"), new(wrapperspb.StringValue))
		if c := status.Code(err); c <= codes.Unauthenticated {
			t.Fatalf("call error = %v, want a code outside the known ones", err)
		}
	}
	named := 0
	reg.Each(func(name string, _ any) {
		if strings.HasPrefix(name, "rpc.odd_Svc.M.client.handled.") {
			named++
		}
	})
	if named > maxOddCodes+1 {
		t.Errorf("%d handled counters for one method after %d distinct codes, want at most %d", named, calls, maxOddCodes+1)
	}
	expect(t, reg, map[string]int64{
		"rpc.odd_Svc.M.client.started":            calls,
		"rpc.odd_Svc.M.client.handled.Code_1001_": 1,
		"rpc.odd_Svc.M.client.handled.Code_other": calls - maxOddCodes,
		"rpc.total.client.handled.Code_other":     calls - maxOddCodes,
	})
}
