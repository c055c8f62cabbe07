package delta

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

// trackingSchema is the itel_cabinet_task_tracking table of DOMAIN.md §6.
func trackingSchema(t testing.TB) *Schema {
	t.Helper()
	sc, err := ParseSchemaFile([]byte(`
- {name: event_id, type: string, nullable: false}
- {name: event_type, type: string, nullable: false}
- {name: event_timestamp, type: timestamp, nullable: false}
- {name: processed_timestamp, type: timestamp, nullable: false}
- {name: task_id, type: integer, nullable: false}
- {name: assignment_id, type: long}
- {name: project_id, type: string, nullable: false}
- {name: task_status, type: string, nullable: false}
- {name: task_name, type: string}
- {name: assigned_to_user_id, type: long}
- {name: assigned_by_user_id, type: long}
- {name: task_created_at, type: timestamp}
- {name: task_completed_at, type: timestamp}
- {name: claimx_task_full, type: string}
- {name: original_event, type: string}
- {name: project_data, type: string}
- {name: tracking_version, type: string}
- {name: source, type: string}
- {name: year, type: integer}
- {name: month, type: integer}
- {name: day, type: integer}
`))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

var trackingPartitions = []string{"year", "month", "day"}

// trackingRow builds row i of a deterministic tracking data set (~1 KB).
func trackingRow(i int) Row {
	base := time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)
	ev := base.Add(time.Duration(i) * 37 * time.Second).Add(time.Duration(i%1000) * time.Microsecond)
	status := []string{"ASSIGNED", "IN_PROGRESS", "COMPLETED", "CANCELLED"}[i%4]
	var completed any
	if status == "COMPLETED" {
		completed = ev.Add(time.Hour)
	}
	var assignment any = int64(900000 + i)
	if i%7 == 0 {
		assignment = nil
	}
	full := fmt.Sprintf(`{"assignmentId":%d,"taskId":32513,"status":%q,"assignee":{"id":%d,"name":"User %d","email":"user%d@example.com"},"form":{"groups":[{"name":"Lower cabinets","questions":[{"q":"Damaged?","a":"yes"},{"q":"Linear feet","a":"%d"}]}]},"notes":"%s"}`,
		900000+i, status, 1000+i%50, i%50, i%50, i%30, strings.Repeat("n", 200+i%100))
	orig := fmt.Sprintf(`{"taskId":32513,"assignmentId":%d,"eventType":"CUSTOM_TASK_%s","projectId":"P-%d","createdAt":"%s","payload":"%s"}`,
		900000+i, status, 5000+i%200, ev.Format(time.RFC3339Nano), strings.Repeat("p", 150+i%80))
	proj := fmt.Sprintf(`{"projectId":"P-%d","customer":"Customer %d","address":{"city":"Springfield","zip":"%05d"}}`, 5000+i%200, i%200, i%99999)
	return Row{
		fmt.Sprintf("evt-%08d", i),
		"CUSTOM_TASK_" + status,
		ev,
		ev.Add(2 * time.Second),
		int32(32513),
		assignment,
		fmt.Sprintf("P-%d", 5000+i%200),
		status,
		"iTel Cabinet Repair Form",
		int64(1000 + i%50),
		int64(2000 + i%10),
		ev.Add(-time.Hour),
		completed,
		full,
		orig,
		proj,
		"1.0",
		"claimx_itel_plugin",
		int32(ev.Year()),
		int32(ev.Month()),
		int32(ev.Day()),
	}
}

func newLocal(t testing.TB) *storage.Local {
	t.Helper()
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func mustCreate(t testing.TB, st storage.Store, sc *Schema, parts []string, props map[string]string, oo OpenOptions) *Table {
	t.Helper()
	tbl, err := Create(context.Background(), st, CreateOptions{Schema: sc, PartitionColumns: parts, Properties: props, Open: oo})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func parseStats(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("stats %q: %v", s, err)
	}
	return m
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func eq[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}
