package quality

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
)

const exampleFile = "../pipelines/quality/expectations.yaml"

// The example expectations file against real tables: healthy data passes
// every expectation; each seeded fault fails the expectation that watches
// for it, and only that one, with a message that names the evidence.
func TestExampleExpectations(t *testing.T) {
	cases := []struct {
		name     string
		faults   faults
		failing  []string
		contains []string // in the failing expectation's message
	}{
		{name: "healthy"},
		{
			name:     "missing day",
			faults:   faults{dropDay: "2026-01-12"},
			failing:  []string{"tracking_complete"},
			contains: []string{"2026-01-12: missing day (0 rows)"},
		},
		{
			name:     "table behind the topic",
			faults:   faults{dropSomeDay: "2026-01-11", dropSome: 10},
			failing:  []string{"tracking_complete"},
			contains: []string{"2026-01-11: 32 rows = 0.762 × 42 of Kafka topic itel.cabinet.task.tracking.test", "min_ratio 0.95"},
		},
		{
			name:     "null burst",
			faults:   faults{nullAssignDay: "2026-01-13", nullAssignShare: 0.5},
			failing:  []string{"tracking_not_null"},
			contains: []string{"assignment_id 21 of ", "rows null"},
		},
		{
			name:     "duplicate event ids",
			faults:   faults{duplicates: 3},
			failing:  []string{"tracking_event_id_unique"},
			contains: []string{"3 duplicate row(s) of event_id", `"evt-0110-`},
		},
		{
			name:     "disallowed status",
			faults:   faults{badStatus: "DONE"},
			failing:  []string{"tracking_task_status_known"},
			contains: []string{`1 row(s) of task_status not in {"ASSIGNED", "IN_PROGRESS", "COMPLETED", "CANCELLED"}`, `"DONE" ×1`},
		},
		{
			name:     "completed without a form",
			faults:   faults{dropForm: 100302},
			failing:  []string{"completed_have_forms"},
			contains: []string{"1 of ", "assignment_id value(s) of rows with task_status = \"COMPLETED\"", "no row in itel_cabinet_forms.assignment_id, e.g. 100302"},
		},
		{
			name:     "stale in working hours",
			faults:   faults{staleFor: 2 * time.Hour},
			failing:  []string{"tracking_fresh"},
			contains: []string{"stale: newest event_timestamp is 2026-01-14T", "more than max_age 1h0m0s"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ds := genDataset(testNow, tc.faults)
			newEnv(t, ds, nil)
			cfg, err := LoadConfig(exampleFile)
			must(t, err)
			ev := NewEvaluator(cfg, Options{Now: fixedClock(testNow)})
			run := ev.Run(t.Context(), "", nil)
			if len(run.Results) != len(cfg.Expectations) {
				t.Fatalf("%d results for %d expectations", len(run.Results), len(cfg.Expectations))
			}

			var failing []string
			for _, r := range run.Results {
				if r.Status != StatusPass && r.Status != StatusFail {
					t.Errorf("%s: %s: %s", r.Expectation, r.Status, r.Message)
				}
				if r.Status == StatusFail {
					failing = append(failing, r.Expectation)
				}
				if !json.Valid([]byte(r.Details)) {
					t.Errorf("%s details: %s", r.Expectation, r.Details)
				}
				eq(t, "run id", r.RunID, run.ID)
				eq(t, "result id", r.ResultID, run.ID+"/"+r.Expectation)
				val(t, r.Expectation+" table version", r.TableVersion)
				val(t, r.Expectation+" observed", r.Observed)
			}
			eq(t, "failing", strings.Join(failing, ","), strings.Join(tc.failing, ","))
			if len(tc.failing) == 1 {
				msg := byName(run)[tc.failing[0]].Message
				for _, want := range tc.contains {
					has(t, tc.failing[0], msg, want)
				}
			}
			if tc.name == "healthy" {
				checkHealthyCost(t, byName(run))
			}
		})
	}
}

