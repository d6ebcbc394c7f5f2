package handshake

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc/credentials"
)

// Messenger sends and receives length-prefixed messages on the secured
// connection. Recv returns an error matching ErrRejected (with the peer's
// reason) if the peer rejected. Messages are bounded by WithMaxMessageSize in
// both directions. A Messenger is not safe for concurrent use and must not be
// used after the function it was given to returns.
type Messenger interface {
	Send(msg []byte) error
	Recv() ([]byte, error)
}

// ClientFunc runs on the client after the inner credentials' handshake, on the
// secured connection. ctx carries the handshake's deadline. inner is the inner
// credentials' AuthInfo (e.g. credentials.TLSInfo). What it returns is kept in
// the connection's AuthInfo (AuthInfo.Value). Returning an error fails the
// connection; return Reject(reason) to tell the server why.
type ClientFunc func(ctx context.Context, m Messenger, inner credentials.AuthInfo) (any, error)

// ServerFunc runs on the server after the inner credentials' handshake, on
// the secured connection. ctx carries the handshake's deadline (WithTimeout).
// inner is the inner credentials' AuthInfo. What it returns is kept in the
// connection's AuthInfo (AuthInfo.Value), read back in handlers with
// FromContext. Return Reject(reason) to refuse the client with a reason it is
// told; any other error is reported to the client as a generic failure. It
// must return once ctx is done: the wrapper cannot stop it, and until it
// returns its connection holds one of the WithMaxConcurrentHandshakes slots.
type ServerFunc func(ctx context.Context, m Messenger, inner credentials.AuthInfo) (any, error)

// Funcs are the two sides of the custom exchange. One value usually serves
// both the client and the server credentials of a program.
type Funcs struct {
	Client ClientFunc // nil: nothing to do on the client side
	Server ServerFunc // nil: nothing to do on the server side
}

// errSaturated is returned when no server handshake slot frees in time.
var errSaturated = errors.New("handshake: too many concurrent handshakes: no slot freed within the timeout")

// errProtocol marks a peer that broke the framing.
var errProtocol = errors.New("handshake: protocol error")

// aLongTimeAgo is a deadline in the past, used to unblock I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

type creds struct {
	inner credentials.TransportCredentials
	funcs Funcs
	cfg   config
	sem   *semaphore.Weighted
}

// Wrap returns TransportCredentials that run inner's handshake and then, on
// the secured connection and before gRPC uses it, f.Client (in
// ClientHandshake) or f.Server (in ServerHandshake). After the functions
// return, the server tells the client whether it is accepted, so a refused
// client fails with the server's reason rather than a bare EOF.
//
// The connection handed to gRPC is inner's own secured connection: the
// exchange adds nothing per message afterwards. Both peers must use Wrap.
// Wrap panics if inner is nil.
func Wrap(inner credentials.TransportCredentials, f Funcs, opts ...Option) credentials.TransportCredentials {
	if inner == nil {
		panic("handshake: Wrap called with nil inner credentials")
	}
	cfg := newConfig(opts)
	return &creds{inner: inner, funcs: f, cfg: cfg, sem: semaphore.NewWeighted(cfg.maxConcurrent)}
}

