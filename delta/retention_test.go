package delta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

func TestParseRetention(t *testing.T) {
	tests := []struct {
		in   string
		want Retention
		err  bool
	}{
		{in: "7y", want: Retention{Years: 7}},
		{in: "18mo", want: Retention{Months: 18}},
		{in: "12w", want: Retention{Days: 84}},
		{in: "90d", want: Retention{Days: 90}},
		{in: "1y6mo", want: Retention{Years: 1, Months: 6}},
		{in: " 2 Years ", want: Retention{Years: 2}},
		{in: "3 months", want: Retention{Months: 3}},
		{in: "36h", want: Retention{Duration: 36 * time.Hour}},
		{in: "90m", want: Retention{Duration: 90 * time.Minute}},
		{in: "1.5h", want: Retention{Duration: 90 * time.Minute}},
		{in: "7d12h", want: Retention{Days: 7, Duration: 12 * time.Hour}},
		{in: "", err: true},
		{in: "0d", err: true},
		{in: "-1d", err: true},
		{in: "7", err: true},
		{in: "7x", err: true},
		{in: "y", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRetention(tc.in)
			if tc.err {
				if err == nil {
					t.Fatalf("want an error, got %+v", got)
				}
				return
			}
			must(t, err)
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			// String round-trips.
			back, err := ParseRetention(got.String())
			must(t, err)
			eq(t, "round trip of "+got.String(), back, got)
		})
	}
}

func TestRetentionCutoff(t *testing.T) {
	tests := []struct {
		keep, now, want string
	}{
		{"7y", "2026-12-06T02:48:00Z", "2019-12-06T02:48:00Z"},
		{"1y", "2024-02-29T10:00:00Z", "2023-02-28T10:00:00Z"}, // clamped, never later
		{"1mo", "2026-03-31T00:00:00Z", "2026-02-28T00:00:00Z"},
		{"18mo", "2026-12-06T00:00:00Z", "2025-06-06T00:00:00Z"},
		{"13mo", "2026-01-15T00:00:00Z", "2024-12-15T00:00:00Z"},
		{"90d", "2026-12-06T00:00:00Z", "2026-09-07T00:00:00Z"},
		{"2w", "2026-12-06T00:00:00Z", "2026-11-22T00:00:00Z"},
		{"36h", "2026-12-06T12:00:00Z", "2026-12-05T00:00:00Z"},
		// A non-UTC clock is converted first.
		{"1d", "2026-12-06T01:00:00+05:00", "2026-12-04T20:00:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.keep+"@"+tc.now, func(t *testing.T) {
			r, err := ParseRetention(tc.keep)
			must(t, err)
			now, err := time.Parse(time.RFC3339, tc.now)
			must(t, err)
			got := r.Cutoff(now)
			eq(t, "cutoff", got.Format(time.RFC3339), tc.want)
			eq(t, "location", got.Location(), time.UTC)
		})
	}
}

// dayLayout is how a test table partitions its rows by day.
type dayLayout struct {
	name   string
	parts  []Field
	values func(day time.Time) []any
	props  map[string]string
	column string
}

var (
	layoutStringDate = dayLayout{name: "string date", parts: []Field{{Name: "event_date", Type: "string", Nullable: true}},
		values: func(d time.Time) []any { return []any{d.Format("2006-01-02")} }, column: "event_date"}
	layoutDate = dayLayout{name: "date", parts: []Field{{Name: "event_date", Type: "date", Nullable: true}},
		values: func(d time.Time) []any { return []any{d} }, column: "event_date"}
	layoutTimestamp = dayLayout{name: "timestamp", parts: []Field{{Name: "event_hour", Type: "timestamp", Nullable: true}},
		values: func(d time.Time) []any { return []any{d} }, column: "event_hour"}
	layoutTimestampNTZ = dayLayout{name: "timestamp_ntz", parts: []Field{{Name: "event_hour", Type: "timestamp_ntz", Nullable: true}},
		values: func(d time.Time) []any { return []any{d} }, column: "event_hour"}
	layoutYMD = dayLayout{name: "year,month,day", parts: []Field{{Name: "year", Type: "integer", Nullable: true}, {Name: "month", Type: "integer", Nullable: true}, {Name: "day", Type: "integer", Nullable: true}},
		values: func(d time.Time) []any { return []any{int32(d.Year()), int32(d.Month()), int32(d.Day())} }, column: "year,month,day"}
)

