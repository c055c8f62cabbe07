package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/kafka/kafkatest"
	"github.com/claimx/claimx-connect/tests/internal/harness"
)

// TestQualityStreamAlertsOncePerFailure runs the quality stream
// (pipelines/quality.yaml) every 2 seconds on a tracking table with a
// duplicated event_id and an unknown status: both expectations fail, each
// alerts once through the shared notifiers (alerts topic, Slack, PagerDuty
// for the critical one) however many runs follow and across a restart, the
// passing one alerts nothing, and every run's results are in the
// _quality_results table.
func TestQualityStreamAlertsOncePerFailure(t *testing.T) {
	harness.RequireBinary(t)
	dir := t.TempDir()
	table := filepath.Join(dir, "itel_cabinet_task_tracking")
	writeTrackingRows(t, table, []trackingRow{
		{"evt_1", 1, "ASSIGNED"}, {"evt_2", 1, "COMPLETED"}, {"evt_2", 1, "COMPLETED"}, {"evt_3", 2, "DONE"}, {"evt_4", 3, "ASSIGNED"},
	})
	expectations := filepath.Join(dir, "expectations.yaml")
	if err := os.WriteFile(expectations, []byte(`
tables:
  itel_cabinet_task_tracking: { uri: "`+table+`", time_column: event_timestamp, date_partitions: [year, month, day] }
expectations:
  - { name: ids_unique, table: itel_cabinet_task_tracking, kind: unique, column: event_id, severity: critical }
  - { name: status_known, table: itel_cabinet_task_tracking, kind: allowed_values, column: task_status, values: [ASSIGNED, IN_PROGRESS, COMPLETED, CANCELLED], severity: warning }
  - { name: assignment_present, table: itel_cabinet_task_tracking, kind: null_rate, columns: [assignment_id], max_null_fraction: 0 }
`), 0o644); err != nil {
		t.Fatal(err)
	}
	slack, pagerduty := &standIn{}, &standIn{}
	slackSrv := httptest.NewServer(slack)
	defer slackSrv.Close()
	pdSrv := httptest.NewServer(pagerduty)
	defer pdSrv.Close()
	results := filepath.Join(dir, "_quality_results")
	e := harness.NewWith(t, harness.Options{ChildEnv: []string{
		"QUALITY_EXPECTATIONS_FILE=" + expectations,
		"QUALITY_SCHEDULE=@every 2s",
		"QUALITY_RESULTS_TABLE_URI=" + results,
		"QUALITY_RESULTS_SCHEMA_FILE=" + filepath.Join(harness.RepoRoot, "schemas", "quality_results.yaml"),
		"SLACK_WEBHOOK_URL=" + slackSrv.URL + "/hooks/T0/B0/x",
		"PAGERDUTY_ROUTING_KEY=e2e-routing-key",
		"PAGERDUTY_EVENTS_URL=" + pdSrv.URL + "/v2/enqueue",
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	q := e.NewProc("quality", filepath.Join(harness.RepoRoot, "pipelines", "quality.yaml"))
	q.Start()
	waitCount(t, e, e.Names.Alerts, 2)
	kafkatest.WaitFor(t, time.Minute, "four runs", func() bool {
		m, err := q.Scrape(ctx)
		return err == nil && m["quality_checks_total"] >= 12
	})
	q.Kill()
	q.Start()
	kafkatest.WaitFor(t, time.Minute, "two more runs after a restart", func() bool {
		m, err := q.Scrape(ctx)
		return err == nil && m["quality_checks_total"] >= 6
	})
	if n, _ := e.TopicCount(ctx, e.Names.Alerts); n != 2 {
		t.Fatalf("alerts topic after six runs and a restart: %d alerts, want 2", n)
	}
	var got []string
	for _, r := range e.ConsumeAll(e.Names.Alerts) {
		var a map[string]any
		if err := json.Unmarshal(r.Value, &a); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%v %v %v %v", a["rule"], a["expectation"], a["severity"], a["pagerduty_action"]))
	}
	sort.Strings(got)
	if want := []string{"quality_failed ids_unique critical trigger", "quality_failed status_known warning <nil>"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("alerts:\n got %q\nwant %q", got, want)
	}
	kafkatest.WaitFor(t, 30*time.Second, "Slack and PagerDuty", func() bool {
		return len(slack.accepted()) >= 2 && len(pagerduty.accepted()) >= 1
	})
	time.Sleep(time.Second)
	if n := len(slack.accepted()); n != 2 {
		t.Fatalf("Slack accepted %d messages, want 2", n)
	}
	if pd := pagerduty.accepted(); len(pd) != 1 || pd[0]["dedup_key"] != "itel-quality-ids_unique" || pd[0]["event_action"] != "trigger" {
		t.Fatalf("PagerDuty events %v, want one trigger of itel-quality-ids_unique", pd)
	}
	// A run's results reach the table after its metrics: wait for them (a run
	// evaluated when the process was killed may never be written; the next
	// one is).
	var rows []map[string]any
	runs := map[string]bool{}
	status := map[string]string{}
	kafkatest.WaitFor(t, time.Minute, "six runs in the results table", func() bool {
		rows = readRows(t, results)
		clear(runs)
		for _, r := range rows {
			runs[fmt.Sprint(r["run_id"])] = true
			status[fmt.Sprint(r["expectation"])] = fmt.Sprint(r["status"])
		}
		return len(runs) >= 6
	})
	if len(rows) != 3*len(runs) {
		t.Fatalf("results table: %d rows of %d runs, want 3 per run and at least 6 runs", len(rows), len(runs))
	}
	if fmt.Sprint(status) != "map[assignment_present:pass ids_unique:fail status_known:fail]" {
		t.Fatalf("results: %v", status)
	}
}

type trackingRow struct {
	eventID    string
	assignment int64
	status     string
}

func writeTrackingRows(t *testing.T, dir string, rows []trackingRow) {
	t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile(filepath.Join(harness.RepoRoot, "schemas", "itel_cabinet_task_tracking.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := delta.ParseSchemaFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	st, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Create(ctx, st, delta.CreateOptions{Schema: sc, PartitionColumns: []string{"year", "month", "day"}})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().UTC().Add(-time.Hour)
	var out []delta.Row
	for _, r := range rows {
		row, err := sc.RowFromJSON(map[string]any{
			"event_id": r.eventID, "event_type": "CUSTOM_TASK_" + r.status, "event_timestamp": ts,
			"processed_timestamp": ts, "task_id": 32513, "project_id": "P-1", "assignment_id": r.assignment,
			"task_status": r.status, "task_name": "iTel Cabinet Repair Form", "tracking_version": "1.0",
			"source": "claimx_itel_plugin", "year": ts.Year(), "month": int(ts.Month()), "day": ts.Day(),
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, row)
	}
	if _, err := tbl.Append(ctx, delta.AppendRequest{Rows: out}); err != nil {
		t.Fatal(err)
	}
}

func readRows(t *testing.T, dir string) []map[string]any {
	t.Helper()
	ctx := context.Background()
	st, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Open(ctx, st, delta.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	snap := tbl.Snapshot()
	names := snap.Schema().Names()
	var out []map[string]any
	for _, f := range snap.Files() {
		rows, err := snap.ReadFile(ctx, st, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			m := map[string]any{}
			for i, n := range names {
				m[n] = r[i]
			}
			out = append(out, m)
		}
	}
	return out
}