// checkHealthyCost: what the log answers is never read.
func checkHealthyCost(t *testing.T, rs map[string]Result) {
	t.Helper()
	// 8 days × 2 files.
	fresh := rs["tracking_fresh"]
	eq(t, "fresh.FilesConsidered", fresh.FilesConsidered, int64(16))
	eq(t, "freshness reads maxValues", fresh.FilesScanned, 0)
	eq(t, "files of older days than the newest are pruned", fresh.FilesPruned, int64(15))
	has(t, "fresh.Message", fresh.Message, "newest event_timestamp is ")

	complete := rs["tracking_complete"]
	eq(t, "completeness counts numRecords of day partitions", complete.FilesScanned, 0)
	eq(t, "today and the days before the 3-day window", complete.FilesPruned, int64(10))
	has(t, "complete.Message", complete.Message, "3 day(s) 2026-01-11 … 2026-01-13 complete: 42–42 rows a day (min_rows 1); lowest ratio 1.000 of Kafka topic")
	var d struct {
		Days []dayResult `json:"days"`
	}
	must(t, json.Unmarshal([]byte(complete.Details), &d))
	eq(t, "days", len(d.Days), 3)
	for _, day := range d.Days {
		eq(t, day.Day+" rows", day.Rows, 42)
		eq(t, day.Day+" records", val(t, day.Day+" reference", day.Reference), 42)
	}

	nulls := rs["tracking_not_null"]
	eq(t, "null_rate sums nullCount", nulls.FilesScanned, 0)
	eq(t, "the day before the 7-day window", nulls.FilesPruned, int64(2))
	eq(t, "null fraction", val(t, "observed", nulls.Observed), 0)

	unique := rs["tracking_event_id_unique"]
	eq(t, "unique reads event_id of the 7 days' files", unique.FilesScanned, int64(14))
	eq(t, "unique.FilesPruned", unique.FilesPruned, int64(2))

	ref := rs["completed_have_forms"]
	has(t, "ref.Message", ref.Message, "assignment_id value(s) of rows with task_status = \"COMPLETED\"")
	has(t, "ref.Message", ref.Message, "are in itel_cabinet_forms.assignment_id")
}

// The cost contract on its own: with statistics a null rate reads no file
// and a one-day window prunes every other day's partitions; without column
// statistics, only the files of the window are read.
func TestNullRateCost(t *testing.T) {
	yaml := `
tables:
  tracking: { uri: "${DELTA_TABLE_URI}", time_column: event_timestamp, date_partitions: [year, month, day] }
expectations:
  - { name: today, table: tracking, kind: null_rate, columns: [assignment_id, task_status, year], days: 1 }
  - { name: week, table: tracking, kind: null_rate, columns: [assignment_id], max_null_fraction: 0.1, days: 7, include_today: false }
`
	ds := genDataset(testNow, faults{nullAssignDay: "2026-01-14", nullAssignShare: 0.25})
	cases := []struct {
		name        string
		props       map[string]string
		todayRead   int64
		todayNulls  float64
		weekScanned int64
	}{
		{name: "with statistics", todayRead: 0, weekScanned: 0},
		{name: "without column statistics", props: map[string]string{"delta.dataSkippingNumIndexedCols": "0"}, todayRead: 2, weekScanned: 14},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			newEnv(t, ds, tc.props)
			cfg, err := ParseConfig([]byte(yaml))
			must(t, err)
			rs := byName(NewEvaluator(cfg, Options{Now: fixedClock(testNow)}).Run(t.Context(), "", nil))
			today := rs["today"]
			eq(t, today.Message, today.Status, StatusFail)
			eq(t, "today.FilesConsidered", today.FilesConsidered, int64(16))
			eq(t, "a 1-day window prunes the other days' partitions", today.FilesPruned, int64(14))
			eq(t, "today.FilesScanned", today.FilesScanned, tc.todayRead)
			// 37 of today's 42 slots are before 20:50 UTC; the first 25% of the
			// day's slots (11) have no assignment.
			has(t, "today.Message", today.Message, "assignment_id 11 of 37 rows null (0.2973)")
			week := rs["week"]
			eq(t, week.Message, week.Status, StatusPass)
			eq(t, "week.FilesScanned", week.FilesScanned, tc.weekScanned)
			eq(t, "week.FilesPruned", week.FilesPruned, int64(2))
		})
	}
}