func (l dayLayout) with(name string, props map[string]string) dayLayout {
	l.name, l.props = name, props
	return l
}

// dayTable is a table with one partition per day from first to last
// (inclusive), written by two appends (two files per partition); day i
// (counted from first) has 2*(i%3+1) rows, whose event_ts falls in it.
type dayTable struct {
	st       *storage.Local
	tbl      *Table
	days     []time.Time
	rowsOn   map[string]int // by day
	nullRows int
}

func newDayTable(t *testing.T, l dayLayout, first, last time.Time, now func() time.Time, withNull bool) *dayTable {
	t.Helper()
	ctx := context.Background()
	fields := append([]Field{{Name: "id", Type: "string"}, {Name: "event_ts", Type: "timestamp"}}, l.parts...)
	var pcols []string
	for _, f := range l.parts {
		pcols = append(pcols, f.Name)
	}
	dt := &dayTable{st: newLocal(t), rowsOn: map[string]int{}}
	dt.tbl = mustCreate(t, dt.st, MustSchema(fields...), pcols, l.props, OpenOptions{Now: now})
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		dt.days = append(dt.days, d)
	}
	for batch := 0; batch < 2; batch++ {
		var rows []Row
		for i, d := range dt.days {
			for j := 0; j <= i%3; j++ {
				ts := d.Add(6*time.Hour + time.Duration(j)*time.Minute)
				rows = append(rows, append(Row{fmt.Sprintf("b%d-d%d-r%d", batch, i, j), ts}, l.values(d)...))
				dt.rowsOn[d.Format("2006-01-02")]++
			}
		}
		if withNull {
			nulls := make([]any, len(l.parts))
			rows = append(rows, append(Row{fmt.Sprintf("b%d-null", batch), first.AddDate(-5, 0, 0)}, nulls...))
			dt.nullRows++
		}
		if _, err := dt.tbl.Append(ctx, AppendRequest{Rows: rows}); err != nil {
			t.Fatal(err)
		}
	}
	return dt
}

// rowsByDay reads the table and counts rows by the day of event_ts.
func rowsByDay(t *testing.T, st storage.Store) map[string]int {
	t.Helper()
	_, rows := readAll(t, st)
	out := map[string]int{}
	for _, r := range rows {
		out[r[1].(time.Time).UTC().Format("2006-01-02")]++
	}
	return out
}

// lastCommit returns the actions of the table's newest commit.
func lastCommit(t *testing.T, tbl *Table) []Action {
	t.Helper()
	b, err := tbl.store.Get(context.Background(), commitPath(tbl.Version()))
	must(t, err)
	acts, err := ParseCommit(b)
	must(t, err)
	return acts
}

