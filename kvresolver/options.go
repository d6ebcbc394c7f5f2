package kvresolver

import (
	"encoding/json"
	"fmt"
	"maps"
	"time"
)

// Defaults for the options.
const (
	// DefaultScheme is the URI scheme a Builder registers for, as in
	// "kv:///hello".
	DefaultScheme = "kv"
	// DefaultInterval is how often a resolver polls its LookupFunc.
	DefaultInterval = 30 * time.Second
	// DefaultJitter is the fraction of the interval added at random to each
	// wait, so that many clients started together do not poll together.
	DefaultJitter = 0.1
	// DefaultLookupTimeout bounds each call of the LookupFunc.
	DefaultLookupTimeout = 30 * time.Second
	// DefaultHeartbeat is how often a Registration re-puts its record.
	DefaultHeartbeat = 10 * time.Second
	// DefaultPrefix is where StoreLookup and Register keep records:
	// services/<name>/<address>.
	DefaultPrefix = "services/"
	// DefaultServiceConfig is the service config a resolver returns unless
	// WithServiceConfig gives another: it selects grpc-go's round_robin.
	DefaultServiceConfig = `{"loadBalancingConfig":[{"round_robin":{}}]}`
)

// Logger receives warnings about things the package handles by itself: an
// address or record it skipped, a failed lookup while it keeps the last good
// addresses, a failed heartbeat. It must be safe for concurrent use. The
// default discards everything.
type Logger interface {
	Warnf(format string, args ...any)
}

type nopLogger struct{}

func (nopLogger) Warnf(string, ...any) {}

// clock is the time source; tests replace it.
type clock struct {
	now func() time.Time
	// newTimer returns a channel that receives once d has passed, and a
	// function that stops the timer.
	newTimer func(d time.Duration) (<-chan time.Time, func())
}

var realClock = clock{
	now: time.Now,
	newTimer: func(d time.Duration) (<-chan time.Time, func()) {
		t := time.NewTimer(d)
		return t.C, func() { t.Stop() }
	},
}

// Option configures a Builder.
type Option interface {
	applyBuilder(*builderConfig)
}

// RegisterOption configures Register.
type RegisterOption interface {
	applyRegister(*registerConfig)
}

// StoreOption configures StoreLookup and ReadRecords.
type StoreOption interface {
	applyStore(*storeConfig)
}

// LoggerOption is an option that Builder, Register and StoreLookup all take.
type LoggerOption interface {
	Option
	RegisterOption
	StoreOption
}

type builderConfig struct {
	scheme          string
	interval        time.Duration
	jitter          float64
	jitterSet       bool
	minResolveNow   time.Duration
	lookupTimeout   time.Duration
	backoffBase     time.Duration
	backoffMax      time.Duration
	emptyMeansEmpty bool
	serviceConfig   string
	logger          Logger
	clock           clock
	errs            []error
}

type registerConfig struct {
	heartbeat time.Duration
	ttl       time.Duration
	metadata  map[string]string
	prefix    string
	logger    Logger
	clock     clock
	errs      []error
}

type storeConfig struct {
	logger Logger
	now    func() time.Time
}

type builderOption func(*builderConfig)

func (f builderOption) applyBuilder(c *builderConfig) { f(c) }

type registerOption func(*registerConfig)

func (f registerOption) applyRegister(c *registerConfig) { f(c) }

// WithScheme sets the URI scheme the Builder serves (default "kv"). It must
// be lower case, as grpc-go matches schemes after lower-casing them.
func WithScheme(scheme string) Option {
	return builderOption(func(c *builderConfig) {
		if err := checkScheme(scheme); err != nil {
			c.errs = append(c.errs, err)
			return
		}
		c.scheme = scheme
	})
}

func checkScheme(s string) error {
	if s == "" {
		return fmt.Errorf("kvresolver: empty scheme")
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return fmt.Errorf("kvresolver: invalid scheme %q: want a lower-case letter then letters, digits, '+', '-' or '.'", s)
		}
	}
	return nil
}

// WithInterval sets how often the resolver polls (default 30s). Each wait
// is the interval plus a random jitter (see WithJitter).
func WithInterval(d time.Duration) Option {
	return builderOption(func(c *builderConfig) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("kvresolver: interval %v is not positive", d))
			return
		}
		c.interval = d
	})
}

// WithJitter sets the largest fraction of the interval, between 0 and 1,
// added at random to each wait (default 0.1).
func WithJitter(fraction float64) Option {
	return builderOption(func(c *builderConfig) {
		if !(fraction >= 0 && fraction <= 1) { // also rejects NaN
			c.errs = append(c.errs, fmt.Errorf("kvresolver: jitter %v is not between 0 and 1", fraction))
			return
		}
		c.jitter, c.jitterSet = fraction, true
	})
}

