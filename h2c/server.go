package h2c

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
)

// ErrServerClosed is returned by Server.Serve after Server.Close.
var ErrServerClosed = errors.New("h2c: server closed")

const (
	defaultReadHeaderTimeout   = 10 * time.Second
	defaultMaxHeaderBytes      = 64 << 10
	defaultMaxUpgradeBodyBytes = 64 << 10
	defaultIdleTimeout         = 2 * time.Minute
	sniffBufferSize            = 16 << 10
)

// Server serves cleartext HTTP/2 (h2c) reached by HTTP/1.1 `Upgrade: h2c` or
// by prior knowledge, and plain HTTP/1.1 on the same port.
//
// Which path a connection takes:
//
//   - The HTTP/2 connection preface (prior knowledge: Dialer with
//     PriorKnowledge, curl --http2-prior-knowledge, h2load) and an upgrade
//     from Dialer (marked by a header that the 101 echoes): when HTTP2Handler
//     is a *grpc.Server, grpc-go's native server transport, through an
//     internal listener on which Server calls the gRPC server's Serve (which
//     answers a non-gRPC request, such as a plain GET, with 415). Any other
//     HTTP2Handler is served by golang.org/x/net/http2.Server.ServeConn.
//   - A foreign upgrade (curl --http2, any RFC 7540 §3.2 client): after the
//     101 the upgrade request becomes stream 1 and the connection is served by
//     http2.Server.ServeConn with HTTP2Handler (for a *grpc.Server, its
//     ServeHTTP method, which is slower than the native transport).
//   - HTTP/1.1 without an h2c upgrade: NonUpgradeHandler, through an internal
//     net/http server.
//   - A malformed h2c upgrade (bad, missing or repeated HTTP2-Settings,
//     Connection not listing Upgrade and HTTP2-Settings, a body over
//     MaxUpgradeBodyBytes, not HTTP/1.1): 400 Bad Request, and the connection
//     is closed.
//
// Server is also an http.Handler (see ServeHTTP) for use inside an
// http.Server of one's own; Serve is the better choice where it fits, as it
// sniffs prior knowledge itself and bounds it in time.
//
// Set the exported fields before the first call to Serve or ServeHTTP and do
// not change them afterwards. A Server must not be copied after first use.
type Server struct {
	// HTTP2Handler serves HTTP/2 requests. A *grpc.Server gets its
	// connections on its native transport wherever the peer allows it.
	// Required.
	HTTP2Handler http.Handler

	// NonUpgradeHandler serves HTTP/1.1 requests that do not ask for h2c.
	// Nil means an answer of 426 Upgrade Required naming h2c.
	NonUpgradeHandler http.Handler

	// HTTP2 configures the golang.org/x/net/http2 server used for foreign
	// upgrades and non-gRPC handlers. Nil means defaults.
	HTTP2 *http2.Server

	// ReadHeaderTimeout bounds the wait for the first bytes of a connection
	// (to tell prior knowledge from HTTP/1.1), for each HTTP/1.1 request
	// header, and for the body of an upgrade request. Zero means 10s.
	ReadHeaderTimeout time.Duration

	// IdleTimeout closes HTTP/1.1 keep-alive connections idle that long.
	// Zero means 2 minutes.
	IdleTimeout time.Duration

	// MaxHeaderBytes bounds an HTTP/1.1 request header. Zero means 64 KiB.
	MaxHeaderBytes int

	// MaxUpgradeBodyBytes bounds the body of a foreign upgrade request,
	// which must be read in full before switching protocols. Zero means
	// 64 KiB.
	MaxUpgradeBodyBytes int64

	// ErrorLog receives net/http's and x/net/http2's connection errors. Nil
	// means they are discarded.
	ErrorLog *log.Logger

	initOnce sync.Once
	native   *grpc.Server
	nativeLn *handoffListener // nil unless native != nil
	httpLn   *handoffListener
	httpSrv  *http.Server
	h2       *http2.Server
	base     *http.Server // BaseConfig for http2.Server.ServeConn
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{} // closed by Close

	mu        sync.Mutex
	closed    bool
	started   bool // nativeLn and httpLn are being served
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{} // owned by this Server (not handed off)
	wg        sync.WaitGroup

	// Counters of the path each connection took, for tests and debugging.
	nNative, nHTTP2, nForeign, nHTTP1 atomic.Int64
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.done = make(chan struct{})
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[net.Conn]struct{})
		errLog := s.ErrorLog
		if errLog == nil {
			errLog = log.New(io.Discard, "", 0)
		}
		s.base = &http.Server{ErrorLog: errLog}
		s.h2 = s.HTTP2
		if s.h2 == nil {
			s.h2 = &http2.Server{}
		}
		if gs, ok := s.HTTP2Handler.(*grpc.Server); ok {
			s.native = gs
			s.nativeLn = newHandoffListener("h2c-native")
		}
		s.httpLn = newHandoffListener("h2c-http1")
		s.httpSrv = &http.Server{
			Handler:                      s,
			ReadHeaderTimeout:            s.readHeaderTimeout(),
			IdleTimeout:                  durationOr(s.IdleTimeout, defaultIdleTimeout),
			MaxHeaderBytes:               intOr(s.MaxHeaderBytes, defaultMaxHeaderBytes),
			ErrorLog:                     errLog,
			DisableGeneralOptionsHandler: true,
			BaseContext:                  func(net.Listener) context.Context { return s.ctx },
		}
	})
}