func TestExpirePartitions(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 6, 2, 48, 0, 0, time.UTC)
	first := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		layout dayLayout
		keep   string
		// firstKept is the oldest day that must survive: the cutoff is
		// 2026-11-29T02:48 for 7d, 2026-11-29T00:00 for 7d2h48m.
		firstKept string
		predicate string
	}{
		{layoutStringDate, "7d", "2026-11-29", "(event_date < '2026-11-29')"},
		{layoutStringDate, "1w", "2026-11-29", "(event_date < '2026-11-29')"},
		{layoutDate, "7d", "2026-11-29", "(event_date < '2026-11-29')"},
		// Cutoff exactly at midnight: the day ending there goes.
		{layoutDate, "7d2h48m", "2026-11-29", "(event_date < '2026-11-29')"},
		// A timestamp partition is an instant: midnight of the 29th is
		// before 02:48 of the 29th.
		{layoutTimestamp, "7d", "2026-11-30", "(event_hour < '2026-11-29 02:48:00')"},
		// A value equal to the cutoff is not older than it.
		{layoutTimestamp, "7d2h48m", "2026-11-29", "(event_hour < '2026-11-29 00:00:00')"},
		{layoutTimestampNTZ, "7d", "2026-11-30", "(event_hour < '2026-11-29 02:48:00')"},
		{layoutYMD, "7d", "2026-11-29", "((year < 2026) OR (year = 2026 AND month < 11) OR (year = 2026 AND month = 11 AND day < 29))"},
		{layoutStringDate.with("string date, column mapping name", map[string]string{ColumnMappingModeKey: "name"}), "7d", "2026-11-29", "(event_date < '2026-11-29')"},
		{layoutDate.with("date, column mapping id", map[string]string{ColumnMappingModeKey: "id"}), "7d", "2026-11-29", "(event_date < '2026-11-29')"},
		{layoutYMD.with("year,month,day, column mapping name", map[string]string{ColumnMappingModeKey: "name"}), "7d", "2026-11-29", "((year < 2026) OR (year = 2026 AND month < 11) OR (year = 2026 AND month = 11 AND day < 29))"},
		{layoutDate.with("date, row tracking, DVs, in-commit timestamps", map[string]string{"delta.enableRowTracking": "true", "delta.enableDeletionVectors": "true", "delta.enableInCommitTimestamps": "true"}), "7d", "2026-11-29", "(event_date < '2026-11-29')"},
	}
	for _, tc := range tests {
		t.Run(tc.layout.name+"/"+tc.keep, func(t *testing.T) {
			dt := newDayTable(t, tc.layout, first, now, func() time.Time { return now }, true)
			keep, err := ParseRetention(tc.keep)
			must(t, err)
			before := rowsByDay(t, dt.st)
			startVersion := dt.tbl.Version()
			adds := map[string]AddFile{}
			for _, f := range dt.tbl.Snapshot().Files() {
				adds[f.Path] = f
			}

			// Dry run: the same answer, nothing committed.
			dry, err := dt.tbl.Expire(ctx, ExpireOptions{Column: tc.layout.column, Keep: keep, DryRun: true})
			must(t, err)
			eq(t, "dry run version", dt.tbl.Version(), startVersion)
			if _, err := dt.st.Get(ctx, commitPath(startVersion+1)); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("dry run committed: %v", err)
			}

			res, err := dt.tbl.Expire(ctx, ExpireOptions{Column: tc.layout.column, Keep: keep})
			must(t, err)
			eq(t, "predicate", res.Predicate, tc.predicate)
			eq(t, "version", res.Version, startVersion+1)
			var wantDays []string
			wantRows := 0
			for _, d := range dt.days {
				if ds := d.Format("2006-01-02"); ds < tc.firstKept {
					wantDays = append(wantDays, ds)
					wantRows += dt.rowsOn[ds]
				}
			}
			eq(t, "partitions", len(res.Partitions), len(wantDays))
			eq(t, "files", res.Files, 2*len(wantDays))
			eq(t, "rows", res.Rows, int64(wantRows))
			eq(t, "rows exact", res.RowsExact, true)
			eq(t, "dry run files", dry.Files, res.Files)
			eq(t, "dry run rows", dry.Rows, res.Rows)
			eq(t, "dry run predicate", dry.Predicate, res.Predicate)
			for i, p := range res.Partitions {
				eq(t, fmt.Sprintf("partition %d files", i), p.Files, 2)
				if len(p.Values) != len(tc.layout.parts) {
					t.Fatalf("partition %d values %v: want logical names %v", i, p.Values, tc.layout.parts)
				}
				for _, f := range tc.layout.parts {
					if p.Values[f.Name] == nil {
						t.Fatalf("partition %d has no value for %s: %v", i, f.Name, p.Values)
					}
				}
			}

			// The table now holds exactly the days from firstKept on, and
			// the null partition.
			after := rowsByDay(t, dt.st)
			for day, n := range before {
				want := n
				if day < tc.firstKept && n > 0 && day != first.AddDate(-5, 0, 0).Format("2006-01-02") {
					want = 0
				}
				eq(t, "rows on "+day, after[day], want)
			}
			eq(t, "null partition rows", after[first.AddDate(-5, 0, 0).Format("2006-01-02")], dt.nullRows)

			// The commit: one DELETE of remove actions, nothing deleted.
			acts := lastCommit(t, dt.tbl)
			removes := 0
			for _, a := range acts {
				switch {
				case a.CommitInfo != nil:
					eq(t, "operation", a.CommitInfo["operation"], any("DELETE"))
					params := a.CommitInfo["operationParameters"].(map[string]any)
					eq(t, "operationParameters.predicate", params["predicate"], any(fmt.Sprintf("[%q]", tc.predicate)))
					m := a.CommitInfo["operationMetrics"].(map[string]any)
					eq(t, "numRemovedFiles", m["numRemovedFiles"], any(fmt.Sprint(res.Files)))
					eq(t, "numDeletedRows", m["numDeletedRows"], any(fmt.Sprint(wantRows)))
					eq(t, "numRemovedBytes", m["numRemovedBytes"], any(fmt.Sprint(res.Bytes)))
				case a.Remove != nil:
					removes++
					r := a.Remove
					if !r.DataChange || r.ExtendedFileMetadata == nil || !*r.ExtendedFileMetadata || r.Size == nil || r.Stats == "" || len(r.PartitionValues) != len(tc.layout.parts) {
						t.Fatalf("remove lacks extended file metadata: %+v", r)
					}
					eq(t, "deletionTimestamp", *r.DeletionTimestamp, now.UnixMilli())
					add, ok := adds[r.Path]
					if !ok {
						t.Fatalf("remove of %s, which was not live", r.Path)
					}
					kb, _ := json.Marshal(add.PartitionValues)
					rb, _ := json.Marshal(r.PartitionValues)
					if *r.Size != add.Size || r.Stats != add.Stats || string(kb) != string(rb) ||
						optInt(r.BaseRowID) != optInt(add.BaseRowID) || optInt(r.DefaultRowCommitVersion) != optInt(add.DefaultRowCommitVersion) {
						t.Fatalf("remove %+v does not carry the add's metadata %+v", r, add)
					}
					if tc.layout.props["delta.enableRowTracking"] == "true" && (r.BaseRowID == nil || r.DefaultRowCommitVersion == nil) {
						t.Fatalf("remove on a row-tracking table lacks baseRowId/defaultRowCommitVersion: %+v", r)
					}
					if _, err := dt.st.Stat(ctx, pathKey(r.Path)); err != nil {
						t.Fatalf("expired file %s was deleted (expiry is metadata only): %v", r.Path, err)
					}
				default:
					t.Fatalf("unexpected action %+v", a)
				}
			}
			eq(t, "removes", removes, res.Files)

			// Another handle reads the same table (from the log).
			re, err := Open(ctx, dt.st, OpenOptions{ReadOnly: true})
			must(t, err)
			eq(t, "files seen by a new handle", re.Snapshot().NumFiles(), dt.tbl.Snapshot().NumFiles())

			// Again: nothing more to expire, nothing committed.
			again, err := dt.tbl.Expire(ctx, ExpireOptions{Column: tc.layout.column, Keep: keep})
			must(t, err)
			eq(t, "second run no-op", again.NoOp, true)
			eq(t, "second run version", dt.tbl.Version(), startVersion+1)
		})
	}
}