// Freshness is judged in working hours only, with the clock starting at the
// start of the working period.
func TestFreshnessWorkingHours(t *testing.T) {
	chicago, err := time.LoadLocation("America/Chicago")
	must(t, err)
	at := func(day, hh, mm int) time.Time { return time.Date(2026, 1, day, hh, mm, 0, 0, chicago) }
	yaml := `
tables:
  tracking: { uri: "${DELTA_TABLE_URI}", time_column: event_timestamp, date_partitions: [year, month, day] }
expectations:
  - name: fresh
    table: tracking
    kind: freshness
    max_age: 60m
    working_hours: { days: [Mon, Tue, Wed, Thu, Fri], start: "08:00", end: "18:00", timezone: America/Chicago }
`
	cases := []struct {
		name     string
		now      time.Time
		newest   time.Time
		status   Status
		observed float64
		contains string
	}{
		{"wednesday, 20 minutes old", at(14, 14, 0), at(14, 13, 40), StatusPass, 1200, "newest event_timestamp is 20m0s old (max 1h0m0s)"},
		{"wednesday, 2 hours old", at(14, 14, 0), at(14, 12, 0), StatusFail, 7200, "stale: newest event_timestamp is 2026-01-14T18:00:00Z (2h0m0s old), more than max_age 1h0m0s"},
		{"monday 08:05, nothing since friday", at(12, 8, 5), at(9, 17, 0), StatusPass, 300, "5m0s into working hours"},
		{"monday 09:30, nothing since friday", at(12, 9, 30), at(9, 17, 0), StatusFail, 5400, "1h30m0s into working hours"},
		{"saturday", at(17, 12, 0), at(16, 17, 0), StatusSkipped, 0, "outside working hours (Mon-Fri 08:00-18:00 America/Chicago)"},
		{"wednesday evening", at(14, 19, 0), at(14, 12, 0), StatusSkipped, 0, "outside working hours"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var events []event
			for k := 0; k < 5; k++ {
				ts := tc.newest.Add(-time.Duration(k) * 7 * time.Hour).UTC()
				events = append(events, event{id: ts.String(), eventType: "CUSTOM_TASK_ASSIGNED", ts: ts, assignment: 1, status: "ASSIGNED"})
			}
			newEnv(t, dataset{events: events}, nil)
			cfg, err := ParseConfig([]byte(yaml))
			must(t, err)
			r := NewEvaluator(cfg, Options{Now: fixedClock(tc.now)}).Run(t.Context(), "", nil).Results[0]
			eq(t, r.Message, r.Status, tc.status)
			has(t, "r.Message", r.Message, tc.contains)
			if tc.status != StatusSkipped {
				if o := val(t, "observed", r.Observed); o < tc.observed-0.01 || o > tc.observed+0.01 {
					t.Errorf("observed %g, want %g", o, tc.observed)
				}
				eq(t, "r.FilesScanned", r.FilesScanned, 0)
			}
			eq(t, "threshold", val(t, "threshold", r.Threshold), 3600)
		})
	}
}

