package kvresolver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
)

// LookupFunc returns the addresses ("host:port") of the servers of target,
// the name in the channel's target URI ("hello" in "kv:///hello"). It is
// called from one goroutine per resolver, with a context that ends after
// the lookup timeout or when the resolver closes.
//
// An error keeps the channel on the last good addresses. So does an empty
// list, unless the Builder was given WithEmptyMeansEmpty. Invalid addresses
// are skipped; a list of nothing but invalid addresses is an error.
type LookupFunc func(ctx context.Context, target string) ([]string, error)

// Builder is a grpc-go resolver.Builder that polls a LookupFunc. Pass it to
// grpc.NewClient with grpc.WithResolvers; it needs no global registration.
// One Builder can serve any number of channels. Create one with NewBuilder.
type Builder struct {
	lookup LookupFunc
	cfg    builderConfig
}

var _ resolver.Builder = (*Builder)(nil)

// NewBuilder returns a Builder that resolves targets with lookup. It
// returns an error for a nil lookup or an invalid option.
func NewBuilder(lookup LookupFunc, opts ...Option) (*Builder, error) {
	var c builderConfig
	for _, o := range opts {
		if o != nil {
			o.applyBuilder(&c)
		}
	}
	if lookup == nil {
		c.errs = append(c.errs, errors.New("kvresolver: nil LookupFunc"))
	}
	if err := errors.Join(c.errs...); err != nil {
		return nil, err
	}
	c.errs = nil
	if c.scheme == "" {
		c.scheme = DefaultScheme
	}
	if c.interval == 0 {
		c.interval = DefaultInterval
	}
	if c.jitter == 0 && !c.jitterSet {
		c.jitter = DefaultJitter
	}
	if c.minResolveNow == 0 {
		c.minResolveNow = c.interval
	}
	if c.lookupTimeout == 0 {
		c.lookupTimeout = DefaultLookupTimeout
	}
	if c.backoffBase == 0 {
		c.backoffBase = min(time.Second, c.interval)
		c.backoffMax = max(c.interval, c.backoffBase)
	}
	if c.serviceConfig == "" {
		c.serviceConfig = DefaultServiceConfig
	}
	if c.logger == nil {
		c.logger = nopLogger{}
	}
	if c.clock.now == nil {
		c.clock = realClock
	}
	return &Builder{lookup: lookup, cfg: c}, nil
}

// Scheme implements resolver.Builder.
func (b *Builder) Scheme() string { return b.cfg.scheme }