// TestExpireByStats: on a non-partition timestamp column, a file goes only
// when all its rows are older than the cutoff.
func TestExpireByStats(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 6, 2, 48, 0, 0, time.UTC)
	cutoff := now.AddDate(0, 0, -30)
	sc := MustSchema(Field{Name: "id", Type: "string"}, Field{Name: "event_ts", Type: "timestamp", Nullable: true})
	files := []struct {
		name    string
		ts      []any
		expired bool
	}{
		{"old", []any{cutoff.AddDate(0, 0, -3), cutoff.AddDate(0, 0, -2)}, true},
		{"max 1ms before the cutoff", []any{cutoff.AddDate(0, 0, -1), cutoff.Add(-time.Millisecond)}, true},
		{"max at the cutoff", []any{cutoff.AddDate(0, 0, -1), cutoff}, false},
		{"max 500us before the cutoff (stats round it up)", []any{cutoff.Add(-500 * time.Microsecond)}, false},
		{"straddles", []any{cutoff.AddDate(0, 0, -1), cutoff.Add(time.Hour)}, false},
		{"new", []any{cutoff.AddDate(0, 0, 1)}, false},
		{"all null", []any{nil, nil}, false},
		{"old and null", []any{cutoff.AddDate(0, 0, -1), nil}, true},
	}
	for _, mode := range []string{"", "name"} {
		t.Run("column mapping "+mode, func(t *testing.T) {
			st := newLocal(t)
			props := map[string]string{}
			if mode != "" {
				props[ColumnMappingModeKey] = mode
			}
			tbl := mustCreate(t, st, sc, nil, props, OpenOptions{Now: func() time.Time { return now }})
			wantPaths := map[string]bool{}
			wantRows, keptRows := 0, 0
			for i, f := range files {
				rows := make([]Row, len(f.ts))
				for j, ts := range f.ts {
					rows[j] = Row{fmt.Sprintf("f%d-r%d", i, j), ts}
				}
				res, err := tbl.Append(ctx, AppendRequest{Rows: rows})
				must(t, err)
				if len(res.Files) != 1 {
					t.Fatalf("%s: %d files", f.name, len(res.Files))
				}
				if f.expired {
					wantPaths[res.Files[0].Path] = true
					wantRows += len(rows)
				} else {
					keptRows += len(rows)
				}
			}
			res, err := tbl.Expire(ctx, ExpireOptions{Column: "event_ts", Keep: Retention{Days: 30}})
			must(t, err)
			eq(t, "by stats", res.ByStats, true)
			eq(t, "files", res.Files, len(wantPaths))
			for _, p := range res.RemovedPaths {
				if !wantPaths[p] {
					t.Errorf("removed %s, which has rows not older than the cutoff", p)
				}
			}
			eq(t, "rows", res.Rows, int64(wantRows))
			eq(t, "kept straddling", res.KeptStraddling, 3)
			eq(t, "kept without stats", res.KeptWithoutStats, 1)
			eq(t, "predicate", res.Predicate, "(event_ts < '2026-11-06 02:48:00')")
			_, rows := readAll(t, st)
			eq(t, "rows left", len(rows), keptRows)
		})
	}

	t.Run("no stats for the column", func(t *testing.T) {
		st := newLocal(t)
		tbl := mustCreate(t, st, sc, nil, map[string]string{"delta.dataSkippingNumIndexedCols": "1"}, OpenOptions{Now: func() time.Time { return now }})
		_, err := tbl.Append(ctx, AppendRequest{Rows: []Row{{"a", cutoff.AddDate(-1, 0, 0)}}})
		must(t, err)
		res, err := tbl.Expire(ctx, ExpireOptions{Column: "event_ts", Keep: Retention{Days: 30}})
		must(t, err)
		eq(t, "no-op", res.NoOp, true)
		eq(t, "kept without stats", res.KeptWithoutStats, 1)
	})
}