// Ranges and allowed values: statistics and partition values prove most
// files without reading them; the rest are read and the violations counted.
func TestRangeAndAllowedValues(t *testing.T) {
	yaml := `
tables:
  tracking: { uri: "${DELTA_TABLE_URI}", time_column: event_timestamp, date_partitions: [year, month, day] }
expectations:
  - { name: task_id_fixed, table: tracking, kind: range, column: task_id, min: 32513, max: 32513 }
  - { name: since_jan_8, table: tracking, kind: range, column: event_timestamp, min: "2026-01-08T00:00:00Z" }
  - { name: since_jan_8_window, table: tracking, kind: range, column: event_timestamp, min: "2026-01-08T00:00:00Z", days: 3 }
  - { name: year_2026, table: tracking, kind: allowed_values, column: year, values: [2026] }
  - { name: january_only, table: tracking, kind: range, column: month, max: 0 }
  - { name: assignment_bounds, table: tracking, kind: range, column: assignment_id, min: 100000, max: 100499 }
  - { name: bad_bound, table: tracking, kind: range, column: task_id, min: lots }
`
	newEnv(t, genDataset(testNow, faults{}), nil)
	cfg, err := ParseConfig([]byte(yaml))
	must(t, err)
	rs := byName(NewEvaluator(cfg, Options{Now: fixedClock(testNow)}).Run(t.Context(), "", nil))

	cases := []struct {
		name     string
		status   Status
		scanned  int64
		pruned   int64
		observed float64
		contains string
	}{
		{"task_id_fixed", StatusPass, 0, 0, 0, "every task_id ≥ 32513 and ≤ 32513 in the table (16 files proven by statistics, 0 read)"},
		{"since_jan_8", StatusFail, 2, 0, 42, "42 row(s) of event_timestamp not ≥ 2026-01-08T00:00:00Z in the table, e.g. 2026-01-07T00:05:00Z ×1"},
		{"since_jan_8_window", StatusPass, 0, 10, 0, "in the window [2026-01-12T00:00:00Z, 2026-01-15T00:00:00Z)"},
		{"year_2026", StatusPass, 0, 0, 0, "every year in {2026}"},
		// 7 whole days and 37 events of today, judged by partition values.
		{"january_only", StatusFail, 0, 0, 7*42 + 37, "331 row(s) of month not ≤ 0 in the table, e.g. 1 ×331"},
		// Assignments of the last 3 days are 1005xx, 1006xx, 1007xx: their 6
		// files are read, the other 10 proven by their statistics.
		{"assignment_bounds", StatusFail, 6, 0, 2*42 + 37, "121 row(s) of assignment_id not ≥ 100000 and ≤ 100499 in the table, e.g. 100500 ×3, 100501 ×3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rs[tc.name]
			eq(t, r.Message, r.Status, tc.status)
			has(t, "r.Message", r.Message, tc.contains)
			eq(t, "r.FilesScanned", r.FilesScanned, tc.scanned)
			eq(t, "r.FilesPruned", r.FilesPruned, tc.pruned)
			eq(t, "*r.Observed", *r.Observed, tc.observed)
		})
	}
	bad := rs["bad_bound"]
	eq(t, bad.Message, bad.Status, StatusError)
	has(t, "bad.Message", bad.Message, `column task_id: min: "lots" is not a integer value`)
}

// A table that cannot be read makes its expectations errors; the others
// still run. A column the table lacks is an error naming it.
func TestErrorsDoNotStopTheRun(t *testing.T) {
	newEnv(t, genDataset(testNow, faults{}), nil)
	t.Setenv("ITEL_FORMS_TABLE_URI", t.TempDir()+"/nothing_here")
	cfg, err := LoadConfig(exampleFile)
	must(t, err)
	cfg.Expectations = append(cfg.Expectations, &Expectation{Name: "no_such_column", Table: "itel_cabinet_task_tracking",
		Kind: KindUnique, Column: "nope", Severity: SeverityCritical, Location: time.UTC, IncludeToday: true})
	rs := byName(NewEvaluator(cfg, Options{Now: fixedClock(testNow)}).Run(t.Context(), "", nil))
	for _, name := range []string{"completed_have_forms", "forms_form_key_unique"} {
		eq(t, name+" status", rs[name].Status, StatusError)
		has(t, name, rs[name].Message, "itel_cabinet_forms")
		eq(t, name+" observed is null", rs[name].Observed == nil, true)
	}
	eq(t, "no table version", rs["forms_form_key_unique"].TableVersion == nil, true)
	eq(t, "rs[\"no_such_column\"].Status", rs["no_such_column"].Status, StatusError)
	has(t, "rs[\"no_such_column\"].Message", rs["no_such_column"].Message, `column "nope" is not in table itel_cabinet_task_tracking`)
	for _, name := range []string{"tracking_fresh", "tracking_complete", "tracking_not_null", "tracking_event_id_unique", "tracking_task_status_known"} {
		eq(t, name+": "+rs[name].Message, rs[name].Status, StatusPass)
	}
}

