//go:build conformance

package conformance

// The tracking table as the worker writes it, read by the independent Delta
// readers: the trigger and worker streams run as claimx-connect child
// processes against real Apache Kafka (tests/internal/harness) with the
// ClaimX simulator, fed ClaimX events spread over several days; then
// delta-rs, DuckDB and Spark (one session) read the table the worker wrote.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/claimxsim"
	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/tests/internal/harness"
)

// The columns the worker fills with JSON text (DOMAIN.md §6).
var jsonColumns = map[string]bool{"claimx_task_full": true, "original_event": true, "project_data": true}

const (
	workerAppID    = "itel_cabinet_tracking_worker"
	itelTemplateID = 32513
)

// workerTableEvents generates ClaimX events in bursts on several days: one
// burst runs across midnight UTC, one starts a new month, so the table gets
// several year/month/day partitions; the last burst is two hours ago, so
// the "recent events" and "last 30 days" queries of docs/queries.sql find
// rows. Body times carry UTC offsets (the generator's mix), the partitions
// are UTC dates.
func workerTableEvents(t *testing.T, sim *claimxsim.Server) []claimxsim.Event {
	t.Helper()
	starts := []time.Time{
		time.Date(2026, 1, 10, 23, 55, 0, 0, time.UTC), // runs past midnight into 01-11
		time.Date(2026, 1, 13, 9, 30, 0, 0, time.UTC),
		time.Date(2026, 1, 31, 23, 58, 0, 0, time.UTC), // into February
		time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Minute),
	}
	var events []claimxsim.Event
	for i, start := range starts {
		o := claimxsim.DefaultEventOptions(int64(20260600+i), 150, sim.Assignments())
		o.Start = start
		events = append(events, claimxsim.GenerateEvents(o)...)
	}
	return events
}

// simAssignment is the simulator's 200 body for an assignment: what the
// worker's lookup stores in claimx_task_full.
func simAssignment(t *testing.T, sim *claimxsim.Server, id int64) map[string]any {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, fmt.Sprintf("%s/customTasks/assignment/%d?full=true", sim.URL(), id), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+harness.SimToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("simulator: assignment %d: %s", id, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("simulator: assignment %d: %v", id, err)
	}
	return body
}

// canonJSON parses JSON text and prints it back with sorted keys, so two
// texts of the same object compare equal.
func canonJSON(s string) (string, error) {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return "", err
	}
	b, err := json.Marshal(v)
	return string(b), err
}

func canonValue(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("!%v", err)
	}
	s, err := canonJSON(string(b))
	if err != nil {
		return fmt.Sprintf("!%v", err)
	}
	return s
}

// stripNulls drops the keys whose value is null (at every depth): a JSON
// object's "null or absent" fields compare equal.
func stripNulls(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if e != nil {
				out[k] = stripNulls(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = stripNulls(e)
		}
		return out
	}
	return v
}

// rowFromEnriched turns a success message's enriched_data into the Go values
// of the table's columns (as trackingRow does): string, int32, int64,
// time.Time, nil; the JSON columns as canonical JSON text.
func rowFromEnriched(sc *delta.Schema, m map[string]any) (map[string]any, error) {
	row := map[string]any{}
	for _, f := range sc.Fields() {
		v := m[f.Name]
		if v == nil {
			row[f.Name] = nil
			continue
		}
		if jsonColumns[f.Name] {
			if s, ok := v.(string); ok {
				c, err := canonJSON(s)
				if err != nil {
					return nil, fmt.Errorf("%s: %q is not JSON: %v", f.Name, short(s), err)
				}
				row[f.Name] = c
			} else {
				row[f.Name] = canonValue(v)
			}
			continue
		}
		switch f.Type {
		case "string":
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("%s: %v (%T) is not a string", f.Name, v, v)
			}
			row[f.Name] = s
		case "timestamp":
			s, _ := v.(string)
			ts, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return nil, fmt.Errorf("%s: %v: %v", f.Name, v, err)
			}
			row[f.Name] = ts.UTC()
		case "integer", "long":
			n, ok := v.(json.Number)
			if !ok {
				return nil, fmt.Errorf("%s: %v (%T) is not a number", f.Name, v, v)
			}
			i, err := strconv.ParseInt(n.String(), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", f.Name, err)
			}
			if f.Type == "integer" {
				row[f.Name] = int32(i)
			} else {
				row[f.Name] = i
			}
		default:
			return nil, fmt.Errorf("%s: type %s not expected in the tracking table", f.Name, f.Type)
		}
	}
	return row, nil
}