func TestExpireRefuses(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	sc := MustSchema(Field{Name: "id", Type: "string"}, Field{Name: "n", Type: "long"}, Field{Name: "d", Type: "date"}, Field{Name: "s", Type: "string"}, Field{Name: "ts", Type: "timestamp"})
	tests := []struct {
		name   string
		parts  []string
		props  map[string]string
		column string
		keep   Retention
		rows   []Row
		want   string
	}{
		{name: "unknown column", column: "nope", keep: Retention{Days: 1}, want: "not in the table schema"},
		{name: "non-time column", column: "n", keep: Retention{Days: 1}, want: "must be a date or timestamp"},
		{name: "non-time partition", parts: []string{"id"}, column: "id,n", keep: Retention{Days: 1}, want: "integer partition columns"},
		{name: "zero retention", column: "d", keep: Retention{}, want: "must be positive"},
		{name: "append-only", column: "d", keep: Retention{Days: 1}, props: map[string]string{"delta.appendOnly": "true"}, want: "append-only"},
		{name: "string partition that is no date", parts: []string{"s"}, column: "s", keep: Retention{Days: 1},
			rows: []Row{{"a", int64(1), now, "not-a-date", now}}, want: `s="not-a-date" is not an ISO date`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newLocal(t)
			tbl := mustCreate(t, st, sc, tc.parts, tc.props, OpenOptions{Now: func() time.Time { return now }})
			if len(tc.rows) > 0 {
				_, err := tbl.Append(ctx, AppendRequest{Rows: tc.rows})
				must(t, err)
			}
			v := tbl.Version()
			_, err := tbl.Expire(ctx, ExpireOptions{Column: tc.column, Keep: tc.keep})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error with %q, got %v", tc.want, err)
			}
			eq(t, "version", tbl.Version(), v)
		})
	}
}

