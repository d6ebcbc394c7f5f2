package kvresolver

import (
	"context"
	"errors"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/resolver"
)

const testInterval = 10 * time.Second

type harness struct {
	cc  *fakeCC
	clk *fakeClock
	lk  *scriptedLookup
	log *recordLogger
	r   resolver.Resolver
}

func newHarness(t *testing.T, opts ...Option) *harness {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs after Close
	h := &harness{cc: newFakeCC(), clk: newFakeClock(), lk: newScriptedLookup(), log: &recordLogger{}}
	opts = append([]Option{h.clk.option(), WithInterval(testInterval), WithLogger(h.log)}, opts...)
	b, err := NewBuilder(h.lk.lookup, opts...)
	if err != nil {
		t.Fatalf("NewBuilder: %v", err)
	}
	h.r, err = b.Build(target(t, "kv:///hello"), h.cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Cleanup(h.r.Close)
	return h
}

func target(t *testing.T, s string) resolver.Target {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return resolver.Target{URL: *u}
}

func (h *harness) update(t *testing.T) resolver.State {
	t.Helper()
	select {
	case s := <-h.cc.updates:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no UpdateState")
		return resolver.State{}
	}
}

func (h *harness) report(t *testing.T) error {
	t.Helper()
	select {
	case err := <-h.cc.reports:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no ReportError")
		return nil
	}
}

// quiet checks that the channel heard nothing more. Call it after
// nextTimer: the poll is then over.
func (h *harness) quiet(t *testing.T) {
	t.Helper()
	select {
	case s := <-h.cc.updates:
		t.Fatalf("unexpected UpdateState %v", addrsOf(t, s))
	case err := <-h.cc.reports:
		t.Fatalf("unexpected ReportError %v", err)
	default:
	}
}

// addrsOf returns the state's endpoint addresses, after checking that
// Addresses says the same and each endpoint has one address.
func addrsOf(t *testing.T, s resolver.State) []string {
	t.Helper()
	var eps, as []string
	for _, ep := range s.Endpoints {
		if len(ep.Addresses) != 1 {
			t.Fatalf("endpoint with %d addresses", len(ep.Addresses))
		}
		eps = append(eps, ep.Addresses[0].Addr)
	}
	for _, a := range s.Addresses {
		as = append(as, a.Addr)
	}
	if !slices.Equal(eps, as) {
		t.Fatalf("Endpoints %v and Addresses %v differ", eps, as)
	}
	return eps
}

func wantAddrs(t *testing.T, s resolver.State, want ...string) {
	t.Helper()
	if got := addrsOf(t, s); !slices.Equal(got, want) {
		t.Fatalf("addresses %v, want %v", got, want)
	}
}

func TestResolverUpdatesOnlyOnChange(t *testing.T) {
	h := newHarness(t)
	if got := <-h.lk.targets; got != "hello" {
		t.Fatalf("lookup of %q, want hello", got)
	}
	h.lk.reply("10.0.0.2:80", "10.0.0.1:80", "10.0.0.2:80", "[::1]:080")
	s := h.update(t)
	wantAddrs(t, s, "10.0.0.1:80", "10.0.0.2:80", "[::1]:80")
	sc, ok := s.ServiceConfig.Config.(fakeSC)
	if s.ServiceConfig.Err != nil || !ok || sc.json != DefaultServiceConfig {
		t.Fatalf("service config %+v, want %s", s.ServiceConfig, DefaultServiceConfig)
	}
	tm := h.clk.nextTimer(t)
	if tm.d < testInterval || tm.d > testInterval+testInterval/10 {
		t.Fatalf("wait %v, want interval %v plus up to 10%%", tm.d, testInterval)
	}

	// The same set in another order: no update.
	tm.fire(h.clk)
	h.lk.reply("[::1]:80", "10.0.0.2:80", "10.0.0.1:80")
	h.clk.nextTimer(t).fire(h.clk)
	h.quiet(t)

	// A change: update.
	h.lk.reply("10.0.0.3:80")
	wantAddrs(t, h.update(t), "10.0.0.3:80")
	h.clk.nextTimer(t)
	h.quiet(t)
}

func TestResolverErrors(t *testing.T) {
	h := newHarness(t, WithBackoff(time.Second, 8*time.Second))

	// No good set yet: the channel hears of the failure.
	h.lk.fail(errBoom)
	err := h.report(t)
	if !errors.Is(err, errBoom) || err.Error() != `kvresolver: lookup of "hello": boom` {
		t.Fatalf("ReportError(%v), want the wrapped lookup error", err)
	}
	h.clk.nextTimer(t).fire(h.clk)

	// An empty list, with no good set yet, is an error too.
	h.lk.reply()
	if err := h.report(t); err.Error() != `kvresolver: lookup of "hello" found no addresses` {
		t.Fatalf("ReportError(%v)", err)
	}
	h.clk.nextTimer(t).fire(h.clk)

	h.lk.reply("10.0.0.1:80")
	wantAddrs(t, h.update(t), "10.0.0.1:80")
	h.clk.nextTimer(t).fire(h.clk)

	// After a good set: failures and empty lists keep it, silently for
	// the channel.
	h.lk.fail(errBoom)
	h.clk.nextTimer(t).fire(h.clk)
	h.lk.reply()
	h.clk.nextTimer(t).fire(h.clk)
	h.lk.reply("not an address")
	h.clk.nextTimer(t).fire(h.clk)
	h.quiet(t)
	logs := strings.Join(h.log.all(), "\n")
	for _, want := range []string{
		`kvresolver: lookup of "hello": boom; keeping the last 1 addresses`,
		`kvresolver: lookup of "hello" found no addresses; keeping the last 1`,
		`kvresolver: lookup of "hello" returned no valid address: kvresolver: invalid address "not an address": address not an address: missing port in address; keeping the last 1 addresses`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q; it has:\n%s", want, logs)
		}
	}

	h.lk.reply("10.0.0.1:80", "10.0.0.2:80")
	wantAddrs(t, h.update(t), "10.0.0.1:80", "10.0.0.2:80")
}

