package delta

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"
)

// simDaySecondsEnv sets how many seconds of the simulated day
// TestSimulatedDay runs: `make sim-day` runs all 86,400; the default keeps
// the quick suite quick.
const simDaySecondsEnv = "CLAIMX_SIMDAY_SECONDS"

// TestSimulatedDay appends one tracking event per (simulated) second, each
// as its own commit, with auto compaction after every commit as the
// delta_lake writer runs it (tiered, 50 files a level, the Databricks
// default minNumFiles), checkpoints every 10 commits, on a clock that
// advances a second per event. It checks that the day's partition stays
// within the files tiered compaction allows and that every row is there
// once, and reports (with -v) the files, the open time of the finished
// table and the compaction's share of the CPU.
func TestSimulatedDay(t *testing.T) {
	seconds := 2 * 3600
	if v := os.Getenv(simDaySecondsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive number of seconds", simDaySecondsEnv, v)
		}
		seconds = n
	}
	if testing.Short() {
		seconds = min(seconds, 600)
	}
	const minFiles = 50
	ctx := context.Background()
	st := newLocal(t)
	start := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	var now time.Time = start
	clock := func() time.Time { return now }
	tbl := mustCreate(t, st, trackingSchema(t), trackingPartitions,
		map[string]string{"delta.autoOptimize.autoCompact": "true"}, OpenOptions{Now: clock})

	var appendCPU, compactCPU time.Duration
	var rewritten, compactions int64
	maxFiles := 0
	for i := 0; i < seconds; i++ {
		now = start.Add(time.Duration(i) * time.Second)
		row := trackingRow(i)
		row[2], row[3] = now, now.Add(2*time.Second)
		row[18], row[19], row[20] = int32(now.Year()), int32(now.Month()), int32(now.Day())
		c0 := cpuTime()
		res, err := tbl.Append(ctx, AppendRequest{Rows: []Row{row}})
		must(t, err)
		c1 := cpuTime()
		ores, err := tbl.Optimize(ctx, OptimizeOptions{Tiered: true, MinFiles: minFiles, Partitions: []map[string]*string{res.Files[0].PartitionValues}})
		must(t, err)
		compactCPU += cpuTime() - c1
		appendCPU += c1 - c0
		if !ores.NoOp {
			compactions++
			rewritten += ores.Rows
		}
		if i%500 == 0 || i == seconds-1 {
			_, perPart := tbl.FileCounts()
			maxFiles = max(maxFiles, perPart)
		}
	}
	files, perPart := tbl.FileCounts()
	// Levels of 50: 50^levels >= seconds; at most 49 files a level.
	levels := 1
	for n := minFiles; n < seconds; n *= minFiles {
		levels++
	}
	if maxFiles > (minFiles-1)*levels {
		t.Errorf("the partition held %d files; tiered compaction allows %d", maxFiles, (minFiles-1)*levels)
	}

	t0 := time.Now()
	ro, err := Open(ctx, st, OpenOptions{ReadOnly: true})
	must(t, err)
	openTime := time.Since(t0)
	snap := ro.Snapshot()
	var rows int64
	for _, f := range snap.Files() {
		n, ok := statsNumRecords(f.Stats)
		if !ok {
			t.Fatalf("%s has no numRecords", f.Path)
		}
		rows += n
	}
	eq(t, "rows", rows, int64(seconds))
	if seconds <= 2*3600 {
		// Reading every row back is cheap at this size: each event once.
		_, all := readAll(t, st)
		seen := make(map[string]bool, len(all))
		for _, r := range all {
			if seen[r[0].(string)] {
				t.Fatalf("event %s twice", r[0])
			}
			seen[r[0].(string)] = true
		}
		eq(t, "distinct events", len(seen), seconds)
	}
	logFiles, err := st.List(ctx, "_delta_log/")
	must(t, err)
	t.Logf("simulated %d s: version %d, %d live files (%d in the day's partition, at most %d during the day), %d log files, checkpoint %d",
		seconds, snap.Version(), files, perPart, maxFiles, len(logFiles), snap.CheckpointVersion())
	t.Logf("open (read-only, cold handle) %s", openTime.Round(time.Millisecond))
	t.Logf("%d compactions rewrote %d rows (%.2f per row written); CPU: appends %s (%.0f µs/row), compaction %s (%.0f µs/row written, %.2f× the appends')",
		compactions, rewritten, float64(rewritten)/float64(seconds),
		appendCPU.Round(time.Millisecond), float64(appendCPU.Microseconds())/float64(seconds),
		compactCPU.Round(time.Millisecond), float64(compactCPU.Microseconds())/float64(seconds),
		float64(compactCPU)/float64(appendCPU))
}