// start launches the goroutines that serve the internal listeners. It
// reports false once the Server is closed.
func (s *Server) start() bool {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.started {
		return true
	}
	s.started = true
	if s.nativeLn != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			// Returns when nativeLn is closed (by Close, or by the gRPC
			// server's Stop or GracefulStop).
			s.native.Serve(s.nativeLn)
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.httpSrv.Serve(s.httpLn)
	}()
	return true
}

func (s *Server) readHeaderTimeout() time.Duration {
	return durationOr(s.ReadHeaderTimeout, defaultReadHeaderTimeout)
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func intOr(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}

// Serve accepts connections on ln and serves each as described on Server,
// until ln fails or Close is called; it then returns ErrServerClosed (after
// Close) or the Accept error. Serve closes ln on return. Serve may be called
// on several listeners at once.
func (s *Server) Serve(ln net.Listener) error {
	if s.HTTP2Handler == nil {
		ln.Close()
		return errors.New("h2c: Server.HTTP2Handler is nil")
	}
	s.init()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	s.start()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return ErrServerClosed
			default:
			}
			if ne, ok := err.(interface{ Temporary() bool }); ok && ne.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-s.done:
					t.Stop()
					return ErrServerClosed
				}
				continue
			}
			return errorf("accept: %w", err)
		}
		delay = 0
		if !s.track(c) {
			c.Close()
			return ErrServerClosed
		}
		go s.serveConn(c)
	}
}

// track records c as owned by s and adds to s.wg; it fails once s is closed.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// untrack forgets c (handed off, or closed) and releases its s.wg slot.
func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// serveConn tells prior knowledge from HTTP/1.1 on a tracked connection.
func (s *Server) serveConn(c net.Conn) {
	defer s.untrack(c)
	if err := c.SetReadDeadline(time.Now().Add(s.readHeaderTimeout())); err != nil {
		c.Close()
		return
	}
	br := bufio.NewReaderSize(c, sniffBufferSize)
	preface, err := sniffPreface(br)
	if err != nil {
		c.Close() // slow, silent or gone before saying anything useful
		return
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		c.Close()
		return
	}
	pc := withPrefix(c, buffered(br))
	if preface {
		s.serveHTTP2(pc)
		return
	}
	s.nHTTP1.Add(1)
	if err := s.httpLn.handoff(pc, s.done); err != nil {
		c.Close()
	}
}

// sniffPreface reads from br until its bytes either start with the HTTP/2
// connection preface (true) or cannot (false). It never waits for more bytes
// than it needs to decide, so a short HTTP/1.1 request is not held up.
func sniffPreface(br *bufio.Reader) (bool, error) {
	for i := 1; i <= len(clientPreface); i++ {
		b, err := br.Peek(i)
		if err != nil {
			return false, err
		}
		if b[i-1] != clientPreface[i-1] {
			return false, nil
		}
	}
	return true, nil
}

// serveHTTP2 serves c, on which the client's connection preface comes next,
// and returns when c is handed off or done with.
func (s *Server) serveHTTP2(c net.Conn) {
	if s.nativeLn != nil {
		s.nNative.Add(1)
		if err := s.nativeLn.handoff(c, s.done); err != nil {
			c.Close()
		}
		return
	}
	s.nHTTP2.Add(1)
	s.h2.ServeConn(c, &http2.ServeConnOpts{
		Context:    s.ctx,
		BaseConfig: s.base,
		Handler:    s.HTTP2Handler,
	})
}

func (s *Server) serveNonUpgrade(w http.ResponseWriter, r *http.Request) {
	if s.NonUpgradeHandler != nil {
		s.NonUpgradeHandler.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Upgrade", "h2c")
	w.Header().Set("Connection", "Upgrade")
	http.Error(w, "h2c: this server speaks HTTP/2; upgrade to h2c", http.StatusUpgradeRequired)
}

// ServeHTTP makes Server an http.Handler for an http.Server of one's own:
// HTTP/2 requests go to HTTP2Handler, HTTP/1.1 `Upgrade: h2c` requests are
// upgraded (taking over the connection), a "PRI *" request (prior knowledge
// reaching an HTTP/1.1-only server) is served as HTTP/2, and everything else
// goes to NonUpgradeHandler. Close releases what ServeHTTP started.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h2 := r.ProtoMajor >= 2 || isH2CUpgrade(r.Header)
	if h2 && s.HTTP2Handler == nil {
		http.Error(w, "h2c: Server.HTTP2Handler is nil", http.StatusInternalServerError)
		return
	}
	switch {
	case r.ProtoMajor >= 2 && r.Method == "PRI" && r.RequestURI == "*":
		s.servePRI(w, r)
	case r.ProtoMajor >= 2:
		s.HTTP2Handler.ServeHTTP(w, r)
	case isH2CUpgrade(r.Header):
		s.serveUpgrade(w, r)
	default:
		s.serveNonUpgrade(w, r)
	}
}

