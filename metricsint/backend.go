package metricsint

import (
	"fmt"
	"time"

	metrics "github.com/rcrowley/go-metrics"
)

// Counter is the counter the interceptors record into: started, handled,
// in-flight and message counts. A go-metrics metrics.Counter satisfies it.
// Implementations must be safe for concurrent use.
type Counter interface {
	Inc(int64)
	Dec(int64)
}

// Timer is the latency recorder the interceptors use. A go-metrics
// metrics.Timer satisfies it. Implementations must be safe for concurrent use.
type Timer interface {
	Update(time.Duration)
}

// Backend is the seam between the interceptors and a metrics library. The
// interceptors ask it for each metric once, by its full name, and keep the
// result; nothing is looked up per call.
//
// Counter and Timer return the metric registered under name, creating and
// registering it when absent, so that two calls with one name return the
// same metric. When name is taken by a metric of another kind they return a
// non-nil error (and the interceptors fall back as described in the package
// documentation). Implementations must be safe for concurrent use and must
// not panic.
//
// GoMetrics adapts a go-metrics registry. Another library plugs in by
// implementing these two methods.
type Backend interface {
	Counter(name string) (Counter, error)
	Timer(name string) (Timer, error)
}

// GoMetrics returns a Backend that gets or registers metrics.Counter and
// metrics.Timer values in r, so they sit next to the user's own metrics and
// reach whatever exporter r feeds. A nil r means metrics.DefaultRegistry, as
// in go-metrics itself.
//
// Counters are go-metrics StandardCounters. A Timer it creates has the
// readings of a go-metrics StandardTimer (a meter and an exponentially
// decaying sample of 1028 values with alpha 0.015, as metrics.NewTimer
// makes), but it buffers up to 64 updates and adds them to the sample with
// one clock reading and to the meter with one mark, which makes an update
// some fifteen times cheaper. Every read passes the buffer on first, so
// counts, sums and percentiles are exact whenever they are read; only the
// meter's moving-average rates may count buffered calls up to one read late
// at low call rates. A Timer (or Counter) already in r under the name, the
// user's own included, is used as it is.
//
// Unlike go-metrics' GetOrRegisterCounter and GetOrRegisterTimer, which panic
// when the name holds a metric of another type, the returned Backend reports
// that case as an error.
func GoMetrics(r metrics.Registry) Backend {
	if r == nil {
		r = metrics.DefaultRegistry
	}
	return goMetrics{r: r}
}

type goMetrics struct{ r metrics.Registry }

func (g goMetrics) Counter(name string) (Counter, error) {
	m := g.r.GetOrRegister(name, metrics.NewCounter)
	if c, ok := m.(metrics.Counter); ok {
		return c, nil
	}
	return nil, &ConflictError{Name: name, Want: "metrics.Counter", Have: fmt.Sprintf("%T", m)}
}

func (g goMetrics) Timer(name string) (Timer, error) {
	m := g.r.GetOrRegister(name, newBatchTimer)
	if t, ok := m.(metrics.Timer); ok {
		return t, nil
	}
	return nil, &ConflictError{Name: name, Want: "metrics.Timer", Have: fmt.Sprintf("%T", m)}
}

// ConflictError reports that a metric name the interceptors need is already
// registered with a metric of another type. Backends should return it (or
// wrap it) so callers can find it with errors.As.
type ConflictError struct {
	// Name is the full metric name.
	Name string
	// Want is the type the interceptors need, Have the type found.
	Want, Have string
}

// Error implements error.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("metricsint: metric %q is already registered as %s, not %s", e.Name, e.Have, e.Want)
}

// discard is the fallback metric used when a Backend returns an error: it
// records nothing.
type discard struct{}

func (discard) Inc(int64)            {}
func (discard) Dec(int64)            {}
func (discard) Update(time.Duration) {}
