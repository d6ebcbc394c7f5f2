package metricsint

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	metrics "github.com/rcrowley/go-metrics"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/status"
)

var logger = grpclog.Component("metricsint")

// DefaultMaxMethods is the number of distinct methods each side (server or
// client) of an Interceptors tracks by name unless WithMaxMethods says
// otherwise. Calls to further methods are recorded under the "_other._other"
// method.
const DefaultMaxMethods = 1000

// numCodes is one more than the largest status code grpc-go defines
// (codes.Unauthenticated); per-code counters for these are cached in an array.
const numCodes = int(codes.Unauthenticated) + 1

// maxOddCodes is the number of distinct codes outside grpc-go's known ones
// that get counters of their own on one side. A server can send any number
// as a grpc-status, so further ones share the handled.Code_other counter.
const maxOddCodes = 16

// Option configures New and the New*Interceptor functions.
type Option interface {
	apply(*options)
}

type options struct {
	onError    func(error)
	maxMethods int
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithErrorHandler sets the function told about every metric that cannot be
// recorded because its name is taken by a metric of another type (a
// *ConflictError) or because the Backend failed. It is called once per
// metric name and interceptor side, outside any lock of this package, and
// must be safe for concurrent use. The default logs the error through grpclog
// (component "metricsint"). A nil h restores the default.
func WithErrorHandler(h func(error)) Option {
	return optionFunc(func(o *options) { o.onError = h })
}

// WithMaxMethods caps at n the number of distinct full method names tracked
// by name on each side; calls to other methods are recorded under
// "<prefix>._other._other.<side>.". It bounds the registry's size when method
// names come from peers, as with a server's grpc.UnknownServiceHandler.
// n <= 0 means DefaultMaxMethods.
func WithMaxMethods(n int) Option {
	return optionFunc(func(o *options) { o.maxMethods = n })
}

func buildOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	if o.onError == nil {
		o.onError = func(err error) { logger.Error(err) }
	}
	if o.maxMethods <= 0 {
		o.maxMethods = DefaultMaxMethods
	}
	return o
}

// Interceptors holds the server and client interceptors for one Backend and
// prefix. Its methods may be called any number of times; the interceptors they
// return share the cached metrics. It is safe for concurrent use.
type Interceptors struct {
	server, client *side
}

// New resolves the total metrics of both sides in b under prefix and returns
// the interceptors, or an error (a *ConflictError, joined with any others)
// when one of the names is taken by a metric of another type. Per-method
// metrics are resolved on a method's first call; conflicts found then are
// reported to the error handler (see WithErrorHandler).
//
// prefix is sanitized: dots separate its segments, empty segments are
// dropped and other bytes outside [A-Za-z0-9_] become '_'. An empty prefix is
// allowed.
func New(b Backend, prefix string, opts ...Option) (*Interceptors, error) {
	if b == nil {
		return nil, errors.New("metricsint: nil backend")
	}
	o := buildOptions(opts)
	sv, errS := newSide(b, prefix, sideServer, o)
	cl, errC := newSide(b, prefix, sideClient, o)
	if err := errors.Join(append(errS, errC...)...); err != nil {
		return nil, err
	}
	return &Interceptors{server: sv, client: cl}, nil
}

// UnaryServer returns the unary server interceptor.
func (i *Interceptors) UnaryServer() grpc.UnaryServerInterceptor { return i.server.unaryServer }

// StreamServer returns the stream server interceptor.
func (i *Interceptors) StreamServer() grpc.StreamServerInterceptor { return i.server.streamServer }

// UnaryClient returns the unary client interceptor.
func (i *Interceptors) UnaryClient() grpc.UnaryClientInterceptor { return i.client.unaryClient }

// StreamClient returns the stream client interceptor.
func (i *Interceptors) StreamClient() grpc.StreamClientInterceptor { return i.client.streamClient }

