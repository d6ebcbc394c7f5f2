package kvcertverify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/resolver"

	"github.com/grpcutil/grpcutil/kvstore"
)

var (
	// ErrRevoked is matched (errors.Is) by the error for a server whose
	// bundle is not in the store: it was revoked, or never published.
	ErrRevoked = errors.New("kvcertverify: revoked: no certificate published for the address")
	// ErrMismatch is matched by the error for a server certificate that is
	// not byte-identical to any certificate published for its address.
	ErrMismatch = errors.New("kvcertverify: certificate mismatch")
	// ErrExpired is matched by the error for a server certificate that is
	// published but expired or not yet valid.
	ErrExpired = errors.New("kvcertverify: certificate expired or not yet valid")
	// ErrInvalidBundle is matched by the error for a bundle that does not
	// parse, is too large, or holds a certificate that may not be pinned
	// for the address (for another host, a CA certificate, ...).
	ErrInvalidBundle = errors.New("kvcertverify: invalid certificate bundle")
)

// Error is the error of a failed client verification: it names the server
// address and wraps the reason, which matches one of the Err* sentinels, a
// store error, or a TLS error.
type Error struct {
	Addr   string // the server address the certificates were looked up for
	Reason error
}

func (e *Error) Error() string {
	return "kvcertverify: server " + e.Addr + ": " + strings.TrimPrefix(e.Reason.Error(), "kvcertverify: ")
}

// Unwrap returns the reason.
func (e *Error) Unwrap() error { return e.Reason }

type addrKey struct{}

// WithServerAddress returns addr marked with the address its server
// advertises (and publishes its certificates under), for a resolver whose
// addresses differ from it: a DNS name resolved to IP addresses, or a
// connection through a proxy. Without the mark, the client looks up the
// remote address of the connection it dialed.
func WithServerAddress(addr resolver.Address, advertised string) resolver.Address {
	addr.Attributes = addr.Attributes.WithValue(addrKey{}, advertised)
	return addr
}

// ClientCredentials are gRPC client TransportCredentials that accept a
// server only if its certificate is byte-identical to one published, and
// unexpired, under the prefix for the address of the backend dialed (the
// connection's remote address, not the channel authority, which with a
// resolver names the service rather than a backend).
//
// Bundles are cached per address for the cache TTL, and failed lookups for
// the negative TTL; concurrent handshakes to one address share one store
// read. A certificate missing from a cached bundle causes one refetch (the
// server may have rotated) before the handshake fails; if the store cannot
// be read, the cached bundle stays until its TTL ends. Verification runs in
// tls.Config.VerifyConnection, so it also holds for resumed TLS sessions.
//
// Create them with NewClientTransportCredentials. They are safe for
// concurrent use.
type ClientCredentials struct {
	store    kvstore.Store
	cfg      clientConfig
	opts     []ClientOption
	err      error // from invalid options; every handshake fails with it
	info     credentials.ProtocolInfo
	sessions *sessionCache

	sf         singleflight.Group
	mu         sync.Mutex
	entries    map[string]*entry
	lastForced map[string]time.Time
	conns      map[string]map[*trackedConn]struct{} // with WithCloseRevoked

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// entry is the outcome of one store read for one address.
type entry struct {
	certs   []*x509.Certificate
	err     error
	expires time.Time
}

// NewClientTransportCredentials returns client credentials that verify
// servers against the certificates published in store. Invalid options make
// every handshake fail with an error that says which; Err reports it too.
//
// With WithCloseRevoked, call Close when done; otherwise Close is optional.
func NewClientTransportCredentials(store kvstore.Store, opts ...ClientOption) *ClientCredentials {
	var cfg clientConfig
	cfg.defaults()
	cfg.ttl = DefaultCacheTTL
	cfg.negativeTTL = DefaultNegativeTTL
	cfg.refetchInterval = DefaultRefetchInterval
	cfg.maxBundleSize = DefaultMaxBundleSize
	cfg.maxBundleCerts = DefaultMaxBundleCerts
	cfg.maxEntries = defaultMaxCacheEntries
	for _, o := range opts {
		o.applyClient(&cfg)
	}
	c := &ClientCredentials{
		store:      store,
		cfg:        cfg,
		opts:       append([]ClientOption(nil), opts...),
		err:        cfg.validate(),
		info:       credentials.ProtocolInfo{SecurityProtocol: "tls"},
		sessions:   newSessionCache(),
		entries:    map[string]*entry{},
		lastForced: map[string]time.Time{},
		conns:      map[string]map[*trackedConn]struct{}{},
	}
	if c.err == nil && store == nil {
		c.err = errors.New("kvcertverify: nil store")
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if c.err == nil && cfg.closeRevoked > 0 {
		c.wg.Add(1)
		go c.watch()
	}
	return c
}

// Err returns the error of invalid options, or nil.
func (c *ClientCredentials) Err() error { return c.err }

// Close stops the goroutine WithCloseRevoked starts and cancels store reads
// in flight. Handshakes after Close fail. It is idempotent.
func (c *ClientCredentials) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		c.wg.Wait()
	})
	return nil
}