// ClientHandshake implements credentials.TransportCredentials. It closes
// rawConn on failure.
func (c *creds) ClientHandshake(ctx context.Context, authority string, rawConn net.Conn) (_ net.Conn, _ credentials.AuthInfo, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()

	var secured net.Conn
	defer func() {
		if err != nil {
			closeConns(rawConn, secured)
		}
	}()
	if err := rawConn.SetDeadline(deadline); err != nil {
		return nil, nil, fmt.Errorf("handshake: setting deadline: %w", err)
	}
	// Unblock the exchange's reads and writes if grpc-go cancels ctx.
	stop := context.AfterFunc(ctx, func() { _ = rawConn.SetDeadline(aLongTimeAgo) })

	secured, innerAI, err := c.inner.ClientHandshake(ctx, authority, rawConn)
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("handshake: inner %s handshake: %w", c.inner.Info().SecurityProtocol, err)
	}
	if err := secured.SetDeadline(deadline); err != nil {
		stop()
		return nil, nil, fmt.Errorf("handshake: setting deadline: %w", err)
	}
	value, err := c.exchange(ctx, secured, innerAI, "server", c.funcs.Client)
	if !stop() && err == nil {
		err = fmt.Errorf("handshake: %w", context.Cause(ctx))
	}
	if err != nil {
		return nil, nil, err
	}
	if err := clearDeadlines(secured, rawConn); err != nil {
		return nil, nil, err
	}
	return secured, newAuthInfo(innerAI, value), nil
}