// WithMinResolveNowInterval sets how long after the start of one poll a
// ResolveNow call may bring the next one forward (default: the interval,
// so that lookups stay at one per interval however often grpc-go asks).
// Set it lower to let connection failures trigger earlier polls.
func WithMinResolveNowInterval(d time.Duration) Option {
	return builderOption(func(c *builderConfig) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("kvresolver: minimum ResolveNow interval %v is not positive", d))
			return
		}
		c.minResolveNow = d
	})
}

// WithLookupTimeout bounds each call of the LookupFunc (default 30s).
func WithLookupTimeout(d time.Duration) Option {
	return builderOption(func(c *builderConfig) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("kvresolver: lookup timeout %v is not positive", d))
			return
		}
		c.lookupTimeout = d
	})
}

// WithBackoff sets the exponential backoff after a failed lookup or a
// rejected update: the first retry waits about base, each next one 1.6
// times longer (with 20% jitter), up to max. The default is base =
// min(1s, interval) and max = max(interval, base): a failing store is
// never polled less often than a healthy one.
func WithBackoff(base, max time.Duration) Option {
	return builderOption(func(c *builderConfig) {
		if base <= 0 || max < base {
			c.errs = append(c.errs, fmt.Errorf("kvresolver: backoff base %v and max %v: want 0 < base <= max", base, max))
			return
		}
		c.backoffBase, c.backoffMax = base, max
	})
}

// WithEmptyMeansEmpty makes an empty lookup result empty the channel's
// address list. By default an empty result keeps the last good addresses,
// because an eventually consistent store can briefly list nothing; with no
// addresses the channel fails every RPC.
func WithEmptyMeansEmpty() Option {
	return builderOption(func(c *builderConfig) { c.emptyMeansEmpty = true })
}

// WithServiceConfig sets the service config, in JSON, that the resolver
// returns instead of DefaultServiceConfig. grpc-go parses it when the
// resolver is built; a config it rejects fails the build.
func WithServiceConfig(jsonConfig string) Option {
	return builderOption(func(c *builderConfig) {
		if !json.Valid([]byte(jsonConfig)) {
			c.errs = append(c.errs, fmt.Errorf("kvresolver: service config is not valid JSON"))
			return
		}
		c.serviceConfig = jsonConfig
	})
}

// WithHeartbeat sets how often a Registration re-puts its record (default
// 10s).
func WithHeartbeat(d time.Duration) RegisterOption {
	return registerOption(func(c *registerConfig) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("kvresolver: heartbeat %v is not positive", d))
			return
		}
		c.heartbeat = d
	})
}

// WithTTL sets how long after each heartbeat a record stays valid if no
// further heartbeat comes (default 3 heartbeats). It must be longer than
// the heartbeat.
func WithTTL(d time.Duration) RegisterOption {
	return registerOption(func(c *registerConfig) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("kvresolver: ttl %v is not positive", d))
			return
		}
		c.ttl = d
	})
}

// WithMetadata adds metadata to the record, for readers of ReadRecords.
// The map is copied.
func WithMetadata(md map[string]string) RegisterOption {
	md = maps.Clone(md)
	return registerOption(func(c *registerConfig) { c.metadata = md })
}

// WithPrefix sets the key prefix records are written under (default
// "services/"); readers must use the same prefix. It must be a valid key
// prefix (see kvstore.ValidatePrefix) that ends with a slash.
func WithPrefix(prefix string) RegisterOption {
	return registerOption(func(c *registerConfig) {
		if err := checkPrefix(prefix); err != nil {
			c.errs = append(c.errs, err)
			return
		}
		c.prefix = prefix
	})
}

type loggerOption struct{ l Logger }

func (o loggerOption) applyBuilder(c *builderConfig)   { c.logger = o.l }
func (o loggerOption) applyRegister(c *registerConfig) { c.logger = o.l }
func (o loggerOption) applyStore(c *storeConfig)       { c.logger = o.l }

// WithLogger sets where warnings go; nil discards them (the default).
func WithLogger(l Logger) LoggerOption {
	if l == nil {
		l = nopLogger{}
	}
	return loggerOption{l}
}

// clockOption injects time in tests.
type clockOption struct{ c clock }

func (o clockOption) applyBuilder(c *builderConfig)   { c.clock = o.c }
func (o clockOption) applyRegister(c *registerConfig) { c.clock = o.c }
func (o clockOption) applyStore(c *storeConfig)       { c.now = o.c.now }
