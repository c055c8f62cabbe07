package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/quality"
)

// checkFixture writes a small events table and an expectations file over
// it (and over a table that does not exist).
func checkFixture(t *testing.T, ids []string, statuses []string) (dir, expectations string) {
	t.Helper()
	ctx := context.Background()
	dir = t.TempDir()
	st, err := storage.Open(ctx, filepath.Join(dir, "events"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sc := delta.MustSchema(
		delta.Field{Name: "event_id", Type: "string"},
		delta.Field{Name: "event_timestamp", Type: "timestamp"},
		delta.Field{Name: "status", Type: "string", Nullable: true},
	)
	tbl, err := delta.Create(ctx, st, delta.CreateOptions{Schema: sc})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().UTC().Add(-time.Hour)
	rows := make([]delta.Row, len(ids))
	for i, id := range ids {
		rows[i] = delta.Row{id, base.Add(time.Duration(i) * time.Minute), statuses[i%len(statuses)]}
	}
	if _, err := tbl.Append(ctx, delta.AppendRequest{Rows: rows}); err != nil {
		t.Fatal(err)
	}
	expectations = filepath.Join(dir, "expectations.yaml")
	doc := fmt.Sprintf(`
tables:
  events: { uri: %q, time_column: event_timestamp }
  missing: %q
expectations:
  - { name: ids_unique, table: events, kind: unique, column: event_id }
  - { name: status_known, table: events, kind: allowed_values, column: status, values: [OK], severity: warning }
  - { name: missing_unique, table: missing, kind: unique, column: event_id }
`, filepath.Join(dir, "events"), filepath.Join(dir, "missing"))
	if err := os.WriteFile(expectations, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, expectations
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return -1
}

func TestDeltaCheckExitCodes(t *testing.T) {
	cases := []struct {
		name     string
		ids      []string
		statuses []string
		args     []string
		code     int
		contains []string
	}{
		{name: "healthy", ids: []string{"a", "b", "c"}, statuses: []string{"OK"}, args: []string{"--only", "ids_unique,status_known"},
			code: 0, contains: []string{"pass    critical  ids_unique", "run ", ": 2 pass, 0 fail (0 critical), 0 skipped, 0 error"}},
		{name: "critical failure", ids: []string{"a", "b", "a"}, statuses: []string{"OK"}, args: []string{"--only", "ids_unique"},
			code: 1, contains: []string{"fail    critical  ids_unique", `1 duplicate row(s) of event_id in the table: 1 value(s) repeated, e.g. "a" ×2`, "1/0/1"}},
		{name: "warning failure", ids: []string{"a", "b"}, statuses: []string{"OK", "BAD"}, args: []string{"--only", "ids_unique", "--only", "status_known"},
			code: 0, contains: []string{"fail    warning   status_known", "1 fail (0 critical)"}},
		{name: "unreadable table", ids: []string{"a"}, statuses: []string{"OK"}, args: []string{"--only", "ids_unique,missing_unique"},
			code: 3, contains: []string{"error   critical  missing_unique", "opening table missing"}},
		{name: "critical failure wins over error", ids: []string{"a", "a"}, statuses: []string{"OK"},
			code: 1, contains: []string{"1 pass, 1 fail (1 critical), 0 skipped, 1 error"}},
		{name: "unknown --only", ids: []string{"a"}, statuses: []string{"OK"}, args: []string{"--only", "nope"},
			code: 2},
		{name: "bad schedule", ids: []string{"a"}, statuses: []string{"OK"}, args: []string{"--schedule", "every now and then"},
			code: 2},
		{name: "run id with schedule", ids: []string{"a"}, statuses: []string{"OK"}, args: []string{"--schedule", "@every 1h", "--run-id", "x"},
			code: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, exp := checkFixture(t, tc.ids, tc.statuses)
			out, err := run(t, append([]string{"delta", "check", "--expectations", exp}, tc.args...)...)
			if got := exitCode(err); got != tc.code {
				t.Fatalf("exit code %d (%v), want %d\n%s", got, err, tc.code, out)
			}
			for _, want := range tc.contains {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}

	t.Run("config errors", func(t *testing.T) {
		dir := t.TempDir()
		bad := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(bad, []byte("tables: { t: { uri: ./t, time_column: ts } }\nexpectations:\n  - { name: a, table: t, kind: freshness }\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"delta", "check"},
			{"delta", "check", "--expectations", filepath.Join(dir, "absent.yaml")},
			{"delta", "check", "--expectations", bad},
		} {
			out, err := run(t, args...)
			if exitCode(err) != 2 {
				t.Errorf("%v: exit %d (%v), want 2\n%s", args, exitCode(err), err, out)
			}
		}
		_, err := run(t, "delta", "check", "--expectations", bad)
		if err == nil || !strings.Contains(err.Error(), `expectation "a" (line 3): max_age is required`) {
			t.Errorf("config error names the expectation and field: %v", err)
		}
	})
}

// The results table: a run's rows are appended once; the same --run-id
// again appends nothing.
func TestDeltaCheckResultsTable(t *testing.T) {
	dir, exp := checkFixture(t, []string{"a", "b", "a"}, []string{"OK"})
	results := filepath.Join(dir, "_quality_results")
	args := []string{"delta", "check", "--expectations", exp, "--only", "ids_unique,status_known", "--results-table", results, "--run-id", "nightly-1", "--json"}
	out, err := run(t, args...)
	if exitCode(err) != 1 {
		t.Fatalf("exit %d (%v)\n%s", exitCode(err), err, out)
	}
	var doc struct {
		RunID   string           `json:"run_id"`
		Results []quality.Result `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if doc.RunID != "nightly-1" || len(doc.Results) != 2 || doc.Results[0].Status != quality.StatusFail {
		t.Fatalf("--json: %+v", doc)
	}

	out, err = run(t, "delta", "check", "--expectations", exp, "--only", "ids_unique,status_known", "--results-table", results, "--run-id", "nightly-1")
	if exitCode(err) != 1 || !strings.Contains(out, "run nightly-1 is already in") {
		t.Fatalf("retry: exit %d\n%s", exitCode(err), out)
	}
	if _, err := run(t, "delta", "check", "--expectations", exp, "--only", "status_known", "--results-table", results, "--run-id", "nightly-2"); err != nil {
		t.Fatal(err)
	}

	st, err := storage.Open(context.Background(), results, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Open(context.Background(), st, delta.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	snap := tbl.Snapshot()
	if !snap.Schema().Equal(quality.ResultsSchema()) {
		t.Fatalf("results schema %s", snap.Schema())
	}
	perRun := map[string][]string{}
	for _, f := range snap.Files() {
		rows, err := snap.ReadColumns(context.Background(), st, f, []string{"run_id", "expectation", "status"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			perRun[r[0].(string)] = append(perRun[r[0].(string)], r[1].(string)+"="+r[2].(string))
		}
	}
	if got := strings.Join(perRun["nightly-1"], ","); got != "ids_unique=fail,status_known=pass" {
		t.Errorf("nightly-1 rows: %s", got)
	}
	if got := strings.Join(perRun["nightly-2"], ","); got != "status_known=pass" {
		t.Errorf("nightly-2 rows: %s", got)
	}
	if _, ok := snap.TxnVersion(quality.ResultsAppIDPrefix + "nightly-1"); !ok {
		t.Error("no txn for run nightly-1")
	}
}

// --schedule runs at start and at every tick and serves the metrics.
func TestDeltaCheckSchedule(t *testing.T) {
	_, exp := checkFixture(t, []string{"a", "b", "a"}, []string{"OK"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	app := &cli.App{Name: "claimx-connect", Commands: []*cli.Command{DeltaCommand()}, Writer: &out, ErrWriter: io.Discard,
		ExitErrHandler: func(*cli.Context, error) {}}
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(ctx, []string{"claimx-connect", "delta", "check", "--expectations", exp, "--only", "ids_unique,status_known",
			"--schedule", "@every 1s", "--metrics-addr", addr})
	}()
	want := []string{
		`quality_expectation_status{expectation="ids_unique",kind="unique",table="events"} 0`,
		`quality_expectation_status{expectation="status_known",kind="allowed_values",table="events"} 1`,
		`quality_expectation_observed{expectation="ids_unique",kind="unique",table="events"} 1`,
		`quality_checks_total{expectation="ids_unique",status="fail"} 2`,
		`quality_files_scanned_total{expectation="ids_unique",table="events"} 2`,
		`quality_last_run_timestamp_seconds `,
	}
	deadline := time.Now().Add(20 * time.Second)
	var body string
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(body, w)
			}
			if ok {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("interrupted schedule must exit 0, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the schedule did not stop")
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("metrics lack %q:\n%s", w, body)
		}
	}
	if n := strings.Count(out.String(), "\nrun "); n < 2 {
		t.Errorf("%d runs printed, want at start and at a tick:\n%s", n, out.String())
	}
}