// An evaluator keeps its table handles: a second run sees the commits made
// since the first.
func TestEvaluatorSeesNewCommits(t *testing.T) {
	yaml := `
tables:
  tracking: { uri: "${DELTA_TABLE_URI}", time_column: event_timestamp, date_partitions: [year, month, day] }
expectations:
  - { name: unique, table: tracking, kind: unique, column: event_id }
`
	ds := genDataset(testNow, faults{})
	e := newEnv(t, ds, nil)
	cfg, err := ParseConfig([]byte(yaml))
	must(t, err)
	ev := NewEvaluator(cfg, Options{Now: fixedClock(testNow)})
	first := ev.Run(t.Context(), "", nil).Results[0]
	if first.Status != StatusPass {
		t.Fatalf("first run: %s: %s", first.Status, first.Message)
	}
	appendTracking(t, e.trackingURI, ds.events[:2])
	second := ev.Run(t.Context(), "", nil).Results[0]
	eq(t, second.Message, second.Status, StatusFail)
	eq(t, "*second.TableVersion", *second.TableVersion, *first.TableVersion+1)
	has(t, "second.Message", second.Message, "2 duplicate row(s) of event_id")
}

func TestParseConfigErrors(t *testing.T) {
	head := "tables:\n  t: { uri: ./t, time_column: ts }\n  p: { uri: ./p, date_partitions: [year, month, day] }\nexpectations:\n"
	cases := []struct {
		name, exp, want string
	}{
		{"unknown kind", `- { name: a, table: t, kind: fresh }`, `expectation "a" (line 5): kind "fresh" is not one of allowed_values, completeness, freshness, null_rate, range, referential, unique`},
		{"field of another kind", `- { name: a, table: t, kind: freshness, max_age: 1h, days: 3 }`, `expectation "a" (line 5): field "days" (line 5) does not apply to kind freshness`},
		{"typo", `- { name: a, table: t, kind: unique, colum: x }`, `field "colum" (line 5) does not apply to kind unique`},
		{"no max_age", `- { name: a, table: t, kind: freshness }`, `expectation "a" (line 5): max_age is required`},
		{"bad duration", `- { name: a, table: t, kind: freshness, max_age: soon }`, `expectation "a" (line 5): max_age "soon" is not a duration`},
		{"unknown table", `- { name: a, table: x, kind: unique, column: c }`, `expectation "a" (line 5): table "x" is not in tables`},
		{"severity", `- { name: a, table: t, kind: unique, column: c, severity: fatal }`, `severity "fatal" is not warning or critical`},
		{"no name", `- { table: t, kind: unique, column: c }`, `expectation 1 (line 5): name is required`},
		{"duplicate name", "- { name: a, table: t, kind: unique, column: c }\n- { name: a, table: t, kind: unique, column: d }", `expectation "a" (line 6): the name is already used on line 5`},
		{"timezone", `- { name: a, table: t, kind: unique, column: c, days: 1, timezone: Mars/Olympus }`, `expectation "a" (line 5): timezone "Mars/Olympus"`},
		{"local days need a time column", `- { name: a, table: p, kind: unique, column: c, days: 1, timezone: America/Chicago }`, `days: table p has only date_partitions (UTC days) and no time_column`},
		{"completeness needs days", `- { name: a, table: t, kind: completeness }`, `expectation "a" (line 5): days is required`},
		{"ratio needs reference", `- { name: a, table: t, kind: completeness, days: 2, min_ratio: 0.9 }`, `min_ratio needs a reference`},
		{"reference both", `- { name: a, table: t, kind: completeness, days: 2, min_ratio: 0.9, reference: { table: p, kafka_topic: x } }`, `reference: give a table or a kafka_topic, not both`},
		{"working hours day", `- { name: a, table: t, kind: freshness, max_age: 1h, working_hours: { days: [Mon, Funday], start: "08:00", end: "18:00" } }`, `working_hours: days: "Funday" is not a day of the week`},
		{"working hours order", `- { name: a, table: t, kind: freshness, max_age: 1h, working_hours: { days: Mon-Fri, start: "18:00", end: "08:00" } }`, `working_hours: end 08:00 must be after start 18:00`},
		{"null fraction", `- { name: a, table: t, kind: null_rate, columns: [c], max_null_fraction: 2 }`, `max_null_fraction must be within 0 and 1, got 2`},
		{"range bounds", `- { name: a, table: t, kind: range, column: c }`, `expectation "a" (line 5): min or max is required`},
		{"allowed values", `- { name: a, table: t, kind: allowed_values, column: c, values: [] }`, `values: a non-empty list is required`},
		{"referential reference", `- { name: a, table: t, kind: referential, column: c }`, `reference (table and column) is required`},
		{"where", `- { name: a, table: t, kind: referential, column: c, reference: { table: p }, where: { column: s } }`, `where needs column and equals`},
		{"grace needs time column", `- { name: a, table: p, kind: referential, column: c, reference: { table: t }, grace: 1h }`, `grace needs the table's time_column`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(head + tc.exp + "\n"))
			if err == nil {
				t.Fatal("no error")
			}
			has(t, "err.Error()", err.Error(), tc.want)
		})
	}
	for _, bad := range []struct{ doc, want string }{
		{"expectations: []", "tables: a mapping of table name to URI is required"},
		{"tables: { t: ./t }\nexpectations: []", "expectations: a list of expectations is required"},
		{"tables: { t: \"${NO_SUCH_VAR_Q}\" }\nexpectations: [ {name: a, table: t, kind: unique, column: c} ]", "tables.t (line 1): uri is required"},
		{"tables: { t: { uri: ./t, date_partitions: [a, b] } }\nexpectations: []", "date_partitions: give [year, month, day] or one date column, not 2 columns"},
		{"tables: { t: ./t }\nexpectation: []", `the file: unknown field "expectation"`},
	} {
		_, err := ParseConfig([]byte(bad.doc))
		if err == nil {
			t.Fatalf("no error for %q", bad.doc)
		}
		has(t, "err.Error()", err.Error(), bad.want)
	}
}

