package metricsint

import (
	"sync"
	"time"

	metrics "github.com/rcrowley/go-metrics"
)

// batchSize is the number of durations a batchTimer holds before it passes
// them on.
const batchSize = 64

// batchTimer is the metrics.Timer GoMetrics registers. It has the data and
// the readings of a go-metrics StandardTimer (an exponentially decaying
// histogram sample of 1028 values and a meter, built by metrics.NewTimer's
// recipe), but Update only appends to a small buffer; the buffer goes into
// the histogram and the meter when it is full and before every read, so
// readers (exporters) always see every update. Passing durations on in
// batches keeps the histogram warm in the CPU cache and marks the meter once
// per batch, which makes an Update several times cheaper inside an RPC.
//
// At a low call rate the meter's moving averages may take the buffered calls
// into account up to one read later than a StandardTimer would; counts,
// sums and the histogram are exact at every read.
type batchTimer struct {
	s *decaySample
	m metrics.Meter
	t metrics.Timer // NewCustomTimer(h, m), for the readings

	mu  sync.Mutex
	n   int
	buf [batchSize]int64
}

func newBatchTimer() metrics.Timer {
	if metrics.UseNilMetrics {
		return metrics.NilTimer{}
	}
	s := newDecaySample()
	m := metrics.NewMeter()
	return &batchTimer{s: s, m: m, t: metrics.NewCustomTimer(metrics.NewHistogram(s), m)}
}

// Update records d.
func (t *batchTimer) Update(d time.Duration) {
	t.mu.Lock()
	t.buf[t.n] = int64(d)
	t.n++
	if t.n == batchSize {
		t.flushLocked()
	}
	t.mu.Unlock()
}

func (t *batchTimer) flushLocked() {
	if t.n == 0 {
		return
	}
	t.s.updateBatch(time.Now(), t.buf[:t.n])
	t.m.Mark(int64(t.n))
	t.n = 0
}

// flushed passes buffered durations on and returns the timer to read.
func (t *batchTimer) flushed() metrics.Timer {
	t.mu.Lock()
	t.flushLocked()
	t.mu.Unlock()
	return t.t
}

// UpdateSince records the time since ts.
func (t *batchTimer) UpdateSince(ts time.Time) { t.Update(time.Since(ts)) }

// Time records the duration of f.
func (t *batchTimer) Time(f func()) {
	ts := time.Now()
	f()
	t.UpdateSince(ts)
}

// Stop flushes and stops the meter.
func (t *batchTimer) Stop() { t.flushed().Stop() }

// Count returns the number of durations recorded.
func (t *batchTimer) Count() int64 { return t.flushed().Count() }

// Max returns the largest duration in the sample.
func (t *batchTimer) Max() int64 { return t.flushed().Max() }

// Mean returns the mean of the sample.
func (t *batchTimer) Mean() float64 { return t.flushed().Mean() }

// Min returns the smallest duration in the sample.
func (t *batchTimer) Min() int64 { return t.flushed().Min() }

// Percentile returns a percentile of the sample.
func (t *batchTimer) Percentile(p float64) float64 { return t.flushed().Percentile(p) }

// Percentiles returns percentiles of the sample.
func (t *batchTimer) Percentiles(ps []float64) []float64 { return t.flushed().Percentiles(ps) }

// Rate1 returns the one-minute moving average rate.
func (t *batchTimer) Rate1() float64 { return t.flushed().Rate1() }

// Rate5 returns the five-minute moving average rate.
func (t *batchTimer) Rate5() float64 { return t.flushed().Rate5() }

// Rate15 returns the fifteen-minute moving average rate.
func (t *batchTimer) Rate15() float64 { return t.flushed().Rate15() }

// RateMean returns the mean rate since the timer was made.
func (t *batchTimer) RateMean() float64 { return t.flushed().RateMean() }

// Snapshot returns a read-only copy.
func (t *batchTimer) Snapshot() metrics.Timer { return t.flushed().Snapshot() }

// StdDev returns the standard deviation of the sample.
func (t *batchTimer) StdDev() float64 { return t.flushed().StdDev() }

// Sum returns the sum of the sample.
func (t *batchTimer) Sum() int64 { return t.flushed().Sum() }

// Variance returns the variance of the sample.
func (t *batchTimer) Variance() float64 { return t.flushed().Variance() }