// ClientHandshake implements credentials.TransportCredentials. authority is
// not used to find the certificates: see ClientCredentials. It closes
// rawConn on failure.
func (c *ClientCredentials) ClientHandshake(ctx context.Context, authority string, rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	addr, host, err := c.serverAddr(ctx, rawConn)
	if err != nil {
		rawConn.Close()
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.handshakeTimeout)
	defer cancel()
	conn := tls.Client(rawConn, c.tlsConfig(ctx, addr, host))
	if err := conn.HandshakeContext(ctx); err != nil {
		rawConn.Close()
		var ve *Error
		if errors.As(err, &ve) {
			return nil, nil, ve
		}
		return nil, nil, &Error{Addr: addr, Reason: fmt.Errorf("tls handshake: %w", err)}
	}
	info := credentials.TLSInfo{
		State:          conn.ConnectionState(),
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
	}
	if c.cfg.closeRevoked > 0 {
		return c.track(conn, addr, host), info, nil
	}
	return conn, info, nil
}

// ServerHandshake implements credentials.TransportCredentials; client
// credentials refuse it.
func (c *ClientCredentials) ServerHandshake(rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	rawConn.Close()
	return nil, nil, errors.New("kvcertverify: client credentials used for a server handshake")
}

// Info implements credentials.TransportCredentials.
func (c *ClientCredentials) Info() credentials.ProtocolInfo { return c.info }

// Clone implements credentials.TransportCredentials: new credentials with
// the same store and options, and a cache of their own.
func (c *ClientCredentials) Clone() credentials.TransportCredentials {
	return NewClientTransportCredentials(c.store, c.opts...)
}

// OverrideServerName implements credentials.TransportCredentials.
//
// Deprecated: as in grpc-go, it has no effect.
func (c *ClientCredentials) OverrideServerName(string) error { return nil }

// TLSConfig returns a tls.Config for a plain TLS client (net/http, say) of
// the server at addr, with the same verification as ClientHandshake.
func (c *ClientCredentials) TLSConfig(addr string) (*tls.Config, error) {
	if c.err != nil {
		return nil, c.err
	}
	canon, host, err := canonicalAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("kvcertverify: %w", err)
	}
	cfg := c.tlsConfig(c.ctx, canon, host)
	cfg.NextProtos = []string{"h2", "http/1.1"}
	return cfg, nil
}

func (c *ClientCredentials) tlsConfig(ctx context.Context, addr, host string) *tls.Config {
	sessions := &handshakeSessions{c: c}
	cfg := &tls.Config{
		// Trust rests on pinning, checked in VerifyConnection (which, unlike
		// VerifyPeerCertificate, also runs on resumed sessions), not on a CA.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if err := c.verify(ctx, addr, host, cs); err != nil {
				return err
			}
			sessions.leaf.Store(cs.PeerCertificates[0])
			return nil
		},
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"h2"},
		ClientSessionCache: sessions,
		Time:               c.cfg.now,
	}
	if _, err := netip.ParseAddr(host); err != nil {
		cfg.ServerName = host // SNI, and the session cache key
	}
	return cfg
}