// NewUnaryServerInterceptor returns a unary server interceptor that records
// into reg (metrics.DefaultRegistry when nil) under prefix. It never fails:
// a name taken by a metric of another type is reported to the error handler
// and that metric is not recorded (see the package documentation).
func NewUnaryServerInterceptor(reg metrics.Registry, prefix string, opts ...Option) grpc.UnaryServerInterceptor {
	return mustSide(reg, prefix, sideServer, opts).unaryServer
}

// NewStreamServerInterceptor returns a stream server interceptor that records
// into reg (metrics.DefaultRegistry when nil) under prefix. Like
// NewUnaryServerInterceptor it never fails.
func NewStreamServerInterceptor(reg metrics.Registry, prefix string, opts ...Option) grpc.StreamServerInterceptor {
	return mustSide(reg, prefix, sideServer, opts).streamServer
}

// NewUnaryClientInterceptor returns a unary client interceptor that records
// into reg (metrics.DefaultRegistry when nil) under prefix. Like
// NewUnaryServerInterceptor it never fails.
func NewUnaryClientInterceptor(reg metrics.Registry, prefix string, opts ...Option) grpc.UnaryClientInterceptor {
	return mustSide(reg, prefix, sideClient, opts).unaryClient
}

// NewStreamClientInterceptor returns a stream client interceptor that records
// into reg (metrics.DefaultRegistry when nil) under prefix. Like
// NewUnaryServerInterceptor it never fails.
func NewStreamClientInterceptor(reg metrics.Registry, prefix string, opts ...Option) grpc.StreamClientInterceptor {
	return mustSide(reg, prefix, sideClient, opts).streamClient
}

func mustSide(reg metrics.Registry, prefix, name string, opts []Option) *side {
	o := buildOptions(opts)
	s, errs := newSide(GoMetrics(reg), prefix, name, o)
	for _, err := range errs {
		o.onError(err)
	}
	return s
}

// metricSet is the resolved metrics of one method (or the totals) on one side.
type metricSet struct {
	started  Counter
	inFlight Counter
	latency  Timer
	msgSent  Counter // nil in the sets of unary methods
	msgRecv  Counter // nil in the sets of unary methods
	base     string
	handled  [numCodes]atomic.Pointer[counterRef]
	extra    map[codes.Code]Counter // codes >= numCodes; guarded by side.mu
	oddOther Counter                // codes past side.oddCodes; guarded by side.mu
}

type counterRef struct{ c Counter }

// side records one side (server or client) of the RPCs.
type side struct {
	b       Backend
	prefix  string
	name    string
	onError func(error)
	max     int

	total *metricSet
	unary sync.Map // full method -> *metricSet
	strm  sync.Map // full method -> *metricSet
	full  atomic.Bool

	mu       sync.Mutex // serialises resolution; guards n, other, oddCodes, metricSet.extra and oddOther
	n        int
	other    *metricSet
	oddCodes map[codes.Code]bool // codes >= numCodes with names of their own, at most maxOddCodes
}

func newSide(b Backend, prefix, name string, o options) (*side, []error) {
	s := &side{
		b:       b,
		prefix:  sanitizePrefix(prefix),
		name:    name,
		onError: o.onError,
		max:     o.maxMethods,
	}
	var errs []error
	s.total = s.newSet(totalBaseName(s.prefix, name), true, &errs)
	return s, errs
}

// newSet resolves the metrics under base. Errors are appended to errs and
// the failed metrics replaced by discard.
func (s *side) newSet(base string, stream bool, errs *[]error) *metricSet {
	ms := &metricSet{
		base:     base,
		started:  s.counter(base+nameStarted, errs),
		inFlight: s.counter(base+nameInFlight, errs),
		latency:  s.timer(base+nameLatency, errs),
	}
	if stream {
		ms.msgSent = s.counter(base+nameMsgSent, errs)
		ms.msgRecv = s.counter(base+nameMsgReceived, errs)
	}
	return ms
}

func (s *side) counter(name string, errs *[]error) Counter {
	c, err := s.b.Counter(name)
	if err == nil && c != nil {
		return c
	}
	*errs = append(*errs, backendError(name, err))
	return discard{}
}