// TestExpireThenVacuum: expired files stay in storage until Vacuum finds
// them older than delta.deletedFileRetentionDuration, then only they go.
func TestExpireThenVacuum(t *testing.T) {
	ctx := context.Background()
	// Vacuum compares object modification times (real) with the table
	// clock, so the clock starts at the real time.
	start := time.Now().UTC()
	clock := start
	now := func() time.Time { return clock }
	today := start.Truncate(24 * time.Hour)
	l := layoutDate.with("date", map[string]string{"delta.deletedFileRetentionDuration": "interval 168 hours"})
	dt := newDayTable(t, l, today.AddDate(0, 0, -10), today, now, false)
	res, err := dt.tbl.Expire(ctx, ExpireOptions{Column: "event_date", Keep: Retention{Days: 5}})
	must(t, err)
	// The cutoff falls inside day today-5, which is kept: days -10..-6 go.
	eq(t, "partitions", len(res.Partitions), 5)
	expired := map[string]bool{}
	for _, p := range res.RemovedPaths {
		expired[pathKey(p)] = true
	}
	live := dt.tbl.Snapshot().Files()
	eq(t, "live files", len(live), 2*6)

	exists := func(p string) bool {
		_, err := dt.st.Stat(ctx, p)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	for _, step := range []struct {
		after       time.Duration
		wantDeleted bool
	}{
		{time.Hour, false},
		{167 * time.Hour, false},
		{169 * time.Hour, true},
	} {
		clock = start.Add(step.after)
		vr, err := dt.tbl.Vacuum(ctx, VacuumOptions{})
		must(t, err)
		if !step.wantDeleted {
			eq(t, fmt.Sprintf("deleted after %s", step.after), len(vr.Deleted), 0)
			for p := range expired {
				if !exists(p) {
					t.Fatalf("%s deleted %s after expiry, before the retention", step.after, p)
				}
			}
			continue
		}
		got := append([]string(nil), vr.Deleted...)
		sort.Strings(got)
		var want []string
		for p := range expired {
			want = append(want, p)
		}
		sort.Strings(want)
		eq(t, "deleted", strings.Join(got, "\n"), strings.Join(want, "\n"))
		for p := range expired {
			if exists(p) {
				t.Fatalf("%s still exists after vacuum", p)
			}
		}
	}
	for _, f := range live {
		if !exists(pathKey(f.Path)) {
			t.Fatalf("vacuum deleted live file %s", f.Path)
		}
	}
	wantRows := 0
	for d, n := range dt.rowsOn {
		if d >= today.AddDate(0, 0, -5).Format("2006-01-02") {
			wantRows += n
		}
	}
	_, rows := readAll(t, dt.st)
	eq(t, "rows after vacuum", len(rows), wantRows)
}

// commitHookStore runs hook once, just before the first commit file is
// put: another writer wins the version in between.
type commitHookStore struct {
	storage.Store
	hook func()
}

func (s *commitHookStore) PutIfAbsent(ctx context.Context, p string, data []byte) error {
	if s.hook != nil && strings.HasPrefix(p, "_delta_log/") && strings.HasSuffix(p, ".json") {
		h := s.hook
		s.hook = nil
		h()
	}
	return s.Store.PutIfAbsent(ctx, p, data)
}

// TestExpireConcurrent: a concurrent commit that removes the files expiry
// removes (a compaction, another expiry) is a conflict and nothing is
// committed; a concurrent append is not.
func TestExpireConcurrent(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 6, 2, 48, 0, 0, time.UTC)
	keep := Retention{Days: 7}
	tests := []struct {
		name     string
		winner   func(t *testing.T, w *Table)
		conflict bool
	}{
		{"optimize", func(t *testing.T, w *Table) {
			res, err := w.Optimize(ctx, OptimizeOptions{})
			must(t, err)
			if res.FilesRemoved == 0 {
				t.Fatal("optimize removed nothing")
			}
		}, true},
		{"expire", func(t *testing.T, w *Table) {
			_, err := w.Expire(ctx, ExpireOptions{Column: "event_date", Keep: keep})
			must(t, err)
		}, true},
		{"append", func(t *testing.T, w *Table) {
			_, err := w.Append(ctx, AppendRequest{Rows: []Row{{"new", now, "2026-12-06"}}})
			must(t, err)
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := func() time.Time { return now }
			dt := newDayTable(t, layoutStringDate, now.AddDate(0, 0, -10).Truncate(24*time.Hour), now, clock, false)
			winner, err := Open(ctx, dt.st, OpenOptions{Now: clock})
			must(t, err)
			loser := dt.tbl
			v := loser.Version()
			loser.store = &commitHookStore{Store: dt.st, hook: func() { tc.winner(t, winner) }}
			res, err := loser.Expire(ctx, ExpireOptions{Column: "event_date", Keep: keep})
			if !tc.conflict {
				must(t, err)
				eq(t, "version", res.Version, v+2)
				_, rows := readAll(t, dt.st)
				want := 1
				for d, n := range dt.rowsOn {
					if d >= "2026-11-29" {
						want += n
					}
				}
				eq(t, "rows", len(rows), want)
				return
			}
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("want ErrConflict, got %v", err)
			}
			if _, err := dt.st.Get(ctx, commitPath(v+2)); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("a conflicting commit was written: %v", err)
			}
			// The caller retries later: the handle has caught up.
			again, err := loser.Expire(ctx, ExpireOptions{Column: "event_date", Keep: keep})
			must(t, err)
			if tc.name == "expire" {
				eq(t, "retry after a concurrent expiry is a no-op", again.NoOp, true)
			} else {
				eq(t, "retry commits", again.Version, v+2)
			}
			days := rowsByDay(t, dt.st)
			for d, n := range dt.rowsOn {
				want := n
				if d < "2026-11-29" {
					want = 0
				}
				eq(t, "rows on "+d, days[d], want)
			}
		})
	}
}