// serverAddr returns the canonical address to look the certificates up by.
func (c *ClientCredentials) serverAddr(ctx context.Context, rawConn net.Conn) (addr, host string, err error) {
	if c.err != nil {
		return "", "", c.err
	}
	raw := rawConn.RemoteAddr().String()
	if a, ok := credentials.ClientHandshakeInfoFromContext(ctx).Attributes.Value(addrKey{}).(string); ok {
		raw = a
	}
	addr, host, err = canonicalAddr(raw)
	if err != nil {
		return "", "", fmt.Errorf("kvcertverify: server address: %w", err)
	}
	return addr, host, nil
}

// verify accepts cs if its leaf certificate is published for addr and
// valid now.
func (c *ClientCredentials) verify(ctx context.Context, addr, host string, cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return &Error{Addr: addr, Reason: errors.New("no server certificate")}
	}
	if c.ctx.Err() != nil {
		return &Error{Addr: addr, Reason: errors.New("client credentials closed")}
	}
	leaf := cs.PeerCertificates[0]
	e, fresh, err := c.lookup(ctx, addr, host, false)
	if err != nil {
		return &Error{Addr: addr, Reason: err}
	}
	reason := e.check(leaf, c.cfg.now())
	if reason == nil {
		return nil
	}
	if fresh || !c.mayRefetch(addr) {
		return &Error{Addr: addr, Reason: reason}
	}
	if e, _, err = c.lookup(ctx, addr, host, true); err != nil {
		return &Error{Addr: addr, Reason: err}
	}
	if reason = e.check(leaf, c.cfg.now()); reason != nil {
		return &Error{Addr: addr, Reason: reason}
	}
	return nil
}

func (e *entry) check(leaf *x509.Certificate, now time.Time) error {
	if e.err != nil {
		return e.err
	}
	for _, p := range e.certs {
		if !bytes.Equal(p.Raw, leaf.Raw) {
			continue
		}
		if now.Before(p.NotBefore) {
			return fmt.Errorf("%w: certificate not valid until %v", ErrExpired, p.NotBefore.UTC())
		}
		if now.After(p.NotAfter) {
			return fmt.Errorf("%w: certificate expired at %v", ErrExpired, p.NotAfter.UTC())
		}
		return nil
	}
	return fmt.Errorf("%w: the server's certificate (serial %x) is not one of the %d published", ErrMismatch, leaf.SerialNumber, len(e.certs))
}

// mayRefetch reports whether a mismatch may force a refetch of addr now,
// and if so records it.
func (c *ClientCredentials) mayRefetch(addr string) bool {
	now := c.cfg.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.lastForced[addr]; ok && now.Sub(t) < c.cfg.refetchInterval {
		return false
	}
	if len(c.lastForced) >= c.cfg.maxEntries {
		for a, t := range c.lastForced {
			if now.Sub(t) >= c.cfg.refetchInterval {
				delete(c.lastForced, a)
			}
		}
		if len(c.lastForced) >= c.cfg.maxEntries {
			return false
		}
	}
	c.lastForced[addr] = now
	return true
}

// lookup returns the cached entry for addr or, if there is none, it has
// expired, or force is set, a freshly read one (fresh is then true). Reads
// of one address are shared by all who ask meanwhile; they are bounded by
// the store timeout, not by ctx, which bounds only the wait.
func (c *ClientCredentials) lookup(ctx context.Context, addr, host string, force bool) (e *entry, fresh bool, err error) {
	if !force {
		c.mu.Lock()
		e := c.entries[addr]
		c.mu.Unlock()
		if e != nil && c.cfg.now().Before(e.expires) {
			return e, false, nil
		}
	}
	ch := c.sf.DoChan(addr, func() (any, error) { return c.fetch(addr, host), nil })
	select {
	case r := <-ch:
		return r.Val.(*entry), true, nil
	case <-ctx.Done():
		return nil, false, fmt.Errorf("kvcertverify: waiting for the certificate bundle: %w", ctx.Err())
	}
}

