package delta

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

const (
	raceChildEnv = "CLAIMX_DELTA_RACE_CHILD"
	raceDirEnv   = "CLAIMX_DELTA_RACE_DIR"
	raceCommits  = 40
	raceRows     = 3
)

// runRaceChild appends raceCommits small batches, each followed by an auto
// compaction of the partitions it touched, the way the delta_lake writer
// does, and prints how its compactions ended.
func runRaceChild(t *testing.T, proc int, dir string) {
	ctx := context.Background()
	st, err := storage.NewLocal(dir)
	must(t, err)
	tbl, err := Open(ctx, st, OpenOptions{CheckpointInterval: 7, RetryBaseDelay: time.Millisecond, RetryMaxDelay: 20 * time.Millisecond, MaxCommitAttempts: 200})
	must(t, err)
	app := fmt.Sprintf("proc-%d", proc)
	var compacted, conflicts int
	for b := 0; b < raceCommits; b++ {
		rows := make([]Row, raceRows)
		for i := range rows {
			rows[i] = Row{fmt.Sprintf("p%d-b%d-r%d", proc, b, i), int32(proc), int32(b), []any{"even", "odd"}[(b+i)%2]}
		}
		res, err := tbl.Append(ctx, AppendRequest{Rows: rows, Txns: []Txn{{AppID: app, Version: int64(b)}}})
		if err != nil {
			// An append never loses to a compaction.
			t.Fatalf("proc %d batch %d: %v", proc, b, err)
		}
		var parts []map[string]*string
		for _, f := range res.Files {
			parts = append(parts, f.PartitionValues)
		}
		ores, err := tbl.Optimize(ctx, OptimizeOptions{Tiered: true, MinFiles: 3, Partitions: parts})
		switch {
		case errors.Is(err, ErrConflict):
			conflicts++
		case err != nil:
			t.Fatalf("proc %d compaction after batch %d: %v", proc, b, err)
		case !ores.NoOp:
			compacted++
		}
	}
	fmt.Printf("RACE compacted=%d conflicts=%d\n", compacted, conflicts)
}

// TestCompactionRacesAppendsAcrossProcesses: three OS processes append to
// one table and auto-compact after every commit, so compactions race
// other processes' appends and compactions. No append fails, no row is lost
// or doubled, the log has no gap, and compactions did commit.
func TestCompactionRacesAppendsAcrossProcesses(t *testing.T) {
	if p := os.Getenv(raceChildEnv); p != "" {
		n, _ := strconv.Atoi(p)
		runRaceChild(t, n, os.Getenv(raceDirEnv))
		return
	}
	const procs = 3
	st := newLocal(t)
	mustCreate(t, st, simpleSchema(), []string{"part"}, nil, OpenOptions{})
	compacted, conflicts := 0, 0
	for _, out := range runChildren(t, "TestCompactionRacesAppendsAcrossProcesses", procs, raceChildEnv, raceDirEnv, st.Root()) {
		var c, k int
		for _, line := range strings.Split(out, "\n") {
			if _, err := fmt.Sscanf(line, "RACE compacted=%d conflicts=%d", &c, &k); err == nil {
				compacted += c
				conflicts += k
			}
		}
	}
	t.Logf("%d compactions committed, %d lost a race (ErrConflict)", compacted, conflicts)
	if compacted == 0 {
		t.Fatal("no compaction committed: the test did not race anything")
	}

	objs, err := st.List(context.Background(), "_delta_log/")
	must(t, err)
	var versions []int64
	optimizes := 0
	for _, o := range objs {
		if lf := parseLogName(o.Path); lf.kind == logCommit {
			versions = append(versions, lf.version)
			acts, err := readCommit(context.Background(), st, lf.version)
			must(t, err)
			for _, a := range acts {
				if a.CommitInfo != nil && a.CommitInfo["operation"] == "OPTIMIZE" {
					optimizes++
				}
			}
		}
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
	for i, v := range versions {
		if v != int64(i) {
			t.Fatalf("versions not contiguous: %v", versions)
		}
	}
	// Every commit is in the log: the create, each append, each compaction
	// a process saw commit.
	eq(t, "commits", len(versions), 1+procs*raceCommits+compacted)
	eq(t, "OPTIMIZE commits", optimizes, compacted)

	snap, rows := readAll(t, st)
	eq(t, "rows", len(rows), procs*raceCommits*raceRows)
	seen := map[string]int{}
	for _, r := range rows {
		seen[r[0].(string)]++
	}
	for p := 0; p < procs; p++ {
		for b := 0; b < raceCommits; b++ {
			for i := 0; i < raceRows; i++ {
				if n := seen[fmt.Sprintf("p%d-b%d-r%d", p, b, i)]; n != 1 {
					t.Fatalf("row p%d-b%d-r%d present %d times", p, b, i, n)
				}
			}
		}
		if v, ok := snap.TxnVersion(fmt.Sprintf("proc-%d", p)); !ok || v != raceCommits-1 {
			t.Errorf("txn proc-%d = %d %v", p, v, ok)
		}
	}
}
