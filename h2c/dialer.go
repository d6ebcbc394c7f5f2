package h2c

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

const (
	defaultHandshakeTimeout       = 10 * time.Second
	defaultMaxResponseHeaderBytes = 16 << 10
)

// Dialer opens cleartext HTTP/2 connections for grpc-go, by HTTP/1.1 Upgrade
// (the default) or by prior knowledge. Use its DialContext method with
// grpc.WithContextDialer and insecure transport credentials:
//
//	conn, err := grpc.NewClient(addr,
//		grpc.WithContextDialer(h2c.Dialer{}.DialContext),
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//
// On an upgrade Dialer sends `OPTIONS <Path>` with `Upgrade: h2c`, a valid
// HTTP2-Settings header and a marker header. A Server echoes the marker on
// its 101 and then reads the client's connection preface as a fresh HTTP/2
// connection (grpc-go's native transport, when it serves a *grpc.Server). Any
// other server answers the OPTIONS request on stream 1 (RFC 7540 §3.2); the
// returned connection then renumbers client stream IDs by two in both
// directions so that grpc-go's first stream does not collide with it.
//
// The zero value is ready to use and a Dialer is safe for concurrent use.
type Dialer struct {
	// PriorKnowledge skips the HTTP/1.1 upgrade and starts HTTP/2 at once
	// (RFC 9113 §3.3). The server must expect it.
	PriorKnowledge bool

	// Dial opens the underlying connection. Nil means a net.Dialer's
	// DialContext with network "tcp".
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// Host is the Host header of the upgrade request. Empty means addr.
	Host string

	// Path is the request target of the upgrade request. Empty means "/".
	Path string

	// HandshakeTimeout bounds the upgrade exchange when ctx has a later
	// deadline or none. Zero means 10s.
	HandshakeTimeout time.Duration

	// MaxResponseHeaderBytes bounds the upgrade response. Zero means 16 KiB.
	MaxResponseHeaderBytes int
}

// DialContext connects to addr and returns a connection on which the caller
// (normally grpc-go's client transport) writes the HTTP/2 connection preface.
// The upgrade honours ctx's deadline and cancellation; any answer but
// 101 Switching Protocols to h2c is an error. The connection is closed on
// failure.
func (d Dialer) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	dial := d.Dial
	if dial == nil {
		var nd net.Dialer
		dial = nd.DialContext
	}
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, errorf("dial %s: %w", addr, err)
	}
	if d.PriorKnowledge {
		return c, nil
	}
	nc, err := d.upgrade(ctx, c, addr)
	if err != nil {
		c.Close()
		return nil, err
	}
	return nc, nil
}

// upgrade runs the HTTP/1.1 exchange on c.
func (d Dialer) upgrade(ctx context.Context, c net.Conn, addr string) (net.Conn, error) {
	timeout := d.HandshakeTimeout
	if timeout <= 0 {
		timeout = defaultHandshakeTimeout
	}
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := c.SetDeadline(deadline); err != nil {
		return nil, errorf("upgrade: %w", err)
	}
	stop := context.AfterFunc(ctx, func() {
		c.SetDeadline(time.Unix(1, 0)) // unblock the exchange now
	})
	nc, err := d.exchange(c, addr)
	if !stop() {
		return nil, errorf("upgrade to h2c at %s: %w", addr, context.Cause(ctx))
	}
	if err != nil {
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			// The connection's deadline was ctx's and fired first.
			return nil, errorf("upgrade to h2c at %s: %w", addr, context.DeadlineExceeded)
		}
		return nil, err
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, errorf("upgrade: %w", err)
	}
	return nc, nil
}

func (d Dialer) exchange(c net.Conn, addr string) (net.Conn, error) {
	host, path := d.Host, d.Path
	if host == "" {
		host = addr
	}
	if path == "" {
		path = "/"
	}
	if strings.ContainsAny(host+path, " \r\n\x00") || !strings.HasPrefix(path, "/") {
		return nil, errorf("invalid upgrade Host %q or Path %q", host, path)
	}
	req := "OPTIONS " + path + " HTTP/1.1\r\n" +
		"Host: " + host + "\r\n" +
		"Connection: Upgrade, HTTP2-Settings\r\n" +
		"Upgrade: h2c\r\n" +
		"HTTP2-Settings: " + dialerSettings + "\r\n" +
		nativeHeader + ": " + nativeValue + "\r\n" +
		"Content-Length: 0\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return nil, errorf("write upgrade request to %s: %w", addr, err)
	}
	limit := d.MaxResponseHeaderBytes
	if limit <= 0 {
		limit = defaultMaxResponseHeaderBytes
	}
	native, prefix, err := readUpgradeResponse(c, limit)
	if err != nil {
		return nil, errorf("upgrade to h2c at %s: %w", addr, err)
	}
	if native {
		return withPrefix(c, prefix), nil
	}
	return newRenumberConn(c, prefix)
}

// errNotSwitched is wrapped by the error for a response other than 101.
var errNotSwitched = errors.New("server did not switch protocols")

// readUpgradeResponse reads the server's answer to the upgrade request, at
// most limit bytes of it, through a buffered reader. It returns whether the
// server took the native path and the bytes read past the response, which
// already belong to the HTTP/2 connection.
func readUpgradeResponse(r io.Reader, limit int) (native bool, prefix []byte, err error) {
	lr := &io.LimitedReader{R: r, N: int64(limit)}
	br := bufio.NewReaderSize(lr, 4096)
	req := &http.Request{Method: http.MethodOptions}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		if lr.N <= 0 {
			return false, nil, fmt.Errorf("response header exceeds %d bytes", limit)
		}
		return false, nil, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// Don't read the body: it could be large or never end.
		return false, nil, fmt.Errorf("%w: got %q, want 101 Switching Protocols", errNotSwitched, resp.Status)
	}
	if !strings.EqualFold(strings.TrimSpace(resp.Header.Get("Upgrade")), "h2c") {
		return false, nil, fmt.Errorf("101 response upgrades to %q, want h2c", resp.Header.Get("Upgrade"))
	}
	return resp.Header.Get(nativeHeader) == nativeValue, buffered(br), nil
}