func TestResolverBackoff(t *testing.T) {
	base, maxWait := time.Second, 8*time.Second
	h := newHarness(t, WithBackoff(base, maxWait))
	want := []time.Duration{base, 1600 * time.Millisecond, 2560 * time.Millisecond, 4096 * time.Millisecond, 6554 * time.Millisecond, maxWait, maxWait}
	for i, w := range want {
		h.lk.fail(errBoom)
		h.report(t)
		tm := h.clk.nextTimer(t)
		lo, hi := time.Duration(float64(w)*0.8)-time.Millisecond, time.Duration(float64(w)*1.2)+time.Millisecond
		if tm.d < lo || tm.d > hi {
			t.Fatalf("retry %d waits %v, want %v ± 20%%", i, tm.d, w)
		}
		// ResolveNow does not cut a backoff short.
		h.r.ResolveNow(resolver.ResolveNowOptions{})
		h.clk.noTimer(t)
		tm.fire(h.clk)
	}
	// Success resets the backoff.
	h.lk.reply("10.0.0.1:80")
	h.update(t)
	if tm := h.clk.nextTimer(t); tm.d < testInterval {
		t.Fatalf("after success waits %v, want the interval", tm.d)
	}
	h.clk.noTimer(t)
}

func TestResolverUpdateStateError(t *testing.T) {
	h := newHarness(t, WithBackoff(time.Second, time.Second))
	h.cc.setUpdateErr(errors.New("bad resolver state"))
	h.lk.reply("10.0.0.1:80")
	wantAddrs(t, h.update(t), "10.0.0.1:80")
	tm := h.clk.nextTimer(t)
	if tm.d > 1200*time.Millisecond {
		t.Fatalf("after a rejected update waits %v, want a backoff", tm.d)
	}
	// The same set is offered again, since the last offer was rejected.
	h.cc.setUpdateErr(nil)
	tm.fire(h.clk)
	h.lk.reply("10.0.0.1:80")
	wantAddrs(t, h.update(t), "10.0.0.1:80")
	if tm := h.clk.nextTimer(t); tm.d < testInterval {
		t.Fatalf("after success waits %v, want the interval", tm.d)
	}
	// Then not again.
	h.quiet(t)
}

func TestResolverEmpty(t *testing.T) {
	h := newHarness(t, WithEmptyMeansEmpty())
	h.lk.reply("10.0.0.1:80")
	h.update(t)
	h.clk.nextTimer(t).fire(h.clk)
	h.lk.reply()
	wantAddrs(t, h.update(t))
	h.clk.nextTimer(t)
	h.quiet(t)
}

