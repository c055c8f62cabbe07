//go:build conformance

package conformance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/quality"
)

// TestOpsTablesReaders: the SLA table (as pipelines/sla.yaml writes it, with
// overdue rows) and the _quality_results table (written by the quality
// package's own append, from real runs of expectations over the SLA table)
// read the same in delta-rs, DuckDB and Spark as in the engine, and Spark
// runs their statements of docs/queries.sql.
func TestOpsTablesReaders(t *testing.T) {
	conformancePython(t)
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	var rows []map[string]any
	for a := 0; a < 40; a++ {
		aid := 5423000 + a
		assigned := t0.Add(time.Duration(a*5) * time.Hour)
		ts := func(h float64) string {
			return assigned.Add(time.Duration(h * float64(time.Hour))).Format(time.RFC3339Nano)
		}
		row := func(id, change, from, to string, h float64, target any, within any, breached bool) map[string]any {
			r := map[string]any{
				"change_id": fmt.Sprintf("%d:%s", aid, id), "change": change, "assignment_id": aid, "project_id": "4895140",
				"event_id": id, "to_status": to, "to_assignee_id": 77, "date_assigned": assigned.Format(time.RFC3339Nano),
				"event_time": ts(h), "hours_since_assigned": h, "sla_target_hours": target, "within_sla": within,
				"sla_breached": breached, "detected_at": ts(h + 0.01),
			}
			if from != "" {
				r["from_status"], r["from_assignee_id"] = from, 77
			}
			return r
		}
		rows = append(rows, row(fmt.Sprintf("e%d-1", a), "new", "", "ASSIGNED", 0.5, nil, nil, false))
		switch a % 4 {
		case 0: // started and completed in time
			rows = append(rows, row(fmt.Sprintf("e%d-2", a), "changed", "ASSIGNED", "IN_PROGRESS", 3, 24.0, true, false),
				row(fmt.Sprintf("e%d-3", a), "changed", "IN_PROGRESS", "COMPLETED", 40+float64(a), 72.0, true, false))
		case 1: // never started: overdue
			r := row(fmt.Sprintf("overdue:started:%s", ts(24)), "overdue", "ASSIGNED", "ASSIGNED", 24.2, nil, false, true)
			r["deadline_name"], r["deadline_at"] = "started", ts(24)
			rows = append(rows, r)
		case 2: // completed late
			rows = append(rows, row(fmt.Sprintf("e%d-2", a), "changed", "ASSIGNED", "IN_PROGRESS", 30, 24.0, false, false),
				row(fmt.Sprintf("e%d-3", a), "changed", "IN_PROGRESS", "COMPLETED", 90.25, 72.0, false, false))
		case 3:
			rows = append(rows, row(fmt.Sprintf("e%d-2", a), "changed", "ASSIGNED", "CANCELLED", 12, nil, nil, false))
		}
	}
	writeFormsTable(t, dir, "itel_cabinet_task_sla", rows, 17)

	// Three runs of expectations over the SLA table, appended as the CLI does.
	exp := filepath.Join(dir, "expectations.yaml")
	if err := os.WriteFile(exp, []byte(`
tables:
  itel_cabinet_task_sla: { uri: "`+filepath.Join(dir, "itel_cabinet_task_sla")+`", time_column: event_time }
expectations:
  - { name: sla_change_unique, table: itel_cabinet_task_sla, kind: unique, column: change_id, severity: critical }
  - { name: sla_status_known, table: itel_cabinet_task_sla, kind: allowed_values, column: to_status, values: [ASSIGNED, IN_PROGRESS, COMPLETED, CANCELLED] }
  - { name: sla_hours_present, table: itel_cabinet_task_sla, kind: null_rate, columns: [hours_since_assigned], max_null_fraction: 0 }
  - { name: sla_hours_range, table: itel_cabinet_task_sla, kind: range, column: hours_since_assigned, min: 0, max: 72 }
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := quality.LoadConfig(exp)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	results, err := quality.OpenResultsTable(ctx, openLocal(t, filepath.Join(dir, "_quality_results")))
	if err != nil {
		t.Fatal(err)
	}
	ev := quality.NewEvaluator(cfg, quality.Options{})
	statuses := map[string]string{}
	for i := 0; i < 3; i++ {
		run := ev.Run(ctx, fmt.Sprintf("conformance-%d", i), cfg.Expectations)
		if _, err := quality.AppendResults(ctx, results, run); err != nil {
			t.Fatal(err)
		}
		for _, r := range run.Results {
			statuses[r.Expectation] = string(r.Status)
		}
	}
	// The late completions (90.25 h) are out of the 0–72 range; the rest holds.
	if fmt.Sprint(statuses) != "map[sla_change_unique:pass sla_hours_present:pass sla_hours_range:fail sla_status_known:pass]" {
		t.Fatalf("quality results: %v", statuses)
	}
	checkTablesReaders(t, dir, []string{"itel_cabinet_task_sla", "_quality_results"})
}
