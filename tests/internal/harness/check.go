package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/claimxsim"
	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/internal/reasons"
)

// itelTemplate is the task template the trigger is configured for.
const itelTemplate = 32513

// Expectation is what the trigger must make of the generated events.
type Expectation struct {
	Events []claimxsim.Event
	// tracked are the events that must reach the tracking topic (task
	// events of template 32513 for a known assignment, readable), by id.
	Tracked map[string]int
	// triggerErrors are the events that must reach the errors topic with
	// stage "trigger", by event index, with a part of the reason.
	TriggerErrors map[int]string
	// dropped counts readable events passed over without error (not a task
	// event, or another template).
	Dropped int
}

func Expect(t *testing.T, events []claimxsim.Event) Expectation {
	t.Helper()
	x := Expectation{Events: events, Tracked: map[string]int{}, TriggerErrors: map[int]string{}}
	for i, ev := range events {
		switch {
		case ev.Malformed != "":
			x.TriggerErrors[i] = map[string]string{
				"not_json":              "event is not JSON: ",
				"missing_event_id":      "event_id is missing or blank",
				"missing_assignment_id": "task_assignment_id is missing on a CUSTOM_TASK_",
				"bad_timestamp":         "is not an RFC 3339 timestamp",
			}[ev.Malformed]
			if x.TriggerErrors[i] == "" {
				t.Fatalf("event %d: malformed kind %q unknown to this test", i, ev.Malformed)
			}
		case ev.UnknownAssignment:
			x.TriggerErrors[i] = fmt.Sprintf("assignment %d is not known to the ClaimX API (404)", ev.AssignmentID)
		case strings.HasPrefix(ev.EventType, "CUSTOM_TASK_") && ev.TemplateID == itelTemplate:
			if _, dup := x.Tracked[ev.EventID]; dup {
				t.Fatalf("the generator repeated event id %s", ev.EventID)
			}
			x.Tracked[ev.EventID] = i
		default:
			x.Dropped++
		}
	}
	return x
}

// TrackingMsg is the part of a tracking message the checks read.
type TrackingMsg struct {
	EventID      string `json:"event_id"`
	TaskID       int    `json:"task_id"`
	AssignmentID int64  `json:"assignment_id"`
}

type SuccessMsg struct {
	EnrichedData struct {
		EventID string `json:"event_id"`
	} `json:"enriched_data"`
	TableVersion int64  `json:"table_version"`
	WriteStatus  string `json:"write_status"`
	WorkerName   string `json:"worker_name"`
}

type ErrorMsg struct {
	OriginalMessage json.RawMessage `json:"original_message"`
	OriginalText    string          `json:"original_text"`
	Error           string          `json:"error"`
	Stage           string          `json:"stage"`
	WorkerName      string          `json:"worker_name"`
	Source          *struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Offset    int64  `json:"offset"`
	} `json:"source"`
}

// Outcome is what the checks measured, for the test's report.
type Outcome struct {
	TrackingMsgs, TrackingUnique  int
	TriggerErrMsgs, TriggerErrors int
	WorkerErrors                  int
	Rows                          int
	Version                       int64
	SuccessMsgs                   int
	Statuses                      map[string]int
	// firstDuplicate counts rows whose first success message says
	// "duplicate": the worker died after the row's Delta commit and before
	// its success message was published.
	FirstDuplicate int
	// successByLife counts the worker's success messages by status, per
	// life of the worker (by record timestamp).
	SuccessByLife []map[string]int
	DeltaRS       string
	Txn           TxnStats
	// TriggerFailed counts valid events the trigger put on the errors topic
	// (accepted by Env.AllowTriggerError); WorkerErrDups counts worker
	// errors repeated for one event.
	TriggerFailed, WorkerErrDups int
	// TrackedAfterError counts events both on the errors topic (trigger)
	// and on the tracking topic, accepted by AllowTrackedAfterTriggerError.
	TrackedAfterError int
	// Replayed counts events on the errors topic (accepted by the Allow
	// functions) that are in the table too (Env.AllowReplayed);
	// MissingFromTable the events to track not in the table (Strict or
	// AllowReplayed).
	Replayed, MissingFromTable int
	// ErrorsByStage counts error messages by stage; ErrorReasons by stage
	// and reason (ids, values and offsets folded by reasons.Class).
	ErrorsByStage, ErrorReasons map[string]int
}