func (s *side) timer(name string, errs *[]error) Timer {
	t, err := s.b.Timer(name)
	if err == nil && t != nil {
		return t
	}
	*errs = append(*errs, backendError(name, err))
	return discard{}
}

func backendError(name string, err error) error {
	var ce *ConflictError
	if errors.As(err, &ce) {
		return err
	}
	if err == nil {
		err = errors.New("backend returned a nil metric")
	}
	return fmt.Errorf("metricsint: metric %q not recorded: %w", name, err)
}

func (s *side) report(errs []error) {
	for _, err := range errs {
		s.onError(err)
	}
}

// method returns the cached metrics of fullMethod, resolving them on the
// first call. The fast path is one sync.Map load and does not allocate.
func (s *side) method(fullMethod string, stream bool) *metricSet {
	cache := &s.unary
	if stream {
		cache = &s.strm
	}
	if v, ok := cache.Load(fullMethod); ok {
		return v.(*metricSet)
	}
	if s.full.Load() {
		// s.other was written before full was set.
		return s.other
	}
	return s.methodSlow(cache, fullMethod, stream)
}

func (s *side) methodSlow(cache *sync.Map, fullMethod string, stream bool) *metricSet {
	var errs []error
	s.mu.Lock()
	ms := s.other
	if v, ok := cache.Load(fullMethod); ok {
		ms = v.(*metricSet)
	} else if !s.full.Load() {
		if s.n < s.max {
			s.n++
			ms = s.newSet(baseName(s.prefix, s.name, fullMethod), stream, &errs)
			cache.Store(fullMethod, ms)
		} else {
			// Over the cap: the names are not cached, so that peers
			// cannot grow the cache either.
			s.other = s.newSet(otherBaseName(s.prefix, s.name), true, &errs)
			ms = s.other
			s.full.Store(true)
		}
	}
	s.mu.Unlock()
	s.report(errs)
	return ms
}

// handled returns the counter for code c in ms.
func (s *side) handled(ms *metricSet, c codes.Code) Counter {
	if uint32(c) < uint32(numCodes) {
		if r := ms.handled[c].Load(); r != nil {
			return r.c
		}
	}
	return s.handledSlow(ms, c)
}

func (s *side) handledSlow(ms *metricSet, c codes.Code) Counter {
	var errs []error
	s.mu.Lock()
	var ctr Counter
	if uint32(c) < uint32(numCodes) {
		if r := ms.handled[c].Load(); r != nil {
			ctr = r.c
		} else {
			ctr = s.counter(ms.base+codeName(c), &errs)
			ms.handled[c].Store(&counterRef{c: ctr})
		}
	} else {
		var ok bool
		if ctr, ok = ms.extra[c]; !ok {
			switch {
			case s.oddCodes[c] || len(s.oddCodes) < maxOddCodes:
				if s.oddCodes == nil {
					s.oddCodes = make(map[codes.Code]bool)
				}
				s.oddCodes[c] = true
				ctr = s.counter(ms.base+codeName(c), &errs)
				if ms.extra == nil {
					ms.extra = make(map[codes.Code]Counter)
				}
				ms.extra[c] = ctr
			case ms.oddOther == nil:
				ms.oddOther = s.counter(ms.base+nameHandledOther, &errs)
				ctr = ms.oddOther
			default:
				ctr = ms.oddOther
			}
		}
	}
	s.mu.Unlock()
	s.report(errs)
	return ctr
}

// monoBase anchors monoNow. It is set once and never changed.
var monoBase = time.Now()

// monoNow reads only the monotonic clock: time.Now reads the wall clock as
// well, which doubles the cost of timing a call where clock reads are slow.
func monoNow() time.Duration { return time.Since(monoBase) }

func (s *side) begin(ms *metricSet) time.Duration {
	ms.started.Inc(1)
	s.total.started.Inc(1)
	ms.inFlight.Inc(1)
	s.total.inFlight.Inc(1)
	return monoNow()
}