func TestParseConfigExample(t *testing.T) {
	t.Setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
	t.Setenv("ITEL_TRACKING_TOPIC", "")
	cfg, err := LoadConfig(exampleFile)
	must(t, err)
	eq(t, "cfg.Tables[\"itel_cabinet_task_tracking\"].URI", cfg.Tables["itel_cabinet_task_tracking"].URI, "./data/itel_cabinet_task_tracking")
	var names []string
	for _, e := range cfg.Expectations {
		names = append(names, e.Name)
	}
	eq(t, "names", strings.Join(names, ","), "tracking_fresh,tracking_complete,tracking_not_null,tracking_event_id_unique,"+
		"tracking_task_status_known,completed_have_forms,forms_form_key_unique")
	fresh := cfg.Expectations[0]
	eq(t, "fresh.WorkingHours.String()", fresh.WorkingHours.String(), "Mon-Fri 08:00-18:00 America/Chicago")
	eq(t, "fresh.MaxAge", fresh.MaxAge, time.Hour)
	complete := cfg.Expectations[1]
	eq(t, "complete.Reference.KafkaTopic", complete.Reference.KafkaTopic, "itel.cabinet.task.tracking")
	eq(t, "brokers", strings.Join(complete.Reference.KafkaBrokers, ","), "k1:9092,k2:9092")
	eq(t, "include today", complete.IncludeToday, false)
	eq(t, "cfg.Expectations[2].Severity", cfg.Expectations[2].Severity, SeverityWarning)

	sel, err := cfg.Select([]string{"forms_form_key_unique", "tracking_fresh"})
	must(t, err)
	eq(t, "sel[0].Name", sel[0].Name, "tracking_fresh")
	_, err = cfg.Select([]string{"tracking_fresh", "nope", "also_nope"})
	if err == nil || err.Error() != "no expectation named also_nope, nope" {
		t.Errorf("select: %v", err)
	}
}

