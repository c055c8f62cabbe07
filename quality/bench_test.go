package quality

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta"
)

// benchDays of tracking events, benchPerDay a day, two commits a day: a
// table of benchDays*2 files, and the checks look at its last 7 days.
const (
	benchDays   = 90
	benchPerDay = 600
)

// BenchmarkQualityChecks runs, per iteration, a cold evaluation of five
// expectations over the last 7 days of a 90-day tracking table (freshness,
// completeness, null rate, allowed values, unique event_id) and, as the
// baseline in the same run, a naive check reading every file of the table
// whole. It reports both times, their ratio and the files each reads.
func BenchmarkQualityChecks(b *testing.B) {
	dir := b.TempDir()
	uri := filepath.Join(dir, "itel_cabinet_task_tracking")
	now := time.Date(2026, 1, 14, 21, 0, 0, 0, time.UTC)
	first := now.AddDate(0, 0, -benchDays+1).Truncate(24 * time.Hour)
	var evs []event
	statuses := []string{"ASSIGNED", "IN_PROGRESS", "COMPLETED"}
	for d := 0; d < benchDays; d++ {
		day := first.AddDate(0, 0, d)
		for i := 0; i < benchPerDay; i++ {
			ts := day.Add(time.Duration(i) * (24 * time.Hour / benchPerDay))
			if ts.After(now.Add(-10 * time.Minute)) {
				break
			}
			st := statuses[i%3]
			evs = append(evs, event{id: fmt.Sprintf("evt-%s-%04d", day.Format("20060102"), i), eventType: "CUSTOM_TASK_" + st,
				ts: ts, assignment: int64(1000000 + d*1000 + i/3), status: st})
		}
	}
	writeTracking(b, uri, evs, nil)
	cfg, err := ParseConfig([]byte(`
tables:
  itel_cabinet_task_tracking: { uri: "` + uri + `", time_column: event_timestamp, date_partitions: [year, month, day] }
expectations:
  - { name: fresh, table: itel_cabinet_task_tracking, kind: freshness, column: event_timestamp, max_age: 60m }
  - { name: complete, table: itel_cabinet_task_tracking, kind: completeness, days: 7, min_rows: 100 }
  - { name: not_null, table: itel_cabinet_task_tracking, kind: null_rate, columns: [assignment_id, event_type, task_status], max_null_fraction: 0.01, days: 7 }
  - { name: status_known, table: itel_cabinet_task_tracking, kind: allowed_values, column: task_status, values: [ASSIGNED, IN_PROGRESS, COMPLETED, CANCELLED], days: 7 }
  - { name: unique_ids, table: itel_cabinet_task_tracking, kind: unique, column: event_id, days: 7 }
`))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	st := localStore(b, uri)
	var checkNs, scanNs, checkFiles, scanFiles, total int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		run := NewEvaluator(cfg, Options{Now: fixedClock(now)}).Run(ctx, "bench", nil)
		checkNs += time.Since(t0).Nanoseconds()
		for _, r := range run.Results {
			if r.Status != StatusPass {
				b.Fatalf("%s: %s: %s", r.Expectation, r.Status, r.Message)
			}
			checkFiles += r.FilesScanned
		}

		// The baseline: open the table and read every file whole.
		t1 := time.Now()
		tbl, err := delta.Open(ctx, st, delta.OpenOptions{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		snap := tbl.Snapshot()
		rows := 0
		for _, f := range snap.Files() {
			rs, err := snap.ReadFile(ctx, st, f)
			if err != nil {
				b.Fatal(err)
			}
			rows += len(rs)
		}
		scanNs += time.Since(t1).Nanoseconds()
		scanFiles += int64(snap.NumFiles())
		total = int64(rows)
	}
	n := float64(b.N)
	b.ReportMetric(float64(checkNs)/n/1e6, "checks-ms/op")
	b.ReportMetric(float64(scanNs)/n/1e6, "fullscan-ms/op")
	b.ReportMetric(float64(scanNs)/float64(checkNs), "fullscan/checks")
	b.ReportMetric(float64(checkFiles)/n, "checks-files/op")
	b.ReportMetric(float64(scanFiles)/n, "fullscan-files/op")
	b.ReportMetric(float64(total), "table-rows")
}
