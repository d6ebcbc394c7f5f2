package metricsint

import (
	"testing"
	"time"

	metrics "github.com/rcrowley/go-metrics"
)

// BenchmarkTimerUpdate compares one Update of go-metrics' StandardTimer with
// one of the batchTimer GoMetrics registers.
func BenchmarkTimerUpdate(b *testing.B) {
	for _, tt := range []struct {
		name string
		t    metrics.Timer
	}{
		{"Standard", metrics.NewTimer()},
		{"Batch", newBatchTimer()},
	} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := range b.N {
				tt.t.Update(time.Duration(i))
			}
		})
		tt.t.Stop()
	}
}
