package metricsint

import (
	"math"
	"math/rand/v2"
	"sync"
	"time"

	metrics "github.com/rcrowley/go-metrics"
)

// Reservoir size and decay of the latency sample, the values go-metrics'
// NewTimer uses (those of UNIX load averages, favouring about the last five
// minutes).
const (
	sampleSize  = 1028
	sampleAlpha = 0.015
	rescaleAt   = time.Hour
)

// decaySample is a metrics.Sample: an exponentially decaying sample kept as a
// forward-decay priority reservoir (Cormode, Shkapenyuk, Srivastava and Xu,
// "Forward Decay: A Practical Time Decay Model for Streaming Systems",
// ICDE 2009), with the reservoir size and decay of go-metrics'
// ExpDecaySample. Its addition over that one is updateBatch, which weighs a
// batch of values with one clock reading and one exponential.
//
// Each value gets the priority w(t)/u, where w(t) = exp(alpha·(t-t0)) and u
// is uniform in (0, 1]; the reservoir keeps the sampleSize values of highest
// priority in a min-heap. Every rescaleAt, t0 moves to now and all
// priorities are scaled by the same factor, which keeps the heap order and
// the floats finite.
type decaySample struct {
	mu     sync.Mutex
	count  int64
	t0, t1 time.Time
	heap   []prioritized // min-heap on k
}

type prioritized struct {
	k float64
	v int64
}

func newDecaySample() *decaySample {
	now := time.Now()
	return &decaySample{t0: now, t1: now.Add(rescaleAt), heap: make([]prioritized, 0, sampleSize)}
}

// updateBatch adds vs, all observed at t.
func (s *decaySample) updateBatch(t time.Time, vs []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.After(s.t1) {
		s.rescaleLocked(t)
	}
	w := math.Exp(t.Sub(s.t0).Seconds() * sampleAlpha)
	for _, v := range vs {
		s.count++
		k := w / (1 - rand.Float64()) // 1-u is in (0, 1]
		if len(s.heap) < sampleSize {
			s.heap = append(s.heap, prioritized{k, v})
			s.up(len(s.heap) - 1)
		} else if k > s.heap[0].k {
			s.heap[0] = prioritized{k, v}
			s.down(0)
		}
	}
}

func (s *decaySample) rescaleLocked(t time.Time) {
	f := math.Exp(-sampleAlpha * t.Sub(s.t0).Seconds())
	for i := range s.heap {
		s.heap[i].k *= f
	}
	s.t0 = t
	s.t1 = t.Add(rescaleAt)
}

func (s *decaySample) up(i int) {
	h := s.heap
	for i > 0 {
		p := (i - 1) / 2
		if h[p].k <= h[i].k {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (s *decaySample) down(i int) {
	h := s.heap
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].k < h[l].k {
			m = r
		}
		if h[i].k <= h[m].k {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// Update adds v, observed now.
func (s *decaySample) Update(v int64) {
	one := [1]int64{v}
	s.updateBatch(time.Now(), one[:])
}

// Clear empties the sample.
func (s *decaySample) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.count, s.t0, s.t1 = 0, now, now.Add(rescaleAt)
	s.heap = s.heap[:0]
}

// Count returns the number of values ever added (not only those kept).
func (s *decaySample) Count() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Size returns the number of values kept.
func (s *decaySample) Size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.heap)
}

// Values returns a copy of the values kept.
func (s *decaySample) Values() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs := make([]int64, len(s.heap))
	for i, p := range s.heap {
		vs[i] = p.v
	}
	return vs
}

// Snapshot returns a read-only copy.
func (s *decaySample) Snapshot() metrics.Sample {
	s.mu.Lock()
	count := s.count
	s.mu.Unlock()
	return metrics.NewSampleSnapshot(count, s.Values())
}

// Max returns the largest value kept.
func (s *decaySample) Max() int64 { return metrics.SampleMax(s.Values()) }

// Min returns the smallest value kept.
func (s *decaySample) Min() int64 { return metrics.SampleMin(s.Values()) }

// Mean returns the mean of the values kept.
func (s *decaySample) Mean() float64 { return metrics.SampleMean(s.Values()) }

// StdDev returns the standard deviation of the values kept.
func (s *decaySample) StdDev() float64 { return metrics.SampleStdDev(s.Values()) }

// Sum returns the sum of the values kept.
func (s *decaySample) Sum() int64 { return metrics.SampleSum(s.Values()) }

// Variance returns the variance of the values kept.
func (s *decaySample) Variance() float64 { return metrics.SampleVariance(s.Values()) }

// Percentile returns a percentile of the values kept.
func (s *decaySample) Percentile(p float64) float64 {
	return metrics.SamplePercentile(s.Values(), p)
}

// Percentiles returns percentiles of the values kept.
func (s *decaySample) Percentiles(ps []float64) []float64 {
	return metrics.SamplePercentiles(s.Values(), ps)
}
