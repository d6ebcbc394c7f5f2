package kvresolver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
)

// fakeCC is a resolver.ClientConn that records what the resolver tells it,
// as grpc-go's own resolver tests do.
type fakeCC struct {
	resolver.ClientConn // panics on methods a resolver must not call

	updates chan resolver.State
	reports chan error

	mu        sync.Mutex
	updateErr error
}

func newFakeCC() *fakeCC {
	return &fakeCC{updates: make(chan resolver.State, 100), reports: make(chan error, 100)}
}

func (f *fakeCC) UpdateState(s resolver.State) error {
	f.updates <- s
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.updateErr
}

func (f *fakeCC) setUpdateErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updateErr = err
}

func (f *fakeCC) ReportError(err error) { f.reports <- err }

type fakeSC struct {
	serviceconfig.Config
	json string
}

// ParseServiceConfig accepts what grpc-go would for these tests: JSON
// objects whose load balancing policies it knows.
func (f *fakeCC) ParseServiceConfig(js string) *serviceconfig.ParseResult {
	var v struct {
		LB []map[string]json.RawMessage `json:"loadBalancingConfig"`
	}
	if err := json.Unmarshal([]byte(js), &v); err != nil {
		return &serviceconfig.ParseResult{Err: fmt.Errorf("service config: %w", err)}
	}
	for _, lb := range v.LB {
		for name := range lb {
			if name != "round_robin" && name != "pick_first" {
				return &serviceconfig.ParseResult{Err: fmt.Errorf("no supported policy in %q", js)}
			}
		}
	}
	return &serviceconfig.ParseResult{Config: fakeSC{json: js}}
}

// fakeClock hands the resolver's timers to the test, which fires them.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	timers chan *fakeTimer
}

type fakeTimer struct {
	d    time.Duration
	c    chan time.Time
	mu   sync.Mutex
	stop bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), timers: make(chan *fakeTimer, 100)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) newTimer(d time.Duration) (<-chan time.Time, func()) {
	t := &fakeTimer{d: d, c: make(chan time.Time, 1)}
	c.timers <- t
	return t.c, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.stop = true
	}
}

func (c *fakeClock) option() clockOption {
	return clockOption{clock{now: c.now, newTimer: c.newTimer}}
}

// nextTimer returns the next timer the code under test starts.
func (c *fakeClock) nextTimer(t *testing.T) *fakeTimer {
	t.Helper()
	select {
	case ft := <-c.timers:
		return ft
	case <-time.After(10 * time.Second):
		t.Fatal("no timer started")
		return nil
	}
}

// noTimer checks that no further timer was started.
func (c *fakeClock) noTimer(t *testing.T) {
	t.Helper()
	select {
	case ft := <-c.timers:
		t.Fatalf("unexpected timer of %v", ft.d)
	default:
	}
}

func (ft *fakeTimer) fire(c *fakeClock) {
	c.advance(ft.d)
	ft.c <- time.Time{}
}

func (ft *fakeTimer) stopped() bool {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return ft.stop
}

// scriptedLookup returns the results the test sends it, one per call.
type scriptedLookup struct {
	results chan lookupResult
	targets chan string
}

type lookupResult struct {
	addrs []string
	err   error
}

func newScriptedLookup() *scriptedLookup {
	return &scriptedLookup{results: make(chan lookupResult, 100), targets: make(chan string, 100)}
}

func (s *scriptedLookup) lookup(ctx context.Context, target string) ([]string, error) {
	s.targets <- target
	select {
	case r := <-s.results:
		return r.addrs, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *scriptedLookup) reply(addrs ...string) { s.results <- lookupResult{addrs: addrs} }
func (s *scriptedLookup) fail(err error)        { s.results <- lookupResult{err: err} }

// recordLogger collects warnings.
type recordLogger struct {
	mu   sync.Mutex
	msgs []string
}

func (l *recordLogger) Warnf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, fmt.Sprintf(format, args...))
}

func (l *recordLogger) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}

var errBoom = errors.New("boom")