func (s *side) end(ms *metricSet, c codes.Code, start time.Duration) {
	d := monoNow() - start
	ms.inFlight.Dec(1)
	s.total.inFlight.Dec(1)
	s.handled(ms, c).Inc(1)
	s.handled(s.total, c).Inc(1)
	ms.latency.Update(d)
	s.total.latency.Update(d)
}

// statusCode returns the code a peer sees for err: the status code of a
// status error, Canceled or DeadlineExceeded for context errors (as grpc-go
// servers map them), Unknown otherwise.
func statusCode(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if st, ok := status.FromError(err); ok {
		return st.Code()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Unknown
}

func (s *side) unaryServer(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	ms := s.method(info.FullMethod, false)
	start := s.begin(ms)
	panicked := true
	defer func() {
		c := codes.Internal
		if !panicked {
			c = statusCode(err)
		}
		s.end(ms, c, start)
	}()
	resp, err = handler(ctx, req)
	panicked = false
	return resp, err
}

func (s *side) streamServer(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	ms := s.method(info.FullMethod, true)
	start := s.begin(ms)
	panicked := true
	defer func() {
		c := codes.Internal
		if !panicked {
			c = statusCode(err)
		}
		s.end(ms, c, start)
	}()
	err = handler(srv, &serverStream{ServerStream: ss, ms: ms, total: s.total})
	panicked = false
	return err
}

// serverStream counts the messages of a server stream.
type serverStream struct {
	grpc.ServerStream
	ms, total *metricSet
}

func (w *serverStream) SendMsg(m any) error {
	err := w.ServerStream.SendMsg(m)
	if err == nil {
		w.ms.msgSent.Inc(1)
		w.total.msgSent.Inc(1)
	}
	return err
}

func (w *serverStream) RecvMsg(m any) error {
	err := w.ServerStream.RecvMsg(m)
	if err == nil {
		w.ms.msgRecv.Inc(1)
		w.total.msgRecv.Inc(1)
	}
	return err
}

func (s *side) unaryClient(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) (err error) {
	ms := s.method(method, false)
	start := s.begin(ms)
	panicked := true
	defer func() {
		c := codes.Internal
		if !panicked {
			c = statusCode(err)
		}
		s.end(ms, c, start)
	}()
	err = invoker(ctx, method, req, reply, cc, opts...)
	panicked = false
	return err
}

func (s *side) streamClient(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ms := s.method(method, true)
	call := &clientCall{s: s, ms: ms}
	call.start = s.begin(ms)
	// The full slice expression makes append copy: the caller's opts
	// must not be written to.
	opts = append(opts[:len(opts):len(opts)], grpc.OnFinish(call.finish))
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		call.finish(err)
		return nil, err
	}
	return &clientStream{ClientStream: cs, call: call}, nil
}

// clientCall is the state of one client stream. grpc-go calls finish (via
// grpc.OnFinish) exactly once when the stream ends for any reason; the
// interceptor also calls it when the streamer fails, and done keeps the
// second call from counting.
type clientCall struct {
	s     *side
	ms    *metricSet
	start time.Duration
	done  atomic.Bool
}

func (c *clientCall) finish(err error) {
	if c.done.CompareAndSwap(false, true) {
		c.s.end(c.ms, statusCode(err), c.start)
	}
}

// clientStream counts the messages of a client stream.
type clientStream struct {
	grpc.ClientStream
	call *clientCall
}

func (w *clientStream) SendMsg(m any) error {
	err := w.ClientStream.SendMsg(m)
	if err == nil {
		w.call.ms.msgSent.Inc(1)
		w.call.s.total.msgSent.Inc(1)
	}
	return err
}

func (w *clientStream) RecvMsg(m any) error {
	err := w.ClientStream.RecvMsg(m)
	if err == nil {
		w.call.ms.msgRecv.Inc(1)
		w.call.s.total.msgRecv.Inc(1)
	}
	return err
}