// verify runs every end-state check against the Expectation.
func (e *Env) Verify(x Expectation, pub *Publisher, workerLives []RunInfo) Outcome {
	e.T.Helper()
	t := e.T
	var o Outcome

	// 1. The errors topic: every unreadable event and unknown assignment,
	// with its reason, from the trigger; nothing from the worker unless
	// e.AllowWorkerError accepts it (by default the simulator is healthy).
	workerFailed := map[string]string{}
	seenTriggerErr := map[int]bool{}
	allowTrigger, allowWorker := e.AllowTriggerError, e.AllowWorkerError
	if e.Opts.Strict {
		// Strict: no valid event on the errors topic, whatever the test allows.
		allowTrigger, allowWorker = nil, nil
	}
	// Replayed events come back at new offsets: find them by their bytes.
	var byBody map[string]int
	if e.AllowReplayed {
		byBody = map[string]int{}
		for i, ev := range x.Events {
			byBody[string(ev.Body)] = i
		}
	}
	// triggerFailed are valid events the trigger gave up on (a lookup
	// failure e.AllowTriggerError accepts), by event id.
	triggerFailed := map[string]string{}
	o.ErrorsByStage = map[string]int{}
	o.ErrorReasons = map[string]int{}
	for _, r := range e.ConsumeAll(e.Names.Errors) {
		var m ErrorMsg
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Errorf("error message at offset %d is not JSON: %v", r.Offset, err)
			continue
		}
		o.ErrorsByStage[m.Stage]++
		o.ErrorReasons[m.Stage+": "+reasons.Class(m.Error)]++
		switch m.Stage {
		case "trigger":
			o.TriggerErrMsgs++
			if m.WorkerName != "itel_cabinet_trigger" || m.Source == nil || m.Source.Topic != e.Names.Events {
				t.Errorf("trigger error without its source: %s", r.Value)
				continue
			}
			pub.mu.Lock()
			i, ok := pub.positions[Position{m.Source.Partition, m.Source.Offset}]
			pub.mu.Unlock()
			if !ok && byBody != nil {
				i, ok = byBody[m.OriginalText]
			}
			if !ok {
				t.Errorf("trigger error names %s/%d/%d, which the test did not publish", m.Source.Topic, m.Source.Partition, m.Source.Offset)
				continue
			}
			want, expected := x.TriggerErrors[i]
			allowed := allowTrigger != nil && allowTrigger(m.Error)
			switch {
			case expected && (strings.Contains(m.Error, want) || allowed):
				seenTriggerErr[i] = true
			case expected:
				t.Errorf("trigger error for event %d (%s): reason %q does not say %q", i, x.Events[i].Malformed, m.Error, want)
				seenTriggerErr[i] = true
			case allowed:
				triggerFailed[x.Events[i].EventID] = m.Error
			default:
				t.Errorf("trigger error for event %d (%s), which is valid: %s", i, x.Events[i].EventID, m.Error)
				// Failed, not lost: report it once, as above.
				triggerFailed[x.Events[i].EventID] = m.Error
			}
		case "validate", "lookup", "delta", "parse":
			var orig TrackingMsg
			_ = json.Unmarshal(m.OriginalMessage, &orig)
			if strings.TrimSpace(m.Error) == "" {
				t.Errorf("worker error for %s (stage %s) without a reason", orig.EventID, m.Stage)
			}
			if prev, dup := workerFailed[orig.EventID]; dup {
				o.WorkerErrDups++
				t.Logf("event %s is on the errors topic more than once (%s; %s: %s)", orig.EventID, prev, m.Stage, m.Error)
			}
			workerFailed[orig.EventID] = m.Stage + ": " + m.Error
			if allowWorker == nil || !allowWorker(m.Stage, m.Error) {
				t.Errorf("worker error for %s: %s: %s", orig.EventID, m.Stage, m.Error)
			}
		default:
			t.Errorf("error message with stage %q: %s", m.Stage, r.Value)
		}
	}
	o.TriggerErrors = len(seenTriggerErr)
	o.TriggerFailed = len(triggerFailed)
	o.WorkerErrors = len(workerFailed)
	if len(seenTriggerErr) != len(x.TriggerErrors) {
		var lost []int
		for i := range x.TriggerErrors {
			if !seenTriggerErr[i] {
				lost = append(lost, i)
			}
		}
		sort.Ints(lost)
		t.Errorf("%d of %d expected trigger errors are not on %s, e.g. events %v", len(lost), len(x.TriggerErrors), e.Names.Errors, Head(lost))
	}

	// 2. The tracking topic holds every expected event the trigger did not
	// give up on, and only those.
	perID := map[string]int{}
	for _, r := range e.ConsumeAll(e.Names.Tracking) {
		var m TrackingMsg
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Errorf("tracking message at %d/%d is not JSON: %v", r.Partition, r.Offset, err)
			continue
		}
		if m.TaskID != itelTemplate || string(r.Key) != strconv.FormatInt(m.AssignmentID, 10) {
			t.Errorf("tracking message %s: task_id %d, key %q, assignment %d", m.EventID, m.TaskID, r.Key, m.AssignmentID)
		}
		perID[m.EventID]++
		o.TrackingMsgs++
	}
	o.TrackingUnique = len(perID)
	missing, unexpected := Diff(Keys(x.Tracked), Keys(perID))
	var lostByTrigger []string
	for _, id := range missing {
		if _, failed := triggerFailed[id]; !failed {
			lostByTrigger = append(lostByTrigger, id)
		}
	}
	if len(lostByTrigger) > 0 {
		t.Errorf("LOST: %d expected events never reached %s nor the errors topic (lost by the trigger), e.g. %v", len(lostByTrigger), e.Names.Tracking, Head(lostByTrigger))
	}
	if len(unexpected) > 0 {
		t.Errorf("%d events on %s should not be tracked, e.g. %v", len(unexpected), e.Names.Tracking, Head(unexpected))
	}
	for _, id := range Keys(triggerFailed) {
		why := triggerFailed[id]
		if perID[id] == 0 {
			continue
		}
		if e.AllowReplayed && allowTrigger != nil && allowTrigger(why) {
			o.Replayed++
			continue
		}
		if e.AllowTrackedAfterTriggerError != nil && e.AllowTrackedAfterTriggerError(why) {
			o.TrackedAfterError++
			t.Logf("event %s is on the tracking topic and also on the errors topic (trigger: %s)", id, why)
			continue
		}
		t.Errorf("event %s is both on the tracking topic and on the errors topic (trigger: %s)", id, why)
	}

	// 3. The table: every tracked event exactly once, nothing else, and
	// contiguous versions.
	store, err := e.TableStore(t.Context())
	if err != nil {
		t.Fatalf("opening the table %s: %v", e.TableURI, err)
	}
	ids, version := ReadTableStore(t, store)
	o.Rows, o.Version = len(ids), version
	inTable := map[string]int{}
	for _, id := range ids {
		inTable[id]++
	}
	var dups []string
	for id, n := range inTable {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", id, n))
		}
	}
	sort.Strings(dups)
	if len(dups) > 0 {
		t.Errorf("DUPLICATE ROWS: %d event_ids are in the table more than once (%d rows for %d ids), e.g. %v", len(dups), len(ids), len(inTable), Head(dups))
	}
	notInTable, notTracked := Diff(Keys(perID), Keys(inTable))
	var lost []string
	for _, id := range notInTable {
		if _, failed := workerFailed[id]; !failed {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		t.Errorf("LOST: %d tracked events are neither in the table nor on the errors topic, e.g. %v", len(lost), Head(lost))
	}
	for id, why := range workerFailed {
		if inTable[id] > 0 {
			if e.AllowReplayed && allowWorker != nil {
				o.Replayed++
				continue
			}
			t.Errorf("event %s is both in the table and on the errors topic (%s)", id, why)
		}
	}
	if e.Opts.Strict || e.AllowReplayed {
		// Every event to track in the table exactly once.
		var absent []string
		for id := range x.Tracked {
			if inTable[id] == 0 {
				absent = append(absent, id)
			}
		}
		sort.Strings(absent)
		o.MissingFromTable = len(absent)
		if len(absent) > 0 {
			t.Errorf("MISSING: %d of %d events to track are not in the table, e.g. %v", len(absent), len(x.Tracked), Head(absent))
		}
	}
	if len(notTracked) > 0 {
		t.Errorf("%d rows are not tracking messages, e.g. %v", len(notTracked), Head(notTracked))
	}
	o.Txn = CheckContiguousLogStore(t, store, version)

	// 4. An independent reader, when available.
	o.DeltaRS = deltaRSCount(t, e.TableURI, e.deltaRSOptions(), version, len(ids))

	// 5. The success topic: at least one message per row, none for anything
	// else; statuses tell whether kills landed mid-stream.
	o.Statuses = map[string]int{}
	firstStatus := map[string]string{}
	successPer := map[string]int{}
	o.SuccessByLife = make([]map[string]int, len(workerLives))
	for i := range o.SuccessByLife {
		o.SuccessByLife[i] = map[string]int{}
	}
	for _, r := range e.ConsumeAll(e.Names.Success) {
		var m SuccessMsg
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Errorf("success message at offset %d is not JSON: %v", r.Offset, err)
			continue
		}
		id := m.EnrichedData.EventID
		o.SuccessMsgs++
		o.Statuses[m.WriteStatus]++
		successPer[id]++
		_, isRow := inTable[id]
		if _, ok := firstStatus[id]; !ok {
			firstStatus[id] = m.WriteStatus
			if isRow && (m.WriteStatus == "duplicate" || m.WriteStatus == "replayed") {
				o.FirstDuplicate++
			}
		}
		if !isRow {
			t.Errorf("success message (%s, version %d) for %s, which is not in the table", m.WriteStatus, m.TableVersion, id)
		}
		if l := LifeAt(workerLives, r.Timestamp); l >= 0 {
			o.SuccessByLife[l][m.WriteStatus]++
		}
	}
	var noSuccess []string
	for id := range inTable {
		if successPer[id] == 0 {
			noSuccess = append(noSuccess, id)
		}
	}
	if len(noSuccess) > 0 {
		t.Errorf("%d rows have no success message, e.g. %v", len(noSuccess), Head(noSuccess))
	}
	return o
}