func TestResolverInvalidAddresses(t *testing.T) {
	h := newHarness(t)
	h.lk.reply("", ":80", "10.0.0.1", "host:0", "a/b:80", "[fe80::1%eth0]:80")
	err := h.report(t)
	for _, want := range []string{
		`kvresolver: lookup of "hello" returned no valid address: `,
		`kvresolver: invalid address "": missing port in address`,
		`kvresolver: invalid address ":80": no host`,
		`kvresolver: invalid address "host:0": port "0" out of range 1-65535`,
		`kvresolver: invalid address "a/b:80": character '/' not allowed in a host name`,
		`kvresolver: invalid address "[fe80::1%eth0]:80": zoned IPv6 addresses are not supported`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	h.clk.nextTimer(t).fire(h.clk)
	// Good addresses are kept, bad ones dropped and logged.
	h.lk.reply("bad", "Host.Example:443", "10.0.0.1:80")
	wantAddrs(t, h.update(t), "10.0.0.1:80", "host.example:443")
	if logs := strings.Join(h.log.all(), "\n"); !strings.Contains(logs, `skipped 1 invalid addresses: kvresolver: invalid address "bad"`) {
		t.Errorf("log: %s", logs)
	}
}

func TestResolveNow(t *testing.T) {
	minRN := 2 * time.Second
	h := newHarness(t, WithMinResolveNowInterval(minRN))
	h.lk.reply("10.0.0.1:80")
	h.update(t)
	regular := h.clk.nextTimer(t)

	// Many ResolveNow calls never block and bring one poll forward, to the
	// minimum interval after the last one began.
	for range 1000 {
		h.r.ResolveNow(resolver.ResolveNowOptions{})
	}
	early := h.clk.nextTimer(t)
	if early.d != minRN {
		t.Fatalf("early poll after %v, want %v", early.d, minRN)
	}
	if !regular.stopped() {
		t.Fatal("regular timer not stopped")
	}
	h.clk.noTimer(t)
	h.clk.advance(minRN)
	early.c <- time.Time{}
	h.lk.reply("10.0.0.1:80")
	regular = h.clk.nextTimer(t)
	h.quiet(t)

	// A ResolveNow long after the last poll brings the next one forward at
	// once.
	h.clk.advance(5 * time.Second)
	h.r.ResolveNow(resolver.ResolveNowOptions{})
	if tm := h.clk.nextTimer(t); tm.d > 0 {
		t.Fatalf("early poll after %v, want at once", tm.d)
	}
	_ = regular
}

func TestResolveNowDefaultKeepsOneLookupPerInterval(t *testing.T) {
	h := newHarness(t, WithJitter(0))
	h.lk.reply("10.0.0.1:80")
	h.update(t)
	<-h.lk.targets
	regular := h.clk.nextTimer(t)
	if regular.d != testInterval {
		t.Fatalf("wait %v with no jitter, want %v", regular.d, testInterval)
	}
	// The minimum ResolveNow interval defaults to the interval: nothing is
	// brought forward. Each round waits until the loop has taken the
	// request, so that the one before has been handled in full.
	rn := h.r.(*kvResolver).rn
	for range 3 {
		h.r.ResolveNow(resolver.ResolveNowOptions{})
		deadline := time.Now().Add(10 * time.Second)
		for len(rn) > 0 {
			if time.Now().After(deadline) {
				t.Fatal("ResolveNow request never taken")
			}
			runtime.Gosched()
		}
	}
	h.clk.noTimer(t)
	select {
	case target := <-h.lk.targets:
		t.Fatalf("early lookup of %q", target)
	default:
	}
	regular.fire(h.clk)
	<-h.lk.targets
}

func TestResolverLookupTimeout(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cc := newFakeCC()
	b, err := NewBuilder(func(ctx context.Context, _ string) ([]string, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, WithLookupTimeout(20*time.Millisecond), WithInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.Build(target(t, "kv:///hello"), cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	select {
	case err := <-cc.reports:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ReportError(%v), want a deadline error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("lookup not bounded by its timeout")
	}
}

func TestResolverCloseWaits(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cc := newFakeCC()
	started, finished := make(chan struct{}), make(chan struct{})
	b, err := NewBuilder(func(ctx context.Context, _ string) ([]string, error) {
		close(started)
		<-ctx.Done()
		close(finished)
		return nil, ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.Build(target(t, "kv:///hello"), cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	r.Close()
	select {
	case <-finished:
	default:
		t.Fatal("Close returned before the lookup ended")
	}
	r.Close() // idempotent
	select {
	case err := <-cc.reports:
		t.Fatalf("ReportError(%v) for a lookup ended by Close", err)
	case s := <-cc.updates:
		t.Fatalf("UpdateState(%v) after Close", s)
	default:
	}
}

func TestNewBuilderErrors(t *testing.T) {
	lookup := func(context.Context, string) ([]string, error) { return nil, nil }
	for _, tc := range []struct {
		name   string
		lookup LookupFunc
		opts   []Option
		want   string
	}{
		{"nil lookup", nil, nil, "kvresolver: nil LookupFunc"},
		{"zero interval", lookup, []Option{WithInterval(0)}, "kvresolver: interval 0s is not positive"},
		{"negative interval", lookup, []Option{WithInterval(-time.Second)}, "kvresolver: interval -1s is not positive"},
		{"jitter", lookup, []Option{WithJitter(1.5)}, "kvresolver: jitter 1.5 is not between 0 and 1"},
		{"min resolve now", lookup, []Option{WithMinResolveNowInterval(0)}, "kvresolver: minimum ResolveNow interval 0s is not positive"},
		{"lookup timeout", lookup, []Option{WithLookupTimeout(-1)}, "kvresolver: lookup timeout -1ns is not positive"},
		{"backoff", lookup, []Option{WithBackoff(2*time.Second, time.Second)}, "kvresolver: backoff base 2s and max 1s: want 0 < base <= max"},
		{"empty scheme", lookup, []Option{WithScheme("")}, "kvresolver: empty scheme"},
		{"upper-case scheme", lookup, []Option{WithScheme("KV")}, `kvresolver: invalid scheme "KV": want a lower-case letter then letters, digits, '+', '-' or '.'`},
		{"service config", lookup, []Option{WithServiceConfig("{")}, "kvresolver: service config is not valid JSON"},
		{"two errors", nil, []Option{WithInterval(0)}, "kvresolver: interval 0s is not positive\nkvresolver: nil LookupFunc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := NewBuilder(tc.lookup, tc.opts...)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("NewBuilder = %v, %v; want error %q", b, err, tc.want)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	lookup := func(context.Context, string) ([]string, error) { return nil, nil }
	for _, tc := range []struct {
		name, target string
		opts         []Option
		want         string
	}{
		{"no name", "kv:///", nil, `kvresolver: target "kv:///" has no name (want kv:///<name>)`},
		{"authority only", "kv://hello", nil, `kvresolver: target "kv://hello/" has no name (want kv:///<name>)`},
		{"authority", "kv://auth/hello", nil, `kvresolver: target "kv://auth/hello" names an authority "auth", which is not supported (want kv:///<name>)`},
		{"service config", "kv:///hello", []Option{WithServiceConfig(`{"loadBalancingConfig":[{"nope":{}}]}`)}, `kvresolver: service config rejected: no supported policy in "{\"loadBalancingConfig\":[{\"nope\":{}}]}"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := NewBuilder(lookup, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			r, err := b.Build(target(t, tc.target), newFakeCC(), resolver.BuildOptions{})
			if err == nil || err.Error() != tc.want {
				if r != nil {
					r.Close()
				}
				t.Fatalf("Build error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestBuildOptions(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	lk := newScriptedLookup()
	b, err := NewBuilder(lk.lookup, WithScheme("svc"), WithServiceConfig(`{"loadBalancingConfig":[{"pick_first":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if b.Scheme() != "svc" {
		t.Fatalf("Scheme() = %q", b.Scheme())
	}
	for _, disable := range []bool{false, true} {
		cc := newFakeCC()
		r, err := b.Build(target(t, "svc:///hello"), cc, resolver.BuildOptions{DisableServiceConfig: disable})
		if err != nil {
			t.Fatal(err)
		}
		lk.reply("10.0.0.1:80")
		s := <-cc.updates
		r.Close()
		if disable {
			if s.ServiceConfig != nil {
				t.Fatalf("service config %v although disabled", s.ServiceConfig)
			}
			continue
		}
		if sc, _ := s.ServiceConfig.Config.(fakeSC); sc.json != `{"loadBalancingConfig":[{"pick_first":{}}]}` {
			t.Fatalf("service config %+v, want the user's", s.ServiceConfig)
		}
	}
}

func TestBackoffFunc(t *testing.T) {
	for n := range 40 {
		d := backoff(time.Second, 2*time.Minute, n)
		if d < 800*time.Millisecond || d > 144*time.Second {
			t.Fatalf("backoff(%d) = %v", n, d)
		}
	}
}