// Build implements resolver.Builder. It starts a goroutine that polls at
// once and then every interval, until Close. It fails for a target with no
// name, such as "kv:///" or "kv://hello" (which names an authority; write
// "kv:///hello"), and for a service config grpc-go rejects.
func (b *Builder) Build(target resolver.Target, cc resolver.ClientConn, opts resolver.BuildOptions) (resolver.Resolver, error) {
	name := target.Endpoint()
	if name == "" {
		return nil, fmt.Errorf("kvresolver: target %q has no name (want %s:///<name>)", target.String(), b.cfg.scheme)
	}
	if target.URL.Host != "" {
		return nil, fmt.Errorf("kvresolver: target %q names an authority %q, which is not supported (want %s:///<name>)", target.String(), target.URL.Host, b.cfg.scheme)
	}
	var sc *serviceconfig.ParseResult
	if !opts.DisableServiceConfig {
		sc = cc.ParseServiceConfig(b.cfg.serviceConfig)
		if sc == nil || sc.Err != nil {
			var err error
			if sc != nil {
				err = sc.Err
			}
			return nil, fmt.Errorf("kvresolver: service config rejected: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &kvResolver{
		name:   name,
		lookup: b.lookup,
		cfg:    &b.cfg,
		cc:     cc,
		sc:     sc,
		ctx:    ctx,
		cancel: cancel,
		rn:     make(chan struct{}, 1),
	}
	r.wg.Add(1)
	go r.run()
	return r, nil
}

// kvResolver is the resolver of one channel.
type kvResolver struct {
	name   string
	lookup LookupFunc
	cfg    *builderConfig
	cc     resolver.ClientConn
	sc     *serviceconfig.ParseResult

	ctx    context.Context
	cancel context.CancelFunc
	rn     chan struct{} // ResolveNow requests; size 1
	wg     sync.WaitGroup

	// Owned by the run goroutine.
	pushed     []string // the addresses last passed to UpdateState
	pushedOnce bool     // UpdateState was called at least once
	pushFailed bool     // the last UpdateState returned an error
	good       bool     // UpdateState once accepted a non-empty list
}

// ResolveNow asks for an early poll; it never blocks. The poll comes no
// sooner than the minimum ResolveNow interval after the start of the
// previous one, and not during a backoff.
func (r *kvResolver) ResolveNow(resolver.ResolveNowOptions) {
	select {
	case r.rn <- struct{}{}:
	default:
	}
}

// Close stops the polling goroutine and waits for it. It is safe to call
// more than once.
func (r *kvResolver) Close() {
	r.cancel()
	r.wg.Wait()
}

func (r *kvResolver) run() {
	defer r.wg.Done()
	failures := 0
	for {
		select {
		case <-r.rn: // this poll answers every ResolveNow so far
		default:
		}
		start := r.cfg.clock.now()
		ok := r.poll()
		if r.ctx.Err() != nil {
			return
		}
		var wait time.Duration
		if ok {
			failures = 0
			wait = r.cfg.interval
			if r.cfg.jitter > 0 {
				wait += time.Duration(rand.Float64() * r.cfg.jitter * float64(r.cfg.interval))
			}
		} else {
			wait = backoff(r.cfg.backoffBase, r.cfg.backoffMax, failures)
			failures++
		}
		if !r.wait(start, start.Add(wait), ok) {
			return
		}
	}
}

// wait returns when the next poll is due: at next, or earlier on
// ResolveNow when early is set, but not before the minimum ResolveNow
// interval after start. It returns false when the resolver closes.
func (r *kvResolver) wait(start, next time.Time, early bool) bool {
	c, stop := r.cfg.clock.newTimer(next.Sub(r.cfg.clock.now()))
	rn := r.rn
	if !early {
		rn = nil // a backoff protects a failing store: no early polls
	}
	for {
		select {
		case <-r.ctx.Done():
			stop()
			return false
		case <-c:
			return true
		case <-rn:
			earliest := start.Add(r.cfg.minResolveNow)
			if !earliest.Before(next) {
				continue // the poll already comes as early as it may
			}
			stop()
			next = earliest
			c, stop = r.cfg.clock.newTimer(next.Sub(r.cfg.clock.now()))
		}
	}
}

// poll looks the target up once and updates the channel. It returns false
// when the next poll should back off.
func (r *kvResolver) poll() bool {
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.lookupTimeout)
	addrs, err := r.lookup(ctx, r.name)
	cancel()
	if r.ctx.Err() != nil {
		return false // closing
	}
	if err != nil {
		r.fail(fmt.Errorf("kvresolver: lookup of %q: %w", r.name, err))
		return false
	}
	if len(addrs) > maxAddresses {
		r.fail(fmt.Errorf("kvresolver: lookup of %q returned %d addresses, over the limit of %d", r.name, len(addrs), maxAddresses))
		return false
	}
	valid, bad := normalize(addrs)
	if len(bad) > 0 {
		if len(valid) == 0 {
			r.fail(fmt.Errorf("kvresolver: lookup of %q returned no valid address: %w", r.name, joinSome(bad)))
			return false
		}
		r.cfg.logger.Warnf("kvresolver: lookup of %q: skipped %d invalid addresses: %v", r.name, len(bad), joinSome(bad))
	}
	if len(valid) == 0 && !r.cfg.emptyMeansEmpty {
		if !r.good {
			r.fail(fmt.Errorf("kvresolver: lookup of %q found no addresses", r.name))
			return false
		}
		r.cfg.logger.Warnf("kvresolver: lookup of %q found no addresses; keeping the last %d", r.name, len(r.pushed))
		return true
	}
	if r.pushedOnce && !r.pushFailed && slices.Equal(valid, r.pushed) {
		return true
	}
	err = r.cc.UpdateState(r.state(valid))
	r.pushed, r.pushedOnce, r.pushFailed = valid, true, err != nil
	if err != nil {
		r.cfg.logger.Warnf("kvresolver: update of %q rejected, resolving again: %v", r.name, err)
		return false
	}
	if len(valid) > 0 {
		r.good = true
	}
	return true
}

func (r *kvResolver) state(addrs []string) resolver.State {
	as := make([]resolver.Address, len(addrs))
	eps := make([]resolver.Endpoint, len(addrs))
	for i, a := range addrs {
		as[i] = resolver.Address{Addr: a}
		eps[i] = resolver.Endpoint{Addresses: as[i : i+1 : i+1]}
	}
	return resolver.State{Addresses: as, Endpoints: eps, ServiceConfig: r.sc}
}

// fail reports err to the channel while it has never had good addresses;
// afterwards the channel keeps them and err is only logged.
func (r *kvResolver) fail(err error) {
	if !r.good {
		r.cc.ReportError(err)
		return
	}
	r.cfg.logger.Warnf("%v; keeping the last %d addresses", err, len(r.pushed))
}

// backoff returns the wait before retry n (0-based): base * 1.6^n, capped
// at max, with ±20% jitter, as grpc-go's exponential backoff.
func backoff(base, max time.Duration, n int) time.Duration {
	d := float64(base)
	for i := 0; i < n && d < float64(max); i++ {
		d *= 1.6
	}
	d = min(d, float64(max))
	d *= 1 + 0.2*(rand.Float64()*2-1)
	if d < 0 {
		return 0
	}
	return time.Duration(d)
}