// TestExpireDeletionVectors: the remove names the logical file (path and
// DV), so the file leaves the snapshot, and its rows count without the
// deleted ones.
func TestExpireDeletionVectors(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 6, 2, 48, 0, 0, time.UTC)
	l := layoutStringDate.with("string date, DVs", map[string]string{"delta.enableDeletionVectors": "true"})
	dt := newDayTable(t, l, time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), now, func() time.Time { return now }, false)
	// Day 11-20 (i=0) has one row per file; 11-22 (i=2) three: delete two
	// rows of one of its files with a DV.
	var target AddFile
	for _, f := range dt.tbl.Snapshot().Files() {
		if v := f.PartitionValues["event_date"]; v != nil && *v == "2026-11-22" {
			target = f
			break
		}
	}
	if target.Path == "" {
		t.Fatal("no file for 2026-11-22")
	}
	dv := deleteRows(t, dt.st, dt.tbl, target, 0, 2)
	d := dt.tbl.Describe()
	var p22 PartitionDescription
	for _, p := range d.Partitions {
		if v := p.Values["event_date"]; v != nil && *v == "2026-11-22" {
			p22 = p
		}
	}
	eq(t, "describe rows of 2026-11-22 less the DV", p22.NumRows, int64(dt.rowsOn["2026-11-22"]-2))

	res, err := dt.tbl.Expire(ctx, ExpireOptions{Column: "event_date", Keep: Retention{Days: 7}})
	must(t, err)
	wantRows := -2
	for day, n := range dt.rowsOn {
		if day < "2026-11-29" {
			wantRows += n
		}
	}
	eq(t, "rows", res.Rows, int64(wantRows))
	carried := false
	for _, a := range lastCommit(t, dt.tbl) {
		if a.Remove != nil && a.Remove.Path == target.Path {
			carried = a.Remove.DeletionVector.UniqueID() == dv.UniqueID()
		}
	}
	eq(t, "remove carries the DV", carried, true)
	re, err := Open(ctx, dt.st, OpenOptions{ReadOnly: true})
	must(t, err)
	for _, f := range re.Snapshot().Files() {
		if f.Path == target.Path {
			t.Fatalf("%s is still live after expiry", f.Path)
		}
	}
}

// TestDescribePartitions: one entry per partition (null first, integers
// numerically), with files, bytes, rows and small files against the
// handle's writer target size.
func TestDescribePartitions(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	sc := MustSchema(Field{Name: "id", Type: "string"}, Field{Name: "pad", Type: "string"}, Field{Name: "n", Type: "integer", Nullable: true})
	tbl := mustCreate(t, st, sc, []string{"n"}, nil, OpenOptions{})
	// n=10 gets a big file, n=9 and n=null a small one each, n=2 two small.
	var big []Row
	for i := 0; i < 2000; i++ {
		big = append(big, Row{fmt.Sprint(i), strings.Repeat(fmt.Sprint(i), 20), int32(10)})
	}
	res, err := tbl.Append(ctx, AppendRequest{Rows: big})
	must(t, err)
	bigSize := res.Files[0].Size
	for _, r := range []Row{{"a", "x", int32(9)}, {"b", "x", nil}, {"c", "x", int32(2)}, {"d", "x", int32(2)}} {
		_, err := tbl.Append(ctx, AppendRequest{Rows: []Row{r}})
		must(t, err)
	}
	var smallMax int64
	for _, f := range tbl.Snapshot().Files() {
		if f.Size != bigSize && f.Size > smallMax {
			smallMax = f.Size
		}
	}
	if smallMax >= bigSize {
		t.Fatalf("small file %d bytes not under the big one (%d)", smallMax, bigSize)
	}
	// The writer target decides what is small.
	h, err := Open(ctx, st, OpenOptions{ReadOnly: true, Writer: WriterOptions{TargetFileSize: bigSize}})
	must(t, err)
	d := h.Describe()
	eq(t, "target", d.TargetFileSize, bigSize)
	eq(t, "small files", d.SmallFiles, 4)
	eq(t, "partitions", d.NumPartitions, 4)
	type part struct {
		val               string
		files, small      int
		rows              int64
		bytesAtLeastSmall bool
	}
	want := []part{{"null", 1, 1, 1, true}, {"2", 2, 2, 2, true}, {"9", 1, 1, 1, true}, {"10", 1, 0, 2000, true}}
	if len(d.Partitions) != len(want) {
		t.Fatalf("partitions %+v", d.Partitions)
	}
	var total int64
	for i, p := range d.Partitions {
		v := "null"
		if p.Values["n"] != nil {
			v = *p.Values["n"]
		}
		eq(t, fmt.Sprintf("partition %d", i), v, want[i].val)
		eq(t, "files of n="+v, p.NumFiles, want[i].files)
		eq(t, "small files of n="+v, p.SmallFiles, want[i].small)
		eq(t, "rows of n="+v, p.NumRows, want[i].rows)
		eq(t, "rows exact of n="+v, p.RowsExact, true)
		total += p.SizeBytes
	}
	eq(t, "bytes add up", total, d.SizeBytes)
	eq(t, "big partition bytes", d.Partitions[3].SizeBytes, bigSize)
	// A smaller target: nothing is small.
	h, err = Open(ctx, st, OpenOptions{ReadOnly: true, Writer: WriterOptions{TargetFileSize: 1}})
	must(t, err)
	eq(t, "small files under a 1-byte target", h.Describe().SmallFiles, 0)
}

