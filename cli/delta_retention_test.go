package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
)

// TestDeltaExpireAndDescribe: describe lists partitions (50 in text, all in
// JSON); expire removes the partitions older than the retention.
func TestDeltaExpireAndDescribe(t *testing.T) {
	ctx := context.Background()
	table := filepath.Join(t.TempDir(), "t")
	st, err := storage.NewLocal(table)
	if err != nil {
		t.Fatal(err)
	}
	sc := delta.MustSchema(
		delta.Field{Name: "event_id", Type: "string"},
		delta.Field{Name: "event_timestamp", Type: "timestamp"},
		delta.Field{Name: "event_date", Type: "string", Nullable: true},
	)
	tbl, err := delta.Create(ctx, st, delta.CreateOptions{Schema: sc, PartitionColumns: []string{"event_date"}})
	if err != nil {
		t.Fatal(err)
	}
	// 60 daily partitions up to today (the CLI's clock is the real one).
	const days = 60
	today := time.Now().UTC().Truncate(24 * time.Hour)
	var rows []delta.Row
	for i := 0; i < days; i++ {
		d := today.AddDate(0, 0, -i)
		for j := 0; j <= i%2; j++ {
			rows = append(rows, delta.Row{fmt.Sprintf("e%d-%d", i, j), d.Add(time.Hour), d.Format("2006-01-02")})
		}
	}
	if _, err := tbl.Append(ctx, delta.AppendRequest{Rows: rows}); err != nil {
		t.Fatal(err)
	}

	out, err := run(t, "delta", "describe", table)
	if err != nil {
		t.Fatalf("describe: %v\n%s", err, out)
	}
	listed := strings.Count(out, "\n  event_date=")
	if listed != 50 || !strings.Contains(out, fmt.Sprintf("… %d more partitions", days-50)) || !strings.Contains(out, "SMALL") {
		t.Fatalf("describe lists %d partitions, want 50 and a '… %d more' line:\n%s", listed, days-50, out)
	}
	oldest := "event_date=" + today.AddDate(0, 0, -(days-1)).Format("2006-01-02")
	if !strings.Contains(out, "  "+oldest+" ") {
		t.Fatalf("describe does not list the oldest partition first (%s):\n%s", oldest, out)
	}
	describeParts := func() []map[string]any {
		t.Helper()
		out, err := run(t, "delta", "describe", table, "--json")
		if err != nil {
			t.Fatalf("describe --json: %v\n%s", err, out)
		}
		var d struct {
			Partitions []map[string]any `json:"partitions"`
			SmallFiles int              `json:"small_files"`
		}
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("describe --json: %v\n%s", err, out)
		}
		if d.SmallFiles != len(d.Partitions) {
			t.Fatalf("small files %d, want one per partition (%d)", d.SmallFiles, len(d.Partitions))
		}
		return d.Partitions
	}
	parts := describeParts()
	if len(parts) != days {
		t.Fatalf("describe --json lists %d partitions, want %d", len(parts), days)
	}
	for i, p := range parts {
		// Oldest first; day -k holds 1 + k%2 rows.
		k := days - 1 - i
		want := today.AddDate(0, 0, -k).Format("2006-01-02")
		vals := p["values"].(map[string]any)
		if vals["event_date"] != want || p["num_rows"] != float64(1+k%2) || p["num_files"] != float64(1) || p["small_files"] != float64(1) {
			t.Fatalf("partition %d: %v, want event_date %s with %d rows in one small file", i, p, want, 1+k%2)
		}
	}

	out, err = run(t, "delta", "describe", table, "--json", "--target-size", "1B")
	if err != nil || !strings.Contains(out, `"small_files": 0,`) || !strings.Contains(out, `"target_file_size": 1,`) {
		t.Fatalf("describe --target-size 1B: %v\n%s", err, out)
	}

	// keep 30d: the cutoff falls inside day -30, kept; days -31.. go.
	expired := days - 31
	out, err = run(t, "delta", "expire", table, "--column", "event_date", "--keep", "30d", "--dry-run")
	if err != nil || !strings.Contains(out, fmt.Sprintf("(dry run) would expire %d partitions", expired)) {
		t.Fatalf("expire --dry-run: %v\n%s", err, out)
	}
	if v := mustVersion(t, st); v != 1 {
		t.Fatalf("dry run committed: version %d", v)
	}
	out, err = run(t, "delta", "expire", table, "--column", "event_date", "--keep", "30d")
	if err != nil || !strings.Contains(out, fmt.Sprintf("expired %d partitions, %d files", expired, expired)) ||
		!strings.Contains(out, "DELETE committed as version 2") || !strings.Contains(out, "delta vacuum") ||
		!strings.Contains(out, oldest+" ") {
		t.Fatalf("expire: %v\n%s", err, out)
	}
	if n := len(describeParts()); n != days-expired {
		t.Fatalf("after expiry describe lists %d partitions, want %d", n, days-expired)
	}
	out, err = run(t, "delta", "expire", table, "--column", "event_date", "--keep", "30d", "--json")
	if err != nil {
		t.Fatalf("expire --json: %v\n%s", err, out)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("expire --json: %v\n%s", err, out)
	}
	if res["committed"] != false || res["files"] != float64(0) || res["version"] != float64(2) {
		t.Fatalf("second expire: %v", res)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--column", "event_date"}, "--keep is required"},
		{[]string{"--keep", "7y"}, "--column is required"},
		{[]string{"--column", "event_date", "--keep", "7q"}, "--keep"},
		{[]string{"--column", "event_id", "--keep", "7y"}, "must be a date or timestamp"},
	} {
		_, err := run(t, append([]string{"delta", "expire", table}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%v: want an error with %q, got %v", tc.args, tc.want, err)
		}
	}
}

func mustVersion(t *testing.T, st storage.Store) int64 {
	t.Helper()
	tbl, err := delta.Open(context.Background(), st, delta.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return tbl.Version()
}