func decodeNumbers(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

// checkAgainstEvents checks one row (from the worker's success message)
// against what its ClaimX event and the simulator's assignment imply
// (DOMAIN.md §3, §4, §6).
func checkAgainstEvents(t *testing.T, row map[string]any, ev claimxsim.Event, a claimxsim.Assignment, body map[string]any, began, ended time.Time) int {
	t.Helper()
	ms := func(ts time.Time) any {
		if ts.IsZero() {
			return nil
		}
		return ts.UTC().Truncate(time.Millisecond)
	}
	num := func(k string) any {
		if f, ok := body[k].(float64); ok {
			return int64(f)
		}
		return nil
	}
	ev.IngestedAt = ev.IngestedAt.UTC()
	want := map[string]any{
		"event_id":            ev.EventID,
		"event_type":          ev.EventType,
		"event_timestamp":     ev.IngestedAt,
		"task_id":             int32(itelTemplateID),
		"assignment_id":       ev.AssignmentID,
		"project_id":          ev.Key,
		"task_status":         a.Status,
		"task_name":           a.TaskName,
		"assigned_to_user_id": num("assigneeId"),
		"assigned_by_user_id": num("assignorId"),
		"task_created_at":     ms(a.DateAssigned),
		"task_completed_at":   ms(a.DateCompleted),
		"claimx_task_full":    canonValue(body),
		"project_data":        nil,
		"tracking_version":    "1.0",
		"source":              "claimx_itel_plugin",
		"year":                int32(ev.IngestedAt.Year()),
		"month":               int32(ev.IngestedAt.Month()),
		"day":                 int32(ev.IngestedAt.Day()),
	}
	bad := 0
	for k, wv := range want {
		if g := canon(row[k]); g != canon(wv) {
			bad++
			t.Errorf("event %s column %s: the worker wrote %s, the event and the API imply %s", ev.EventID, k, short(g), short(canon(wv)))
		}
	}
	// original_event is the message's task object (DOMAIN.md §3), built from
	// the assignment; a null field may be absent.
	task := map[string]any{
		"assignment_id": body["assignmentId"], "task_id": body["taskId"], "status": a.Status,
		"assignee_id": body["assigneeId"], "assignor_id": body["assignorId"], "assignor_email": body["assignor"],
		"date_assigned": body["dateAssigned"], "date_completed": body["dateCompleted"], "cancelled_date": body["cancelledDate"],
		"form_id": body["formId"], "form_response_id": body["formResponseId"],
	}
	var got any
	if s, ok := row["original_event"].(string); !ok || json.Unmarshal([]byte(s), &got) != nil {
		bad++
		t.Errorf("event %s: original_event %v is not JSON", ev.EventID, row["original_event"])
	} else if !reflect.DeepEqual(stripNulls(got), stripNulls(task)) {
		bad++
		t.Errorf("event %s: original_event %s, the assignment implies %s", ev.EventID, short(canonValue(got)), short(canonValue(task)))
	}
	if pt, ok := row["processed_timestamp"].(time.Time); !ok || pt.Before(began.Truncate(time.Microsecond)) || pt.After(ended) {
		bad++
		t.Errorf("event %s: processed_timestamp %v is not within the run (%s .. %s)", ev.EventID, row["processed_timestamp"], began.UTC(), ended.UTC())
	}
	return bad
}

type workerHistory struct {
	Version    json.Number    `json:"version"`
	Operation  string         `json:"operation"`
	Parameters map[string]any `json:"parameters"`
	Metrics    map[string]any `json:"metrics"`
}

type workerReaderExtra struct {
	History []workerHistory `json:"history"`
	Txns    map[string]any  `json:"txns"`
}

// TestWorkerTableReaders: the worker writes the tracking table from ClaimX
// events on real Kafka, and delta-rs, DuckDB and Spark read it: schema and
// Delta types (DOMAIN.md §6); row count equal to the tracked events; every
// value of every row equal to what the worker published in its success
// message (JSON columns parsed), itself checked against what the event and
// the ClaimX API imply; partition pruning; COUNT(*)/MIN/MAX from the stats
// equal to a full scan; DESCRIBE HISTORY with the worker's commits (operation,
// app id, rows per commit) and the txn actions (Kafka offsets); and every
// statement of docs/queries.sql in the same Spark session.
func TestWorkerTableReaders(t *testing.T) {
	began := time.Now()
	py := conformancePython(t)
	if out, err := exec.Command(py, "-c", "import deltalake, duckdb, duckdb_extension_delta, pyspark, delta").CombinedOutput(); err != nil {
		requireIntegration(t, "conformance venv incomplete: "+string(out))
	}
	readers := []string{"deltars", "duckdb", "spark"}
	if _, err := exec.LookPath("java"); err != nil {
		requireIntegration(t, "java not found: Spark cannot run")
		readers = readers[:2]
	}
	addr := kafkaBootstrap(t)
	harness.SetBinary(repoRoot(t), claimxBinary(t))
	e := harness.NewWith(t, harness.Options{
		Brokers: []string{addr}, Names: harness.UniqueNames("conformance.table"), DeleteTopics: true,
		// Batches of up to 50 (the harness's 20 make a commit per few
		// rows): a handful of files per partition, a modest Spark run.
		ChildEnv: []string{"WORKER_BATCH_COUNT=50", "WORKER_BATCH_PERIOD=500ms"},
	})
	ctx := t.Context()

	events := workerTableEvents(t, e.Sim)
	x := harness.Expect(t, events)
	assignments := map[int64]claimxsim.Assignment{}
	for _, a := range e.Sim.Assignments() {
		assignments[a.AssignmentID] = a
	}
	// The data must cover what the readers are asked about.
	cover := map[string]int{}
	days := map[string]int{}
	for _, i := range x.Tracked {
		ev := events[i]
		cover[ev.EventType]++
		cover[assignments[ev.AssignmentID].Status]++
		days[ev.IngestedAt.UTC().Format("2006-01-02")]++
	}
	t.Logf("%d events, %d to track: %s; UTC days %s", len(events), len(x.Tracked), harness.FmtCounts(cover), harness.FmtCounts(days))
	for _, k := range []string{"CUSTOM_TASK_ASSIGNED", "CUSTOM_TASK_COMPLETED", "ASSIGNED", "COMPLETED", "CANCELLED"} {
		if cover[k] == 0 {
			t.Fatalf("the generated events track no %s: change the seeds", k)
		}
	}
	if len(days) < 4 {
		t.Fatalf("the tracked events span %d UTC days, want at least 4", len(days))
	}

	trigger := e.TriggerProc()
	trigger.Start()
	worker := e.WorkerProc()
	worker.Start()
	pub := e.Publish(events, 200, 50)
	pub.Wait(t)
	drained := e.WaitDrained(pub, 3*time.Second, 3*time.Minute)
	wm, err := worker.Scrape(ctx)
	if err != nil {
		t.Errorf("scraping the worker: %v", err)
	}
	ended := time.Now()
	o := e.Verify(x, pub, worker.Lives())
	e.Report(x, o)
	trigger.KillQuietly()
	worker.KillQuietly()
	if o.Rows != len(x.Tracked) {
		t.Fatalf("the worker wrote %d rows, %d events were to be tracked", o.Rows, len(x.Tracked))
	}
	if float64(o.Version) != wm["delta_commits_total"] {
		t.Errorf("table version %d, the worker counted %g commits (delta_commits_total)", o.Version, wm["delta_commits_total"])
	}
	t.Logf("pipelines: drained in %s; worker: %s", drained.Round(time.Millisecond), harness.FmtMetrics(wm))

	// What the worker published: one success message per row.
	sc := trackingSchema(t)
	rows := map[string]map[string]any{}
	rowsPerVersion := map[int64]int{}
	for _, r := range e.ConsumeAll(e.Names.Success) {
		var m struct {
			EnrichedData map[string]any `json:"enriched_data"`
			TableVersion int64          `json:"table_version"`
			WriteStatus  string         `json:"write_status"`
			WorkerName   string         `json:"worker_name"`
		}
		if err := decodeNumbers(r.Value, &m); err != nil {
			t.Fatalf("success message at offset %d: %v", r.Offset, err)
		}
		row, err := rowFromEnriched(sc, m.EnrichedData)
		if err != nil {
			t.Errorf("success message at offset %d: enriched_data: %v", r.Offset, err)
			continue
		}
		id, _ := row["event_id"].(string)
		if m.WriteStatus != "written" || m.WorkerName != workerAppID {
			t.Errorf("success message for %s: write_status %q, worker_name %q (one clean run: written by %s)", id, m.WriteStatus, m.WorkerName, workerAppID)
		}
		if _, dup := rows[id]; dup {
			t.Errorf("two success messages for %s", id)
		}
		rows[id] = row
		rowsPerVersion[m.TableVersion]++
	}
	missing, extra := harness.Diff(harness.Keys(x.Tracked), harness.Keys(rows))
	if len(missing)+len(extra) > 0 {
		t.Fatalf("success messages: %d tracked events without one (e.g. %v), %d for events not tracked (e.g. %v)", len(missing), harness.Head(missing), len(extra), harness.Head(extra))
	}
	// The published rows are what the events and the ClaimX API imply.
	bodies := map[int64]map[string]any{}
	bad := 0
	for _, id := range harness.Keys(x.Tracked) {
		ev := events[x.Tracked[id]]
		if bodies[ev.AssignmentID] == nil {
			bodies[ev.AssignmentID] = simAssignment(t, e.Sim, ev.AssignmentID)
		}
		bad += checkAgainstEvents(t, rows[id], ev, assignments[ev.AssignmentID], bodies[ev.AssignmentID], began, ended)
		if bad > 30 {
			t.Errorf("more than 30 differences between the published rows and the events: the rest not checked")
			break
		}
	}

	// What the table must hold, and where the pruning check looks.
	tbl, err := delta.Open(ctx, openLocal(t, e.TableDir), delta.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	w := &wroteTable{name: "worker", dir: e.TableDir}
	for _, id := range harness.Keys(rows) {
		w.rows = append(w.rows, rows[id])
	}
	w.partition = busiestPartition(t, tbl)
	w.lookups = lookupsFor(w.rows)
	for _, c := range []string{"task_status", "event_type"} {
		for _, v := range []string{"ASSIGNED", "IN_PROGRESS", "COMPLETED", "CANCELLED", "CUSTOM_TASK_ASSIGNED", "CUSTOM_TASK_COMPLETED"} {
			w.lookups = append(w.lookups, [2]any{c, v})
		}
	}
	w.finish(t, tbl)
	parts := map[string]int{}
	for _, f := range tbl.Snapshot().Files() {
		parts[fmt.Sprintf("%s-%s-%s", deref2(f.PartitionValues["year"]), deref2(f.PartitionValues["month"]), deref2(f.PartitionValues["day"]))]++
	}
	t.Logf("table: version %d, %d rows, %d files in %d partitions (%s); pruning checks %v (%d files)", tbl.Version(), len(w.rows), w.allFiles, len(parts), harness.FmtCounts(parts), w.partition, w.partFiles)
	if len(parts) < 4 || w.partFiles == 0 || w.partFiles == w.allFiles {
		t.Errorf("the table has %d partitions, the pruned one %d of %d files: the pruning check proves little", len(parts), w.partFiles, w.allFiles)
	}

	// The worker's commits: the txn action of each tracking partition holds
	// its last offset (everything was written).
	ends, err := e.EndOffsets(ctx, e.Names.Tracking)
	if err != nil {
		t.Fatal(err)
	}
	wantTxns := map[string]int64{}
	for p, end := range ends {
		if end > 0 {
			wantTxns[fmt.Sprintf("%s-%s-%d", workerAppID, e.Names.Tracking, p)] = end - 1
		}
	}

	work := t.TempDir()
	spec := w.spec()
	spec["txn_app_ids"] = harness.Keys(wantTxns)
	specFile := writeJSON(t, work, "spec.json", []map[string]any{spec})
	for _, reader := range readers {
		t.Run(reader, func(t *testing.T) {
			args := []string{"--reader", reader, specFile}
			if reader == "spark" {
				args = append(args, "--queries", filepath.Join(repoRoot(t), "docs", "queries.sql"), e.TableDir, filepath.Join(work, "queries"))
			}
			ro, raw, took := runWorkerReader(t, work, args)
			t.Logf("%s %v: started in %.1fs, whole run %s", reader, ro.Versions, ro.Startup, took.Round(time.Second))
			var to tableOut
			if err := decodeNumbers(ro.Tables["worker"], &to); err != nil {
				t.Fatalf("%s: %v", reader, err)
			}
			if to.Error != "" {
				t.Fatalf("%s could not read the table: %s\n%s", reader, to.Error, to.Traceback)
			}
			// JSON text columns: equal when they parse to the same object.
			for _, r := range to.Rows {
				for c := range jsonColumns {
					if s, ok := r[c].(string); ok {
						if cs, err := canonJSON(s); err == nil {
							r[c] = cs
						}
					}
				}
			}
			t.Logf("%s read %s rows (COUNT(*)), %d rows scanned, %d history entries", reader, to.Count, len(to.Rows), len(to.History))
			checkTable(t, reader, w, &to)

			if reader == "duckdb" {
				return // no history, no txn in DuckDB's delta extension
			}
			var ex workerReaderExtra
			if err := decodeNumbers(ro.Tables["worker"], &ex); err != nil {
				t.Fatal(err)
			}
			checkWorkerHistory(t, reader, ex.History, rowsPerVersion, tbl.Version())
			got := map[string]string{}
			for k, v := range ex.Txns {
				got[k] = fmt.Sprint(v)
			}
			want := map[string]string{}
			for k, v := range wantTxns {
				want[k] = fmt.Sprint(v)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("txn actions (app id -> Kafka offset) as %s sees them: %v, want %v", reader, got, want)
			} else {
				t.Logf("txn actions as %s sees them: %v", reader, got)
			}
			if reader == "spark" {
				checkQueries(t, raw)
			}
		})
	}
	t.Logf("timing: total %s", time.Since(began).Round(time.Second))
}

func deref2(p *string) string {
	if p == nil {
		return "null"
	}
	return *p
}

// busiestPartition is the (year, month, day) with the most data files,
// among those that are not the whole table.
func busiestPartition(t *testing.T, tbl *delta.Table) map[string]int32 {
	t.Helper()
	type key struct{ y, m, d string }
	n := map[key]int{}
	for _, f := range tbl.Snapshot().Files() {
		n[key{deref2(f.PartitionValues["year"]), deref2(f.PartitionValues["month"]), deref2(f.PartitionValues["day"])}]++
	}
	var best key
	for k, c := range n {
		if c > n[best] || (c == n[best] && fmt.Sprint(k) < fmt.Sprint(best)) {
			best = k
		}
	}
	out := map[string]int32{}
	for c, s := range map[string]string{"year": best.y, "month": best.m, "day": best.d} {
		v, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			t.Fatalf("partition value %s=%q: %v", c, s, err)
		}
		out[c] = int32(v)
	}
	return out
}

type workerReaderOut struct {
	readerOut
	Queries *struct {
		ExitCode *int    `json:"exit_code"`
		Output   string  `json:"output"`
		Seconds  float64 `json:"seconds"`
	} `json:"queries"`
}

// runWorkerReader runs read_table.py in dir (Spark's warehouse and metastore
// land there, not in the source tree).
func runWorkerReader(t *testing.T, dir string, args []string) (*readerOut, *workerReaderOut, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	script := filepath.Join(repoRoot(t), "tests", "conformance", "read_table.py")
	cmd := exec.CommandContext(ctx, conformancePython(t), append([]string{script}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CLAIMX_SPARK_JARS="+sparkJars(t), "TMPDIR="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("read_table.py %s: %v\nstderr (tail):\n%s", strings.Join(args, " "), err, tail(stderr.String(), 4000))
	}
	// The JVM writes to the process's stdout too (Delta's VACUUM prints
	// "Deleted N files…"): the result is the document from {"reader" on.
	if i := bytes.Index(out, []byte(`{"reader"`)); i > 0 {
		t.Logf("read_table.py: printed before its result: %q", tail(string(out[:i]), 300))
		out = out[i:]
	}
	var ro workerReaderOut
	if err := decodeNumbers(out, &ro); err != nil {
		t.Fatalf("read_table.py output: %v\n%s", err, tail(string(out), 2000))
	}
	return &ro.readerOut, &ro, time.Since(start)
}

// checkWorkerHistory: version 0 creates the table; every later version is a
// commit of the worker (STREAMING UPDATE, its app id), adding as many rows
// as the success messages name that version, or the worker's auto
// compaction (OPTIMIZE, auto).
func checkWorkerHistory(t *testing.T, reader string, h []workerHistory, rowsPerVersion map[int64]int, version int64) {
	t.Helper()
	if int64(len(h)) != version+1 {
		t.Errorf("%s history: %d entries, the table is at version %d", reader, len(h), version)
	}
	ops := map[string]int{}
	badRows := 0
	for _, e := range h {
		v, err := e.Version.Int64()
		if err != nil {
			t.Errorf("%s history version %q", reader, e.Version)
			continue
		}
		ops[e.Operation]++
		if v == 0 {
			if e.Operation != "CREATE TABLE" {
				t.Errorf("%s history: version 0 is %q, want CREATE TABLE", reader, e.Operation)
			}
			continue
		}
		if e.Operation == "OPTIMIZE" && fmt.Sprint(e.Parameters["auto"]) == "true" {
			// The worker's auto compaction (maintenance.auto_compact):
			// rows rearranged, none added.
			if got := fmt.Sprint(e.Metrics["numRemovedFiles"]); got == "0" || got == "<nil>" {
				t.Errorf("%s history version %d: an auto compaction that removed %s files", reader, v, got)
			}
			continue
		}
		if e.Operation != "STREAMING UPDATE" || fmt.Sprint(e.Parameters["appId"]) != workerAppID || fmt.Sprint(e.Parameters["outputMode"]) != "Append" {
			t.Errorf("%s history version %d: %s %v, want a worker commit (STREAMING UPDATE, appId %s, outputMode Append)", reader, v, e.Operation, e.Parameters, workerAppID)
		}
		if got := fmt.Sprint(e.Metrics["numOutputRows"]); got != strconv.Itoa(rowsPerVersion[v]) {
			badRows++
			if badRows <= 5 {
				t.Errorf("%s history version %d: numOutputRows %s, the worker's success messages name %d rows of that version", reader, v, got, rowsPerVersion[v])
			}
		}
	}
	sum := 0
	for _, n := range rowsPerVersion {
		sum += n
	}
	t.Logf("%s history: %d versions, operations %s; %d rows over %d worker commits (app id %s, numOutputRows per version = success messages per table_version: %v)",
		reader, len(h), harness.FmtCounts(ops), sum, len(rowsPerVersion), workerAppID, badRows == 0)
}

// checkQueries: every statement of docs/queries.sql ran in the Spark session
// (tests/docker/run_queries.py, which also asserts the data-quality queries
// find nothing).
func checkQueries(t *testing.T, ro *workerReaderOut) {
	t.Helper()
	q := ro.Queries
	if q == nil {
		t.Errorf("spark: docs/queries.sql was not run")
		return
	}
	lines := strings.Split(strings.TrimSpace(q.Output), "\n")
	var ok, failed []string
	for _, l := range lines {
		switch s := strings.TrimSpace(l); {
		case strings.HasPrefix(s, "ok "):
			ok = append(ok, s)
		case strings.HasPrefix(s, "FAIL "):
			failed = append(failed, s)
		}
	}
	if q.ExitCode == nil || *q.ExitCode != 0 || len(failed) > 0 || len(ok) == 0 {
		t.Errorf("docs/queries.sql on Spark SQL: exit %v, %d ok, %d failed:\n%s", deref(q.ExitCode), len(ok), len(failed), q.Output)
		return
	}
	t.Logf("docs/queries.sql in the same Spark session: %d statements ok in %.1fs (%s)", len(ok), q.Seconds, lines[len(lines)-1])
	for _, l := range ok {
		t.Logf("  %s", l)
	}
}