func (c *ClientCredentials) fetch(addr, host string) *entry {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.storeTimeout)
	defer cancel()
	key := c.cfg.prefix + addr
	v, err := c.store.Get(ctx, key)
	e := &entry{}
	storeErr := false
	switch {
	case errors.Is(err, kvstore.ErrNotFound):
		e.err = fmt.Errorf("%w (key %q)", ErrRevoked, key)
	case err != nil:
		e.err = fmt.Errorf("kvcertverify: read certificate bundle %q: %w", key, err)
		storeErr = true
	default:
		e.certs, e.err = c.parse(v, host)
	}
	now := c.cfg.now()
	ttl := c.cfg.ttl
	if e.err != nil {
		ttl = c.cfg.negativeTTL
	}
	e.expires = now.Add(ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.entries[addr]; storeErr && old != nil && old.err == nil && now.Before(old.expires) {
		// A forced refetch failed for want of the store: a good bundle
		// still within its TTL stays, so that an outage plus one
		// mismatching certificate (an impostor's) does not cut off the
		// genuine server. A deleted or invalid bundle does replace it.
		return old
	}
	if _, ok := c.entries[addr]; !ok && len(c.entries) >= c.cfg.maxEntries {
		for a, o := range c.entries {
			if !now.Before(o.expires) {
				delete(c.entries, a)
			}
		}
		for a := range c.entries {
			if len(c.entries) < c.cfg.maxEntries {
				break
			}
			delete(c.entries, a)
		}
	}
	c.entries[addr] = e
	return e
}

func (c *ClientCredentials) parse(v []byte, host string) ([]*x509.Certificate, error) {
	certs, err := ParseBundle(v, c.cfg.maxBundleSize, c.cfg.maxBundleCerts)
	if err != nil {
		return nil, err
	}
	for i, cert := range certs {
		if err := checkCert(cert, host); err != nil {
			return nil, bundleErr("certificate %d: %v", i+1, err)
		}
	}
	return certs, nil
}

// trackedConn is a connection WithCloseRevoked may close.
type trackedConn struct {
	*tls.Conn
	c          *ClientCredentials
	addr, host string
	once       sync.Once
}

func (t *trackedConn) Close() error {
	t.once.Do(func() {
		t.c.mu.Lock()
		defer t.c.mu.Unlock()
		m := t.c.conns[t.addr]
		delete(m, t)
		if len(m) == 0 {
			delete(t.c.conns, t.addr)
		}
	})
	return t.Conn.Close()
}

func (c *ClientCredentials) track(conn *tls.Conn, addr, host string) *trackedConn {
	t := &trackedConn{Conn: conn, c: c, addr: addr, host: host}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.conns[addr]
	if m == nil {
		m = map[*trackedConn]struct{}{}
		c.conns[addr] = m
	}
	m[t] = struct{}{}
	return t
}

// watch closes the connections to servers whose bundle is gone.
func (c *ClientCredentials) watch() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.closeRevoked)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		hosts := make(map[string]string, len(c.conns))
		for addr, m := range c.conns {
			for t := range m {
				hosts[addr] = t.host
				break
			}
		}
		c.mu.Unlock()
		for addr, host := range hosts {
			e, _, err := c.lookup(c.ctx, addr, host, false)
			if err != nil || !errors.Is(e.err, ErrRevoked) {
				continue
			}
			c.mu.Lock()
			var victims []*trackedConn
			for t := range c.conns[addr] {
				victims = append(victims, t)
			}
			c.mu.Unlock()
			for _, t := range victims {
				c.cfg.logger.Printf("kvcertverify: server %s revoked: closing connection", addr)
				t.Close()
			}
		}
	}
}

var _ credentials.TransportCredentials = (*ClientCredentials)(nil)