// lifeAt is the index of the life running at ts (-1: none).
func LifeAt(lives []RunInfo, ts time.Time) int {
	for i := len(lives) - 1; i >= 0; i-- {
		if !ts.Before(lives[i].Began) {
			return i
		}
	}
	return -1
}

// ReadTable returns the event_id of every row of the table's current
// snapshot, read with this project's Delta reader, and the version.
func ReadTable(t *testing.T, dir string) ([]string, int64) {
	t.Helper()
	store, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ReadTableStore(t, store)
}

// ReadTableStore is ReadTable on any store.
func ReadTableStore(t *testing.T, store storage.Store) ([]string, int64) {
	t.Helper()
	ctx := t.Context()
	tbl, err := delta.Open(ctx, store, delta.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("opening the table: %v", err)
	}
	snap := tbl.Snapshot()
	col := snap.Schema().Index("event_id")
	if col < 0 {
		t.Fatalf("the table has no event_id column: %s", snap.Schema())
	}
	var ids []string
	for _, f := range snap.Files() {
		rows, err := snap.ReadFile(ctx, store, f)
		if err != nil {
			t.Fatalf("reading %s: %v", f.Path, err)
		}
		for _, r := range rows {
			id, _ := r[col].(string)
			if id == "" {
				t.Errorf("a row of %s has no event_id: %v", f.Path, r[col])
			}
			ids = append(ids, id)
		}
	}
	return ids, snap.Version()
}

