package handshake

import (
	"math"
	"time"
)

// Defaults for the options.
const (
	DefaultTimeout                 = 10 * time.Second
	DefaultMaxMessageSize          = 64 << 10
	DefaultMaxConcurrentHandshakes = 100
)

// An Option configures Wrap.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	timeout       time.Duration
	maxMsg        int
	maxConcurrent int64
}

func newConfig(opts []Option) config {
	c := config{
		timeout:       DefaultTimeout,
		maxMsg:        DefaultMaxMessageSize,
		maxConcurrent: DefaultMaxConcurrentHandshakes,
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// WithTimeout bounds the whole handshake, the inner credentials' included, on
// both sides (default 10s). On the server, where grpc-go passes no context,
// it is imposed with connection deadlines. A client also honors the context
// grpc-go passes, whichever ends first. A side that times out then spends at
// most min(d/4, 1s) more writing a "handshake timed out" rejection to the
// peer. A value <= 0 keeps the default.
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.timeout = d
		}
	})
}

// WithMaxMessageSize bounds one Messenger message, sent or received (default
// 64 KiB). A peer that announces a larger one is dropped before anything is
// allocated for it. A value <= 0 keeps the default.
func WithMaxMessageSize(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxMsg = min(n, math.MaxUint32)
		}
	})
}

// WithMaxConcurrentHandshakes caps the server handshakes in progress at once
// (default 100), the inner credentials' included. A connection that finds no
// free slot waits for one within its timeout and is then dropped. A value <= 0
// keeps the default.
func WithMaxConcurrentHandshakes(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxConcurrent = int64(n)
		}
	})
}