// The results table: the Go schema is schemas/quality_results.yaml, the
// result's JSON keys are its columns, and a run appended twice is written
// once.
func TestResultsTable(t *testing.T) {
	file := readSchema(t, "quality_results.yaml")
	if !file.Equal(ResultsSchema()) {
		t.Fatalf("schemas/quality_results.yaml and resultsSchemaYAML differ:\n%s\n%s", file, ResultsSchema())
	}

	b, err := json.Marshal(Result{})
	must(t, err)
	var m map[string]any
	must(t, json.Unmarshal(b, &m))
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	cols := slices.Clone(file.Names())
	sort.Strings(cols)
	eq(t, "JSON keys", strings.Join(keys, ","), strings.Join(cols, ","))

	newEnv(t, genDataset(testNow, faults{dropForm: 100302}), nil)
	cfg, err := LoadConfig(exampleFile)
	must(t, err)
	run := NewEvaluator(cfg, Options{Now: fixedClock(testNow)}).Run(t.Context(), "run-1", nil)
	st := localStore(t, t.TempDir())
	tbl, err := OpenResultsTable(t.Context(), st)
	must(t, err)
	// One appId per run: the table expires them, or they pile up.
	eq(t, "txn retention", tbl.Properties()[delta.TxnRetentionProperty], ResultsTxnRetention)
	written, err := AppendResults(t.Context(), tbl, run)
	must(t, err)
	eq(t, "first append writes", written, true)
	// A retry through another handle (another process) adds nothing.
	again, err := OpenResultsTable(t.Context(), st)
	must(t, err)
	written, err = AppendResults(t.Context(), again, run)
	must(t, err)
	eq(t, "a retry through another handle writes", written, false)
	written, err = AppendResults(t.Context(), tbl, run)
	must(t, err)
	eq(t, "a retry writes", written, false)

	rows := readAll(t, st)
	eq(t, "rows", len(rows), len(run.Results))
	sc := ResultsSchema()
	got := map[string]map[string]any{}
	for _, r := range rows {
		rec := map[string]any{}
		for i, n := range sc.Names() {
			rec[n] = r[i]
		}
		got[rec["expectation"].(string)] = rec
	}
	ref := got["completed_have_forms"]
	eq(t, "ref[\"result_id\"]", ref["result_id"], "run-1/completed_have_forms")
	eq(t, "ref[\"status\"]", ref["status"], "fail")
	eq(t, "ref[\"severity\"]", ref["severity"], "warning")
	eq(t, "ref[\"observed\"]", ref["observed"], 1.0)
	eq(t, "evaluated_at", ref["evaluated_at"].(time.Time).Equal(testNow), true)
	has(t, "message", ref["message"].(string), "100302")
	eq(t, "details is JSON", json.Valid([]byte(ref["details"].(string))), true)
}

func readAll(t *testing.T, st storage.Store) []delta.Row {
	t.Helper()
	tbl, err := OpenResultsTable(t.Context(), st)
	must(t, err)
	snap := tbl.Snapshot()
	var out []delta.Row
	for _, f := range snap.Files() {
		rows, err := snap.ReadFile(t.Context(), st, f)
		must(t, err)
		out = append(out, rows...)
	}
	return out
}

// Completeness against a Kafka topic whose retention has deleted the start
// of the window: the day the log no longer covers whole is marked partial
// and its ratio not judged; the others are. (A day whose first record is the
// log's first is partial too: the log cannot tell whether records of it were
// deleted.)
func TestCompletenessKafkaRetention(t *testing.T) {
	ds := genDataset(testNow, faults{dropSomeDay: "2026-01-11", dropSome: 10})
	e := newEnv(t, ds, nil)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers))
	must(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// Retention deleted the records before noon of 2026-01-11.
	noon := time.Date(2026, 1, 11, 12, 0, 0, 0, time.UTC)
	at, err := adm.ListOffsetsAfterMilli(t.Context(), noon.UnixMilli(), e.topic)
	must(t, err)
	resp, err := adm.DeleteRecords(t.Context(), at.Offsets())
	must(t, err)
	must(t, resp.Error())

	yaml := `
tables:
  tracking: { uri: "${DELTA_TABLE_URI}", time_column: event_timestamp, date_partitions: [year, month, day] }
expectations:
  - name: complete
    table: tracking
    kind: completeness
    days: 3
    min_ratio: 0.95
    reference: { kafka_topic: "${ITEL_TRACKING_TOPIC}" }
`
	cfg, err := ParseConfig([]byte(yaml))
	must(t, err)
	r := NewEvaluator(cfg, Options{Now: fixedClock(testNow)}).Run(t.Context(), "", nil).Results[0]
	eq(t, r.Message, r.Status, StatusPass)
	var d struct {
		Days []dayResult `json:"days"`
	}
	must(t, json.Unmarshal([]byte(r.Details), &d))
	eq(t, "days", len(d.Days), 3)
	eq(t, "2026-01-11 partial", d.Days[0].Partial, true)
	eq(t, "2026-01-11 rows", d.Days[0].Rows, 32)
	eq(t, "2026-01-11 has no ratio", d.Days[0].Ratio == nil, true)
	for _, day := range d.Days[1:] {
		eq(t, day.Day+" partial", day.Partial, false)
		eq(t, day.Day+" ratio", val(t, day.Day+" ratio", day.Ratio), 1)
	}
	has(t, "message", r.Message, "lowest ratio 1.000 of Kafka topic")
}