// CheckContiguousLog checks that the log holds commits 0..version, no gap,
// and measures the txn actions.
func CheckContiguousLog(t *testing.T, dir string, version int64) TxnStats {
	t.Helper()
	store, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return CheckContiguousLogStore(t, store, version)
}

// CheckContiguousLogStore is CheckContiguousLog on any store.
func CheckContiguousLogStore(t *testing.T, store storage.Store, version int64) TxnStats {
	t.Helper()
	ctx := t.Context()
	entries, err := store.List(ctx, "_delta_log/")
	if err != nil {
		t.Fatal(err)
	}
	var versions []int64
	for _, en := range entries {
		name := path.Base(en.Path)
		if !strings.HasSuffix(name, ".json") || len(name) != 25 {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSuffix(name, ".json"), 10, 64)
		if err != nil {
			t.Errorf("unexpected log file %s", name)
			continue
		}
		versions = append(versions, v)
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
	for i, v := range versions {
		if v != int64(i) {
			t.Errorf("the Delta log is not contiguous: commit %d follows %d", v, versions[i-1])
			return TxnStats{}
		}
	}
	if int64(len(versions))-1 != version {
		t.Errorf("the Delta log holds commits 0..%d, the snapshot is at version %d", len(versions)-1, version)
	}
	// The txn actions (Kafka offsets per topic-partition), in commit order.
	var st TxnStats
	last := map[string]int64{}
	for _, v := range versions {
		b, err := store.Get(ctx, fmt.Sprintf("_delta_log/%020d.json", v))
		if err != nil {
			t.Fatal(err)
		}
		var adds, txns int
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var a struct {
				Add *struct{} `json:"add"`
				Txn *struct {
					AppID   string `json:"appId"`
					Version int64  `json:"version"`
				} `json:"txn"`
			}
			if err := json.Unmarshal([]byte(line), &a); err != nil {
				t.Errorf("commit %d: %v", v, err)
				continue
			}
			if a.Add != nil {
				adds++
			}
			if a.Txn == nil {
				continue
			}
			txns++
			if prev, ok := last[a.Txn.AppID]; ok && a.Txn.Version < prev {
				t.Errorf("commit %d moves the offset of %s back from %d to %d", v, a.Txn.AppID, prev, a.Txn.Version)
			}
			last[a.Txn.AppID] = a.Txn.Version
		}
		st.Txns += txns
		if adds > 0 && txns == 0 {
			st.BelowOffset++
		}
	}
	if st.Txns == 0 {
		st.BelowOffset = 0 // no offsets recorded at all (idempotency off)
	}
	return st
}

