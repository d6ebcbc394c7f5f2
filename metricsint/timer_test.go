package metricsint

import (
	"math"
	"sort"
	"sync"
	"testing"
	"time"

	metrics "github.com/rcrowley/go-metrics"
)

func TestBatchTimerReadsSeeEveryUpdate(t *testing.T) {
	tm := newBatchTimer()
	defer tm.Stop()
	for i := 1; i <= 100; i++ { // one full batch of 64 and 36 buffered
		tm.Update(time.Duration(i) * time.Millisecond)
	}
	if got := tm.Count(); got != 100 {
		t.Errorf("Count = %d, want 100", got)
	}
	if got := tm.Min(); got != int64(time.Millisecond) {
		t.Errorf("Min = %d", got)
	}
	if got := tm.Max(); got != int64(100*time.Millisecond) {
		t.Errorf("Max = %d", got)
	}
	if got, want := tm.Sum(), int64(5050*time.Millisecond); got != want {
		t.Errorf("Sum = %d, want %d", got, want)
	}
	if got := tm.Percentile(0.5); got != float64(50500*time.Microsecond) {
		t.Errorf("median = %v", got)
	}
	if got := tm.Snapshot().Count(); got != 100 {
		t.Errorf("Snapshot().Count = %d", got)
	}
	tm.Time(func() {})
	tm.UpdateSince(time.Now())
	if got := tm.Count(); got != 102 {
		t.Errorf("Count after Time and UpdateSince = %d, want 102", got)
	}
	if tm.Rate1() < 0 || tm.RateMean() <= 0 {
		t.Errorf("rates %v %v", tm.Rate1(), tm.RateMean())
	}
}

// TestBatchTimerInRegistry checks that go-metrics' own readers (GetAll, as
// its exporters use) see the timer as a Timer with every update.
func TestBatchTimerInRegistry(t *testing.T) {
	reg := metrics.NewRegistry()
	tm, err := GoMetrics(reg).Timer("x.latency")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister("x.latency") // stops the meter
	for range 10 {
		tm.Update(time.Second)
	}
	all := reg.GetAll()
	if got := all["x.latency"]["count"]; got != int64(10) {
		t.Errorf("GetAll count = %v, want 10", got)
	}
	if got := all["x.latency"]["median"]; got != float64(time.Second) {
		t.Errorf("GetAll median = %v", got)
	}
}

func TestDecaySampleReservoir(t *testing.T) {
	s := newDecaySample()
	t0 := s.t0
	batch := make([]int64, 1000)
	for i := range 10 {
		for j := range batch {
			batch[j] = int64(i*1000 + j)
		}
		s.updateBatch(t0, batch)
	}
	if got := s.Count(); got != 10000 {
		t.Errorf("Count = %d", got)
	}
	if got := s.Size(); got != sampleSize {
		t.Errorf("Size = %d, want %d", got, sampleSize)
	}
	// A uniform sample of 0..9999: the median is near 5000.
	if m := s.Percentile(0.5); m < 4000 || m > 6000 {
		t.Errorf("median of a uniform 0..9999 = %v", m)
	}
	checkHeap(t, s)

	// Ten minutes later the new values outweigh the old by e^9.
	for j := range batch {
		batch[j] = 1e6
	}
	s.updateBatch(t0.Add(10*time.Minute), batch)
	s.updateBatch(t0.Add(10*time.Minute), batch)
	if m := s.Percentile(0.5); m != 1e6 {
		t.Errorf("median after a recent burst = %v, want 1e6", m)
	}
	checkHeap(t, s)

	// Past the rescale threshold priorities are scaled down and the
	// sample goes on working.
	s.updateBatch(t0.Add(3*time.Hour), []int64{7})
	if !s.t0.Equal(t0.Add(3 * time.Hour)) {
		t.Errorf("t0 not moved on rescale")
	}
	for _, p := range s.heap {
		if p.k < 0 || math.IsInf(p.k, 0) || math.IsNaN(p.k) {
			t.Fatalf("priority %v out of range after rescale", p.k)
		}
	}
	checkHeap(t, s)
	vs := s.Values()
	sort.Slice(vs, func(i, j int) bool { return vs[i] < vs[j] })
	if vs[0] != 7 {
		t.Errorf("the newest value was not kept: smallest = %d", vs[0])
	}

	s.Clear()
	if s.Count() != 0 || s.Size() != 0 || s.Max() != 0 {
		t.Error("Clear left data")
	}
	s.Update(3)
	if s.Count() != 1 || s.Snapshot().Max() != 3 || s.Mean() != 3 || s.Sum() != 3 || s.StdDev() != 0 || s.Variance() != 0 || s.Min() != 3 {
		t.Error("single value readings wrong")
	}
	if ps := s.Percentiles([]float64{0.5, 0.99}); ps[0] != 3 || ps[1] != 3 {
		t.Errorf("Percentiles = %v", ps)
	}
}

func checkHeap(t *testing.T, s *decaySample) {
	t.Helper()
	for i := 1; i < len(s.heap); i++ {
		if s.heap[(i-1)/2].k > s.heap[i].k {
			t.Fatalf("heap order broken at %d", i)
		}
	}
}

func TestBatchTimerConcurrent(t *testing.T) {
	tm := newBatchTimer()
	defer tm.Stop()
	const workers, per = 4, 1000
	var wg sync.WaitGroup
	for range workers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range per {
				tm.Update(time.Duration(i))
			}
		}()
		go func() {
			defer wg.Done()
			for range 50 {
				_ = tm.Percentiles([]float64{0.5, 0.99})
				_ = tm.Snapshot()
			}
		}()
	}
	wg.Wait()
	if got := tm.Count(); got != workers*per {
		t.Errorf("Count = %d, want %d", got, workers*per)
	}
}