// servePRI finishes reading the connection preface that net/http took for an
// HTTP/2.0 "PRI *" request and serves the connection as HTTP/2.
func (s *Server) servePRI(w http.ResponseWriter, _ *http.Request) {
	if !s.start() {
		http.Error(w, ErrServerClosed.Error(), http.StatusServiceUnavailable)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "h2c: cannot take over the connection for prior knowledge", http.StatusInternalServerError)
		return
	}
	if !s.track(c) {
		c.Close()
		return
	}
	defer s.untrack(c)
	const rest = "SM\r\n\r\n"
	c.SetReadDeadline(time.Now().Add(s.readHeaderTimeout()))
	b := make([]byte, len(rest))
	if _, err := io.ReadFull(brw, b); err != nil || string(b) != rest {
		c.Close()
		return
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		c.Close()
		return
	}
	s.serveHTTP2(withPrefix(c, append([]byte(clientPreface), buffered(brw.Reader)...)))
}

// serveUpgrade validates an `Upgrade: h2c` request and switches protocols.
func (s *Server) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, err error) {
		w.Header().Set("Connection", "close")
		http.Error(w, err.Error(), code)
	}
	settings, err := checkUpgrade(r)
	if err != nil {
		fail(http.StatusBadRequest, err)
		return
	}
	native := r.Header.Get(nativeHeader) == nativeValue
	rc := http.NewResponseController(w)
	limit := s.MaxUpgradeBodyBytes
	if limit <= 0 {
		limit = defaultMaxUpgradeBodyBytes
	}
	var body []byte
	switch {
	case native && (r.ContentLength != 0 || len(r.TransferEncoding) > 0):
		fail(http.StatusBadRequest, errors.New("h2c: a native upgrade request must not carry a body"))
		return
	case r.ContentLength > limit:
		fail(http.StatusBadRequest, errorf("upgrade request body of %d bytes exceeds the limit of %d", r.ContentLength, limit))
		return
	case r.ContentLength != 0:
		rc.SetReadDeadline(time.Now().Add(s.readHeaderTimeout()))
		body, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil {
			fail(http.StatusBadRequest, errorf("read upgrade request body: %w", err))
			return
		}
		if int64(len(body)) > limit {
			fail(http.StatusBadRequest, errorf("upgrade request body exceeds the limit of %d bytes", limit))
			return
		}
	}
	if !s.start() {
		fail(http.StatusServiceUnavailable, ErrServerClosed)
		return
	}
	c, brw, err := rc.Hijack()
	if err != nil {
		fail(http.StatusInternalServerError, errorf("cannot take over the connection: %w", err))
		return
	}
	if !s.track(c) {
		c.Close()
		return
	}
	defer s.untrack(c)

	resp := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
	if native {
		resp += nativeHeader + ": " + nativeValue + "\r\n"
	}
	resp += "\r\n"
	c.SetDeadline(time.Now().Add(s.readHeaderTimeout()))
	if _, err := io.WriteString(c, resp); err != nil {
		c.Close()
		return
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		c.Close()
		return
	}
	pc := withPrefix(c, buffered(brw.Reader))
	if native {
		s.serveHTTP2(pc)
		return
	}
	// RFC 7540 §3.2: the upgrade request is stream 1, half-closed (remote),
	// answered over HTTP/2.
	s.nForeign.Add(1)
	up := r.Clone(s.ctx)
	up.Proto, up.ProtoMajor, up.ProtoMinor = "HTTP/2.0", 2, 0
	for _, h := range []string{"Connection", "Upgrade", "Http2-Settings", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding"} {
		up.Header.Del(h)
	}
	up.TransferEncoding = nil
	up.ContentLength = int64(len(body))
	up.Body = io.NopCloser(bytes.NewReader(body))
	s.h2.ServeConn(pc, &http2.ServeConnOpts{
		Context:        s.ctx,
		BaseConfig:     s.base,
		Handler:        s.HTTP2Handler,
		UpgradeRequest: up,
		Settings:       settings,
	})
}

// Close stops every Serve call (closing its listener), closes the
// connections Server still owns (being sniffed, HTTP/1.1, or served by
// x/net/http2), stops handing connections to the gRPC server, and waits for
// Server's goroutines. Connections already on a *grpc.Server's native
// transport belong to it: stop them with its Stop or GracefulStop. Close is
// idempotent and returns nil.
func (s *Server) Close() error {
	s.init()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	close(s.done)
	s.cancel()
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	if s.nativeLn != nil {
		s.nativeLn.Close()
	}
	s.httpLn.Close()
	s.httpSrv.Close()
	s.wg.Wait()
	return nil
}