// optInt renders an optional integer for comparison.
func optInt(p *int64) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprint(*p)
}

// cdfScript prints the change data feed of one version as delta-rs reads
// it: {"<change type>": [ids…]}.
const cdfScript = `
import json, sys, deltalake, pyarrow as pa
dt = deltalake.DeltaTable(sys.argv[1])
v = int(sys.argv[2])
t = pa.table(dt.load_cdf(starting_version=v, ending_version=v).read_all()).to_pylist()
out = {}
for r in t:
    out.setdefault(r["_change_type"], []).append(r["id"])
print(json.dumps({"changes": out, "history": [h.get("operation") for h in dt.history(1)]}))
`

// TestExpireDeltaRS: delta-rs reads the table after an expiry without the
// expired rows, and its change data feed reads the DELETE (remove actions,
// no change data files) as the deleted rows.
func TestExpireDeltaRS(t *testing.T) {
	py := deltaRSPython(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 6, 2, 48, 0, 0, time.UTC)
	l := layoutStringDate.with("string date, CDF", map[string]string{"delta.enableChangeDataFeed": "true"})
	dt := newDayTable(t, l, time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), now, func() time.Time { return now }, true)
	var wantDeleted []string
	for _, f := range dt.tbl.Snapshot().Files() {
		if v := f.PartitionValues["event_date"]; v != nil && *v < "2026-11-29" {
			rows, err := dt.tbl.Snapshot().ReadFile(ctx, dt.st, f)
			must(t, err)
			for _, r := range rows {
				wantDeleted = append(wantDeleted, r[0].(string))
			}
		}
	}
	res, err := dt.tbl.Expire(ctx, ExpireOptions{Column: "event_date", Keep: Retention{Days: 7}})
	must(t, err)
	eq(t, "rows expired", res.Rows, int64(len(wantDeleted)))

	view := runDeltaRS(t, py, dt.st.Root())
	eq(t, "delta-rs version", view.Version, res.Version)
	_, ours := readAll(t, dt.st)
	eq(t, "delta-rs rows", view.NumRows, int64(len(ours)))
	for _, r := range view.Rows {
		if d, ok := r["event_date"].(string); ok && d < "2026-11-29" {
			t.Fatalf("delta-rs still reads an expired row: %v", r)
		}
	}

	cmd := exec.Command(py, "-c", cdfScript, dt.st.Root(), fmt.Sprint(res.Version))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("delta-rs change data feed: %v\n%s", err, stderr.String())
	}
	var cdf struct {
		Changes map[string][]string `json:"changes"`
		History []string            `json:"history"`
	}
	must(t, json.Unmarshal(out, &cdf))
	got := cdf.Changes["delete"]
	sort.Strings(got)
	sort.Strings(wantDeleted)
	eq(t, "deleted rows in the change data feed", strings.Join(got, ","), strings.Join(wantDeleted, ","))
	eq(t, "change types", len(cdf.Changes), 1)
	eq(t, "delta-rs history", strings.Join(cdf.History, ","), "DELETE")
}
