// Package metricsint provides grpc-go interceptors, for servers and clients,
// unary and streaming, that record RPC metrics into a
// github.com/rcrowley/go-metrics registry, or into another metrics library
// through the small Backend interface.
//
//	reg := metrics.NewRegistry() // github.com/rcrowley/go-metrics
//	s := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(metricsint.NewUnaryServerInterceptor(reg, "rpc")),
//		grpc.ChainStreamInterceptor(metricsint.NewStreamServerInterceptor(reg, "rpc")))
//	conn, err := grpc.NewClient(target,
//		grpc.WithChainUnaryInterceptor(metricsint.NewUnaryClientInterceptor(reg, "rpc")),
//		grpc.WithChainStreamInterceptor(metricsint.NewStreamClientInterceptor(reg, "rpc")),
//		grpc.WithTransportCredentials(creds))
//
// New does the same for any Backend and reports name conflicts as an error
// instead of falling back:
//
//	ic, err := metricsint.New(metricsint.GoMetrics(reg), "rpc")
//	if err != nil {
//		return err // e.g. a *metricsint.ConflictError
//	}
//	s := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(ic.UnaryServer()),
//		grpc.ChainStreamInterceptor(ic.StreamServer()))
//
// # Metric names
//
// For a call to the full method "/<service>/<method>", on side <side>
// ("server" for the server interceptors, "client" for the client ones), the
// interceptors record, under "<prefix>.<service>.<method>.<side>.":
//
//	started        Counter  calls started
//	handled.<Code> Counter  calls finished with status code <Code>, spelled
//	                        as codes.Code.String(): handled.OK,
//	                        handled.NotFound, handled.Internal, ...
//	latency        Timer    time from the start of the call to its end
//	in_flight      Counter  calls started and not yet finished
//	msg_sent       Counter  stream messages sent (streaming methods only)
//	msg_received   Counter  stream messages received (streaming methods only)
//
// and the same metrics summed over all methods under
// "<prefix>.total.<side>." (total msg_sent and msg_received are registered
// even when only unary methods are called). For example, with prefix "rpc" a
// server that serves "/grpc.health.v1.Health/Check" gets
// "rpc.grpc_health_v1_Health.Check.server.started",
// "rpc.grpc_health_v1_Health.Check.server.handled.OK",
// "rpc.total.server.latency" and so on.
//
// Names are made to pass unchanged through go-metrics' exporters and the
// usual bridges (graphite, influxdb, expvar, prometheus, which turns '.' into
// '_'): segments are separated by '.', and in the service and method segments
// every byte outside [A-Za-z0-9_] (the dots of a package-qualified service
// name included) becomes '_', and an empty segment becomes "_". The prefix
// keeps its dots; its empty segments are dropped and its other bytes are
// sanitized the same way. Start the prefix with a letter for Prometheus. Two
// methods whose names differ only in replaced bytes share their metrics.
//
// A handled code outside grpc-go's known codes is spelled as
// codes.Code.String() sanitized: handled.Code_99_. Only the first 16 such
// codes seen on a side get names of their own; further ones (a server may
// send any number as its status code) are counted under handled.Code_other,
// so that a peer cannot grow the registry without bound. On the server a handler
// that panics is counted as handled.Internal before the panic goes on; a
// context error returned by a handler counts as Canceled or
// DeadlineExceeded, as grpc-go reports it to the peer. On the client a
// stream ends when grpc-go says so through grpc.OnFinish (an experimental
// grpc-go API): after RecvMsg returns an error, or when the call's context
// is done, so inner client interceptors must pass the call options on.
//
// Only the first DefaultMaxMethods (see WithMaxMethods) distinct methods of a
// side get their own names; calls to further methods are recorded under
// "<prefix>._other._other.<side>.", so that peers sending arbitrary method
// names (to a server with grpc.UnknownServiceHandler) cannot grow the
// registry without bound.
//
// # Caching and sharing
//
// The metrics of a method are looked up in the Backend once, on the
// method's first call, and cached in a sync.Map keyed by the full method
// name; a per-code counter is resolved on the first call that ends with that
// code. The hot path formats no strings and, for unary calls, allocates
// nothing. The latency Timers GoMetrics creates batch their updates (see
// GoMetrics): a go-metrics StandardTimer reads the clock and computes an
// exponential on every update, which made up most of the interceptors' cost.
//
// GoMetrics uses Registry.GetOrRegister, so the metrics live in the user's
// registry next to the user's own metrics, interceptors built with one
// registry and prefix share them, and a metric the user registered first
// under one of these names (with the right type) is used as is.
//
// # Name conflicts
//
// go-metrics' GetOrRegisterCounter and GetOrRegisterTimer panic when the
// name holds a metric of another type; this package never does. GoMetrics
// reports the case as a *ConflictError. New returns it for the totals;
// otherwise (the New*Interceptor functions, and per-method metrics) the
// conflicting metric is not recorded (a no-op stands in for it), the rest are,
// and the error is passed once to the handler set with WithErrorHandler (by
// default, logged through grpclog).
//
// # Backends
//
// github.com/rcrowley/go-metrics is archived upstream. The interceptors
// depend on it only through Backend, with Counter (Inc, Dec) and Timer
// (Update) as its metric types, so another metrics library plugs in by
// implementing Backend and passing it to New.
package metricsint
