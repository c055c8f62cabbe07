package deltasink

import (
	"fmt"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// BenchmarkWriteDedupe appends batches of 250 keyed rows to one partition
// that already holds the given number of data files (one per earlier
// commit, as a worker's day partition collects them). The cost per row
// should not grow with the files: the partition's files are checked once a
// batch.
func BenchmarkWriteDedupe(b *testing.B) {
	const batchRows = 250
	for _, files := range []int{10, 1000} {
		b.Run(fmt.Sprintf("files=%d", files), func(b *testing.B) {
			w := newTestWriter(b, fmt.Sprintf(dedupeConf, b.TempDir()))
			offset := 0
			batch := func(rows int) service.MessageBatch {
				out := make(service.MessageBatch, rows)
				for i := range out {
					out[i] = kmsg(fmt.Sprintf(`{"event_id":"e-%d","day":1}`, offset), 0, offset)
					offset++
				}
				return out
			}
			for range files {
				if _, err := w.Write(b.Context(), batch(2), nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				in := batch(batchRows)
				b.StartTimer()
				rs, err := w.Write(b.Context(), in, nil)
				if err != nil {
					b.Fatal(err)
				}
				if rs[0].Status != Written {
					b.Fatalf("row not written: %+v", rs[0])
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchRows), "ns/row")
		})
	}
}