// A topic that does not exist is an error of the expectation.
func TestCompletenessKafkaTopicMissing(t *testing.T) {
	newEnv(t, genDataset(testNow, faults{}), nil)
	yaml := `
tables:
  tracking: { uri: "${DELTA_TABLE_URI}", date_partitions: [year, month, day] }
expectations:
  - { name: complete, table: tracking, kind: completeness, days: 2, min_ratio: 0.9, reference: { kafka_topic: no.such.topic.q } }
`
	cfg, err := ParseConfig([]byte(yaml))
	must(t, err)
	r := NewEvaluator(cfg, Options{Now: fixedClock(testNow)}).Run(t.Context(), "", nil).Results[0]
	eq(t, r.Message, r.Status, StatusError)
	has(t, "message", r.Message, "reference Kafka topic no.such.topic.q")
}

// Completeness against another table: a table without date partitions whose
// one file spans many days is read (its time column only) and bucketed; the
// partitioned reference is counted from the log.
func TestCompletenessTableReference(t *testing.T) {
	newEnv(t, genDataset(testNow, faults{}), nil)
	yaml := `
tables:
  tracking: { uri: "${DELTA_TABLE_URI}", time_column: event_timestamp, date_partitions: [year, month, day] }
  forms: { uri: "${ITEL_FORMS_TABLE_URI}", time_column: processed_timestamp }
expectations:
  - { name: third, table: forms, kind: completeness, days: 3, min_rows: 14, min_ratio: 0.3, reference: { table: tracking } }
  - { name: half, table: forms, kind: completeness, days: 3, min_ratio: 0.5, reference: { table: tracking } }
  - { name: chicago_days, table: tracking, kind: completeness, days: 2, timezone: America/Chicago, min_rows: 42 }
`
	cfg, err := ParseConfig([]byte(yaml))
	must(t, err)
	rs := byName(NewEvaluator(cfg, Options{Now: fixedClock(testNow)}).Run(t.Context(), "", nil))
	third := rs["third"]
	eq(t, third.Message, third.Status, StatusPass)
	has(t, "third", third.Message, "3 day(s) 2026-01-11 … 2026-01-13 complete: 14–14 rows a day (min_rows 14); lowest ratio 0.333 of table tracking")
	eq(t, "forms file read, tracking counted from the log", third.FilesScanned, 1)
	eq(t, "files of both tables", third.FilesConsidered, 17)
	half := rs["half"]
	eq(t, half.Message, half.Status, StatusFail)
	has(t, "half", half.Message, "3 of 3 day(s) 2026-01-11 … 2026-01-13 incomplete: 2026-01-11: 14 rows = 0.333 × 42 of table tracking < min_ratio 0.5;")
	eq(t, "observed is the lowest ratio", val(t, "observed", half.Observed) < 0.34, true)
	// Chicago days start at 06:00 UTC: of each UTC day's two files, the
	// statistics place the afternoon one inside a Chicago day; the morning
	// one straddles 06:00 and has its event_timestamp read.
	chicago := rs["chicago_days"]
	eq(t, chicago.Message, chicago.Status, StatusPass)
	has(t, "chicago", chicago.Message, "2 day(s) 2026-01-12 … 2026-01-13 complete: 42–42 rows a day")
	eq(t, "the morning files of 01-12, 01-13 and 01-14 are read", chicago.FilesScanned, 3)
	eq(t, "the days before, and the afternoon of 01-14", chicago.FilesPruned, 10+1)
}