// ServerHandshake implements credentials.TransportCredentials. grpc-go gives
// it no context: the handshake, the inner one included, is bounded by
// WithTimeout through connection deadlines, and at most
// WithMaxConcurrentHandshakes run at once. It closes rawConn on failure.
//
// On success the returned connection keeps a deadline WithTimeout from now:
// grpc-go's server reads the client's HTTP/2 preface under it and then
// clears it, as it does for its own connection timeout. Other callers must
// clear it themselves.
func (c *creds) ServerHandshake(rawConn net.Conn) (_ net.Conn, _ credentials.AuthInfo, err error) {
	deadline := time.Now().Add(c.cfg.timeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	var secured net.Conn
	defer func() {
		if err != nil {
			closeConns(rawConn, secured)
		}
	}()
	if err := c.sem.Acquire(ctx, 1); err != nil {
		return nil, nil, errSaturated
	}
	defer c.sem.Release(1)

	if err := rawConn.SetDeadline(deadline); err != nil {
		return nil, nil, fmt.Errorf("handshake: setting deadline: %w", err)
	}
	secured, innerAI, err := c.inner.ServerHandshake(rawConn)
	if err != nil {
		return nil, nil, fmt.Errorf("handshake: inner %s handshake: %w", c.inner.Info().SecurityProtocol, err)
	}
	if err := secured.SetDeadline(deadline); err != nil {
		return nil, nil, fmt.Errorf("handshake: setting deadline: %w", err)
	}
	value, err := c.exchange(ctx, secured, innerAI, "client", c.funcs.Server)
	if err != nil {
		return nil, nil, err
	}
	// grpc-go's server reads the client's HTTP/2 preface next, under the
	// connection timeout it set before calling us and clears afterwards.
	// Ours replaced it, so leave a fresh bounded window rather than none:
	// an authenticated client must not stall the preface forever.
	if err := secured.SetDeadline(time.Now().Add(c.cfg.timeout)); err != nil {
		return nil, nil, fmt.Errorf("handshake: setting deadline: %w", err)
	}
	return secured, newAuthInfo(innerAI, value), nil
}

// exchange runs fn (if any) on conn, sends the local verdict and reads the
// peer's. peer names the other side ("server" or "client").
func (c *creds) exchange(ctx context.Context, conn net.Conn, innerAI credentials.AuthInfo, peer string, fn func(context.Context, Messenger, credentials.AuthInfo) (any, error)) (any, error) {
	m := &messenger{rw: conn, maxMsg: c.cfg.maxMsg, side: peer}
	var (
		value any
		ferr  error
	)
	if fn != nil {
		value, ferr = fn(ctx, m, innerAI)
	}
	m.done.Store(true)

	if ferr == nil && m.err == nil {
		if err := writeFrame(conn, frameAccept, nil); err != nil {
			return nil, err
		}
		if err := m.awaitFinal(); err != nil {
			return nil, err
		}
		return value, nil
	}

	// The exchange failed. Tell the peer why where the connection still
	// works, then wait for its final frame so that closing the connection
	// does not reset it before the peer has read ours.
	retErr := failure(m, ferr, localRole(peer)) // before draining changes m
	cause := ferr
	if m.err != nil {
		cause = m.err
	}
	if m.peerRejected != nil {
		cause = m.peerRejected
	}
	reason, timedOut, canSend := classify(ctx, cause, ferr, localRole(peer))
	if canSend {
		if timedOut {
			_ = conn.SetWriteDeadline(time.Now().Add(c.grace()))
		}
		if writeFrame(conn, frameReject, []byte(reason)) == nil && !timedOut && m.err == nil {
			m.drainFinal()
		}
	}
	return nil, retErr
}

// failure returns the error a failed exchange reports locally: the peer's
// rejection if it refused first, the local Reject, the connection's failure,
// or the function's error.
func failure(m *messenger, ferr error, role string) error {
	var rj *rejectError
	switch {
	case m.peerRejected != nil:
		return m.peerRejected
	case errors.As(ferr, &rj):
		return rj
	case m.err != nil:
		return m.err
	case errors.Is(ferr, context.DeadlineExceeded) || errors.Is(ferr, os.ErrDeadlineExceeded):
		return fmt.Errorf("handshake: timed out: %w", ferr)
	default:
		return fmt.Errorf("handshake: %s function failed: %w", role, ferr)
	}
}

// classify picks the reason sent to the peer for a failed exchange, whether
// the failure was a timeout, and whether the connection can still carry it.
func classify(ctx context.Context, cause, ferr error, role string) (reason string, timedOut, canSend bool) {
	var rj *rejectError
	var rd *rejectedError
	switch {
	case errors.As(cause, &rd):
		return "aborted after the peer's rejection", false, true
	case errors.As(ferr, &rj) && cause == ferr:
		return rj.reason, false, true
	case errors.Is(cause, os.ErrDeadlineExceeded) || errors.Is(cause, context.DeadlineExceeded) || ctx.Err() != nil:
		return reasonTimeout, true, true
	case errors.Is(cause, errProtocol) || errors.Is(cause, errPeerFinished):
		return reasonProtocol, false, true
	case cause != ferr:
		// The connection itself failed (EOF, reset): nothing to tell.
		return "", false, false
	default:
		if role == "server" {
			return reasonServerFailed, false, true
		}
		return reasonClientFailed, false, true
	}
}

// grace is how long a timed-out side may spend telling the peer so.
func (c *creds) grace() time.Duration { return min(c.cfg.timeout/4, time.Second) }

func localRole(peer string) string {
	if peer == "server" {
		return "client"
	}
	return "server"
}

func clearDeadlines(secured, rawConn net.Conn) error {
	if err := secured.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("handshake: clearing deadline: %w", err)
	}
	if err := rawConn.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("handshake: clearing deadline: %w", err)
	}
	return nil
}

// closeConns closes the raw connection first, so that closing the secured
// one cannot block on a peer that does not read (a TLS close_notify).
func closeConns(rawConn, secured net.Conn) {
	_ = rawConn.Close()
	if secured != nil {
		_ = secured.Close()
	}
}

// Info returns the inner credentials' ProtocolInfo unchanged: grpc-go derives
// the :scheme from SecurityProtocol ("tls" gives "https").
func (c *creds) Info() credentials.ProtocolInfo { return c.inner.Info() }

// Clone returns a copy with a clone of the inner credentials, the same
// functions and options, and its own concurrency limit of the same size.
func (c *creds) Clone() credentials.TransportCredentials {
	return &creds{
		inner: c.inner.Clone(),
		funcs: c.funcs,
		cfg:   c.cfg,
		sem:   semaphore.NewWeighted(c.cfg.maxConcurrent),
	}
}

// OverrideServerName delegates to the inner credentials.
//
// Deprecated: grpc-go no longer calls it; use grpc.WithAuthority.
func (c *creds) OverrideServerName(name string) error {
	return c.inner.OverrideServerName(name)
}