// TxnStats counts the txn actions of the log, and the commits that added
// rows without a txn: the writer leaves the recorded offset where it is when
// a batch's offsets are all below it, so such a commit is a batch of a
// partition written after a later batch of the same partition.
type TxnStats struct{ Txns, BelowOffset int }

const deltaRSScript = `
import json, os, sys, deltalake
opts = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
t = deltalake.DeltaTable(sys.argv[1], storage_options=opts)
ids = t.to_pyarrow_table(columns=["event_id"]).column("event_id").to_pylist()
print(json.dumps({"version": t.version(), "rows": len(ids), "distinct": len(set(ids))}))
sys.stdout.flush()
# Skip interpreter teardown: delta-rs 1.x sometimes aborts there
# ("terminate called without an active exception") after a correct answer.
os._exit(0)
`

// DeltaRSCount counts rows and distinct event_ids with delta-rs, when the
// repository's virtualenv has it, and compares with our reader.
func DeltaRSCount(t *testing.T, dir string, version int64, rows int) string {
	t.Helper()
	return deltaRSCount(t, dir, nil, version, rows)
}

// deltaRSOptions are delta-rs storage options for the Env's table (nil for
// a local one).
func (e *Env) deltaRSOptions() map[string]string {
	if e.Opts.S3 == nil {
		return nil
	}
	ak, sk := e.Opts.S3.keys()
	return map[string]string{
		"AWS_ENDPOINT_URL": e.Opts.S3.Endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": ak, "AWS_SECRET_ACCESS_KEY": sk, "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
	}
}

func deltaRSCount(t *testing.T, dir string, opts map[string]string, version int64, rows int) string {
	t.Helper()
	py := filepath.Join(RepoRoot, ".venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		return "not run (no .venv/bin/python)"
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := exec.CommandContext(ctx, py, "-c", "import deltalake, pyarrow").Run(); err != nil {
		return "not run (no deltalake/pyarrow in .venv)"
	}
	args := []string{"-c", deltaRSScript, dir}
	if opts != nil {
		b, _ := json.Marshal(opts)
		args = append(args, string(b))
	}
	out, err := exec.CommandContext(ctx, py, args...).CombinedOutput()
	if err != nil {
		t.Errorf("delta-rs could not read the table: %v\n%s", err, out)
		return "failed"
	}
	var got struct{ Version, Rows, Distinct int64 }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Errorf("delta-rs output %q: %v", out, err)
		return "failed"
	}
	if got.Version != version || got.Rows != int64(rows) || got.Distinct != got.Rows {
		t.Errorf("delta-rs reads version %d with %d rows (%d distinct event_id); our reader version %d with %d rows", got.Version, got.Rows, got.Distinct, version, rows)
	}
	return fmt.Sprintf("version %d, %d rows, %d distinct event_id", got.Version, got.Rows, got.Distinct)
}

func Keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// diff returns what want has and got lacks, and what got has and want lacks.
func Diff(want, got []string) (missing, extra []string) {
	w, g := map[string]bool{}, map[string]bool{}
	for _, s := range want {
		w[s] = true
	}
	for _, s := range got {
		g[s] = true
		if !w[s] {
			extra = append(extra, s)
		}
	}
	for _, s := range want {
		if !g[s] {
			missing = append(missing, s)
		}
	}
	return missing, extra
}

func Head[T any](s []T) []T {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}
