package kvcertverify

import (
	"fmt"
	"time"
)

// Defaults of the options.
const (
	DefaultPrefix           = "certs/"
	DefaultLifetime         = 24 * time.Hour
	DefaultRotateAt         = 2.0 / 3.0
	DefaultPropagationDelay = time.Minute
	DefaultBackdate         = 5 * time.Minute
	DefaultCacheTTL         = 30 * time.Second
	DefaultNegativeTTL      = 2 * time.Second
	DefaultRefetchInterval  = time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultStoreTimeout     = 5 * time.Second
	defaultMaxCacheEntries  = 4096
)

// Logger receives what the credentials have to report that no caller can
// be told: background rotation failures, for instance. It is never given
// key material. Implementations must be safe for concurrent use.
type Logger interface {
	Printf(format string, args ...any)
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}

// ServerOption configures NewServerTransportCredentials.
type ServerOption interface{ applyServer(*serverConfig) }

// ClientOption configures NewClientTransportCredentials.
type ClientOption interface{ applyClient(*clientConfig) }

// Option configures both server and client credentials.
type Option interface {
	ServerOption
	ClientOption
}

type common struct {
	prefix           string
	now              func() time.Time
	logger           Logger
	handshakeTimeout time.Duration
	storeTimeout     time.Duration
}

func (c *common) defaults() {
	c.prefix = DefaultPrefix
	c.now = time.Now
	c.logger = nopLogger{}
	c.handshakeTimeout = DefaultHandshakeTimeout
	c.storeTimeout = DefaultStoreTimeout
}

func (c *common) validate() error {
	switch {
	case c.now == nil:
		return fmt.Errorf("kvcertverify: WithTime: nil function")
	case c.logger == nil:
		return fmt.Errorf("kvcertverify: WithLogger: nil logger")
	case c.handshakeTimeout <= 0:
		return fmt.Errorf("kvcertverify: WithHandshakeTimeout: %v is not positive", c.handshakeTimeout)
	case c.storeTimeout <= 0:
		return fmt.Errorf("kvcertverify: WithStoreTimeout: %v is not positive", c.storeTimeout)
	}
	return nil
}

type commonOption func(*common)

func (o commonOption) applyServer(c *serverConfig) { o(&c.common) }
func (o commonOption) applyClient(c *clientConfig) { o(&c.common) }

// WithPrefix sets the store prefix under which certificates are published
// (default "certs/"): the bundle of the server at addr is at prefix+addr.
// Server and clients must agree on it.
func WithPrefix(prefix string) Option {
	return commonOption(func(c *common) { c.prefix = prefix })
}

// WithTime sets the clock used to issue certificates and to judge their
// validity (default time.Now). Tests use it to reach expiry and rotation
// without waiting.
func WithTime(now func() time.Time) Option {
	return commonOption(func(c *common) { c.now = now })
}

// WithLogger sets where background errors go (default: nowhere).
func WithLogger(l Logger) Option {
	return commonOption(func(c *common) { c.logger = l })
}

// WithHandshakeTimeout bounds each TLS handshake (default 10s). Server
// handshakes have no context of their own; this is their only bound.
func WithHandshakeTimeout(d time.Duration) Option {
	return commonOption(func(c *common) { c.handshakeTimeout = d })
}

// WithStoreTimeout bounds each store operation (default 5s).
func WithStoreTimeout(d time.Duration) Option {
	return commonOption(func(c *common) { c.storeTimeout = d })
}

type serverConfig struct {
	common
	lifetime         time.Duration
	rotateAt         float64
	propagationDelay time.Duration
	backdate         time.Duration

	// Test hooks.
	after func(time.Duration) <-chan time.Time
	event func(string)
}

type serverOption func(*serverConfig)

func (o serverOption) applyServer(c *serverConfig) { o(c) }

// WithLifetime sets how long each certificate is valid (default 24h).
func WithLifetime(d time.Duration) ServerOption {
	return serverOption(func(c *serverConfig) { c.lifetime = d })
}

// WithRotateAt sets when, as a fraction of its lifetime (0 < f < 1), a
// certificate is replaced (default 2/3).
func WithRotateAt(f float64) ServerOption {
	return serverOption(func(c *serverConfig) { c.rotateAt = f })
}

// WithPropagationDelay sets how long the server waits between publishing
// its next certificate and serving it (default 1m), so that clients reading
// an eventually consistent store see it first. Clients also refetch once on
// a mismatch, so the delay need not exceed their cache TTL.
func WithPropagationDelay(d time.Duration) ServerOption {
	return serverOption(func(c *serverConfig) { c.propagationDelay = d })
}

// WithBackdate sets how far into the past NotBefore is set, to absorb
// clock skew (default 5m).
func WithBackdate(d time.Duration) ServerOption {
	return serverOption(func(c *serverConfig) { c.backdate = d })
}

func (c *serverConfig) validate() error {
	if err := c.common.validate(); err != nil {
		return err
	}
	switch {
	case c.lifetime <= 0:
		return fmt.Errorf("kvcertverify: WithLifetime: %v is not positive", c.lifetime)
	case !(c.rotateAt > 0 && c.rotateAt < 1):
		return fmt.Errorf("kvcertverify: WithRotateAt: %v is not between 0 and 1", c.rotateAt)
	case c.propagationDelay < 0:
		return fmt.Errorf("kvcertverify: WithPropagationDelay: %v is negative", c.propagationDelay)
	case c.backdate < 0:
		return fmt.Errorf("kvcertverify: WithBackdate: %v is negative", c.backdate)
	case time.Duration(float64(c.lifetime)*c.rotateAt)+c.propagationDelay >= c.lifetime:
		return fmt.Errorf("kvcertverify: a rotation at %v plus a propagation delay of %v does not end before the %v lifetime",
			time.Duration(float64(c.lifetime)*c.rotateAt), c.propagationDelay, c.lifetime)
	}
	return nil
}

type clientConfig struct {
	common
	ttl             time.Duration
	negativeTTL     time.Duration
	refetchInterval time.Duration
	maxBundleSize   int
	maxBundleCerts  int
	closeRevoked    time.Duration
	maxEntries      int
}

type clientOption func(*clientConfig)

func (o clientOption) applyClient(c *clientConfig) { o(c) }

// WithCacheTTL sets how long a fetched bundle is trusted (default 30s),
// which is also how long a revoked server may still be connected to.
func WithCacheTTL(d time.Duration) ClientOption {
	return clientOption(func(c *clientConfig) { c.ttl = d })
}

// WithNegativeTTL sets how long a failed lookup (no bundle, an invalid
// one, a store error) is remembered (default 2s).
func WithNegativeTTL(d time.Duration) ClientOption {
	return clientOption(func(c *clientConfig) { c.negativeTTL = d })
}

// WithRefetchInterval sets the least time between two refetches of one
// address forced by a certificate that is not in the cached bundle
// (default 1s). It bounds the store reads an impostor can cause. Keep it
// well below the servers' rotation interval (lifetime × rotate-at): a
// mismatch within it of the last forced refetch fails without one. Zero
// allows a refetch on every mismatch.
func WithRefetchInterval(d time.Duration) ClientOption {
	return clientOption(func(c *clientConfig) { c.refetchInterval = d })
}

// WithMaxBundleSize sets the largest bundle, in bytes, the client accepts
// (default DefaultMaxBundleSize).
func WithMaxBundleSize(n int) ClientOption {
	return clientOption(func(c *clientConfig) { c.maxBundleSize = n })
}

// WithMaxBundleCerts sets the most certificates a bundle may hold (default
// DefaultMaxBundleCerts).
func WithMaxBundleCerts(n int) ClientOption {
	return clientOption(func(c *clientConfig) { c.maxBundleCerts = n })
}

// WithCloseRevoked makes the client re-check, every interval, the bundle of
// each address it holds connections to, and close those connections once
// the server's bundle is gone (revoked). Lookups go through the cache, so a
// revoked server is cut off within interval plus the cache TTL.
//
// It costs one goroutine, which ClientCredentials.Close stops, and one
// store read per connected address per cache TTL even when idle; RPCs in
// flight on a closed connection fail with codes.Unavailable. Connections
// are not closed on store errors or on rotation.
func WithCloseRevoked(interval time.Duration) ClientOption {
	return clientOption(func(c *clientConfig) { c.closeRevoked = interval })
}

func (c *clientConfig) validate() error {
	if err := c.common.validate(); err != nil {
		return err
	}
	switch {
	case c.ttl <= 0:
		return fmt.Errorf("kvcertverify: WithCacheTTL: %v is not positive", c.ttl)
	case c.negativeTTL < 0:
		return fmt.Errorf("kvcertverify: WithNegativeTTL: %v is negative", c.negativeTTL)
	case c.refetchInterval < 0:
		return fmt.Errorf("kvcertverify: WithRefetchInterval: %v is negative", c.refetchInterval)
	case c.maxBundleSize <= 0:
		return fmt.Errorf("kvcertverify: WithMaxBundleSize: %d is not positive", c.maxBundleSize)
	case c.maxBundleCerts <= 0:
		return fmt.Errorf("kvcertverify: WithMaxBundleCerts: %d is not positive", c.maxBundleCerts)
	case c.closeRevoked < 0:
		return fmt.Errorf("kvcertverify: WithCloseRevoked: %v is negative", c.closeRevoked)
	}
	return nil
}
