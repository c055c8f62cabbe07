//go:build conformance

package conformance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/claimx/claimx-connect/claimxsim"
	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
)

// TestBadInput feeds a corpus of malformed ClaimX events to the trigger and
// malformed tracking messages to the worker, each between two good records of
// the same key (so on the same partition, right before and after it), through
// real Kafka, with both streams running as separate `claimx-connect run`
// processes (issue 6, item 4). Every bad record must be on the errors topic
// once, with a reason naming what is wrong, its stage, the original and its
// source position; every good event must be in the table once, timestamps
// with offsets in their UTC partition and without zone as UTC; unknown event
// types are passed over; both processes must still be up and ready.
func TestBadInput(t *testing.T) {
	addr := kafkaBootstrap(t)
	root := repoRoot(t)
	bin := badInputBinary(t, root)
	dir := t.TempDir()

	// Topics of this test only. The events and tracking topics take 16 MiB
	// records (Kafka's default is 1 MiB) so that 10 MB payloads can be
	// written; the errors and success topics keep the default limit, which
	// the error messages must fit.
	suffix := fmt.Sprintf("%d", time.Now().UnixNano())
	tp := struct{ events, tracking, success, errors string }{
		"conf-bad-events-" + suffix, "conf-bad-tracking-" + suffix, "conf-bad-success-" + suffix, "conf-bad-errors-" + suffix,
	}
	big := "16777216"
	adm := adminClient(t, addr)
	for _, c := range []struct {
		name       string
		partitions int32
		conf       map[string]*string
	}{
		{tp.events, 3, map[string]*string{"max.message.bytes": &big}},
		{tp.tracking, 3, map[string]*string{"max.message.bytes": &big}},
		{tp.success, 1, nil},
		{tp.errors, 1, nil},
	} {
		resp, err := adm.CreateTopic(t.Context(), c.partitions, 1, c.conf, c.name)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Fatalf("creating topic %s: %v", c.name, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _ = adm.DeleteTopics(ctx, c.name)
		})
	}

	const token = "badinput-token-5e1f"
	sim, err := claimxsim.New(claimxsim.Config{Seed: 7, Assignments: 120, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	var itel []claimxsim.Assignment
	for _, a := range sim.Assignments() {
		if a.TaskID == claimxsim.ITelTemplateID {
			itel = append(itel, a)
		}
	}
	if len(itel) < 5 {
		t.Fatalf("the simulator has only %d iTel assignments", len(itel))
	}

	corpus := loadBadCorpus(t, filepath.Join(root, "tests/conformance/testdata/bad_events.jsonl"))
	corpus = append(corpus, generatedBadCorpus()...)
	recs, want := interleave(t, corpus, itel, tp.events, tp.tracking)

	// The streams, as in a deployment: two processes, per-test topics and groups.
	table := filepath.Join(dir, "itel_cabinet_task_tracking")
	env := append(os.Environ(),
		"KAFKA_BOOTSTRAP_SERVERS="+addr,
		"CLAIMX_EVENTS_TOPIC="+tp.events,
		"ITEL_TRACKING_TOPIC="+tp.tracking,
		"ITEL_SUCCESS_TOPIC="+tp.success,
		"ITEL_ERRORS_TOPIC="+tp.errors,
		"TRIGGER_CONSUMER_GROUP=conf-bad-trigger-"+suffix,
		"WORKER_CONSUMER_GROUP=conf-bad-worker-"+suffix,
		"CLAIMX_API_BASE_URL="+sim.URL(),
		"CLAIMX_API_AUTH_TYPE=bearer",
		"CLAIMX_API_TOKEN="+token,
		"CLAIMX_RATE_LIMIT_PER_SECOND=500",
		"DELTA_TABLE_URI="+table,
		"ITEL_SCHEMA_FILE="+filepath.Join(root, "schemas/itel_cabinet_task_tracking.yaml"),
		"WORKER_BATCH_COUNT=20",
		"WORKER_BATCH_PERIOD=100ms",
	)
	trigger := startBadInputProc(t, bin, root, dir, "trigger", env, "pipelines/trigger.yaml")
	worker := startBadInputProc(t, bin, root, dir, "worker", env, "pipelines/worker.yaml")

	// Produce everything, in order (one record at a time: a key's three
	// records stay in that order on their partition).
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerBatchMaxBytes(16<<20),
		kgo.MaxBufferedBytes(64<<20), kgo.ClientID("claimx-conf-badinput"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	for i, r := range recs {
		res := cl.ProduceSync(t.Context(), r.rec)
		if err := res.FirstErr(); err != nil {
			t.Fatalf("producing record %d (%s, %d bytes): %v", i, r.label, len(r.rec.Value), err)
		}
		r.pos = fmt.Sprintf("%s/%d/%d", r.rec.Topic, r.rec.Partition, r.rec.Offset)
	}
	t.Logf("produced %d records: %d bad, %d passed over, %d good events to track", len(recs), want.bad, want.passed, len(want.rows))

	// Wait until both groups committed everything and the errors and the
	// table hold what they should (or stop moving).
	deadline := time.Now().Add(3 * time.Minute)
	var errs []*kgo.Record
	var rows map[string][]badRow
	for {
		for _, p := range []*badInputProc{trigger, worker} {
			if err := p.exited(); err != nil {
				t.Fatalf("%s exited: %v\n%s", p.name, err, tail(readFileString(p.log), 4000))
			}
		}
		tl := groupLagOf(t, adm, "conf-bad-trigger-"+suffix, tp.events)
		wl := groupLagOf(t, adm, "conf-bad-worker-"+suffix, tp.tracking)
		errs = readTopic(t, addr, tp.errors)
		rows = readBadTable(t, table)
		if tl == 0 && wl == 0 && len(errs) >= want.bad && len(rows) >= len(want.rows) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained after 3 min: trigger lag %d, worker lag %d, errors %d of %d, rows %d of %d\ntrigger log:\n%s\nworker log:\n%s",
				tl, wl, len(errs), want.bad, len(rows), len(want.rows), tail(readFileString(trigger.log), 3000), tail(readFileString(worker.log), 3000))
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Anything late (an error for a good record, a second row) would show
	// up now.
	time.Sleep(2 * time.Second)
	errs = readTopic(t, addr, tp.errors)
	rows = readBadTable(t, table)

	// 1. The errors topic: every bad record once, nothing else.
	byPos := map[string]*badRecord{}
	for _, r := range recs {
		byPos[r.pos] = r
	}
	seen := map[string]int{}
	for _, m := range errs {
		var em struct {
			Original     json.RawMessage `json:"original_message"`
			Error        string          `json:"error"`
			Stage        string          `json:"stage"`
			Worker       string          `json:"worker_name"`
			FailedAt     string          `json:"failed_at"`
			Truncated    bool            `json:"original_truncated"`
			OriginalSize int             `json:"original_size_bytes"`
			Source       *struct {
				Topic     string `json:"topic"`
				Partition *int32 `json:"partition"`
				Offset    *int64 `json:"offset"`
			} `json:"source"`
		}
		if err := json.Unmarshal(m.Value, &em); err != nil {
			t.Errorf("an error message is not JSON: %v: %s", err, short(string(m.Value)))
			continue
		}
		if em.Source == nil || em.Source.Partition == nil || em.Source.Offset == nil {
			t.Errorf("error message without a complete source: %s", short(string(m.Value)))
			continue
		}
		pos := fmt.Sprintf("%s/%d/%d", em.Source.Topic, *em.Source.Partition, *em.Source.Offset)
		r := byPos[pos]
		if r == nil {
			t.Errorf("error message for %s, which is no record of this test: %s", pos, short(string(m.Value)))
			continue
		}
		seen[pos]++
		if r.entry == nil || r.entry.Pass {
			t.Errorf("%s (%s): a good or passed-over record is on the errors topic: %s", r.label, pos, short(em.Error))
			continue
		}
		e := r.entry
		for _, s := range e.Reason {
			if !strings.Contains(em.Error, s) {
				t.Errorf("%s: the reason %q does not say %q", e.Name, em.Error, s)
			}
		}
		if em.Stage != e.Stage {
			t.Errorf("%s: stage %q, want %q", e.Name, em.Stage, e.Stage)
		}
		wantWorker := "itel_cabinet_tracking_worker"
		if e.Stream == "trigger" {
			wantWorker = "itel_cabinet_trigger"
		}
		if em.Worker != wantWorker {
			t.Errorf("%s: worker_name %q, want %q", e.Name, em.Worker, wantWorker)
		}
		if _, err := time.Parse(time.RFC3339, em.FailedAt); err != nil {
			t.Errorf("%s: failed_at %q: %v", e.Name, em.FailedAt, err)
		}
		if len(m.Value) > 1<<20 {
			t.Errorf("%s: the error message has %d bytes, more than the errors topic's default limit", e.Name, len(m.Value))
		}
		checkOriginal(t, e, r.rec.Value, em.Original, em.Truncated, em.OriginalSize)
	}
	for _, r := range recs {
		if r.entry != nil && !r.entry.Pass {
			if n := seen[r.pos]; n != 1 {
				t.Errorf("%s (%s): %d error messages, want 1", r.entry.Name, r.pos, n)
			}
		}
	}
	if len(errs) != want.bad {
		t.Errorf("%d error messages, want %d (one per bad record)", len(errs), want.bad)
	}

	// 2. The table: every good event once, at its UTC time and partition;
	// nothing of a bad or passed-over record.
	for id, w := range want.rows {
		got := rows[id]
		if len(got) != 1 {
			t.Errorf("good event %s (%s): %d rows, want 1", id, w.label, len(got))
			continue
		}
		g := got[0]
		if !g.ts.Equal(w.ts) || g.ts.Location() != time.UTC {
			t.Errorf("good event %s (%s): event_timestamp %s, want %s", id, w.label, g.ts, w.ts.UTC())
		}
		if g.year != w.ts.Year() || g.month != int(w.ts.Month()) || g.day != w.ts.Day() {
			t.Errorf("good event %s (%s): partition %d-%d-%d, want the UTC date of %s", id, w.label, g.year, g.month, g.day, w.ts.UTC())
		}
	}
	for id, got := range rows {
		if _, ok := want.rows[id]; !ok {
			t.Errorf("the table has %d rows of %q, which is no good event of this test", len(got), id)
		}
	}
	if succ := readTopic(t, addr, tp.success); len(succ) != len(want.rows) {
		t.Errorf("%d success messages, want %d (one per row)", len(succ), len(want.rows))
	}

	// 3. Both processes are still up and ready.
	for _, p := range []*badInputProc{trigger, worker} {
		if err := p.exited(); err != nil {
			t.Errorf("%s exited: %v", p.name, err)
			continue
		}
		resp, err := http.Get("http://" + p.http + "/ready")
		if err != nil {
			t.Errorf("%s /ready: %v", p.name, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s /ready: %s", p.name, resp.Status)
		}
	}
	if t.Failed() {
		t.Logf("trigger log:\n%s\nworker log:\n%s", tail(readFileString(trigger.log), 3000), tail(readFileString(worker.log), 3000))
	}
}

// badEntry is one corpus entry: a record for the trigger's or the worker's
// input topic, bad unless Pass (passed over: neither an error nor a row).
type badEntry struct {
	Name   string          `json:"name"`
	Stream string          `json:"stream"` // trigger | worker
	Raw    *string         `json:"raw"`    // the value as text
	Value  json.RawMessage `json:"value"`  // or as JSON
	Stage  string          `json:"stage"`  // default "trigger" for the trigger
	Reason []string        `json:"reason"` // what the reason must say
	Pass   bool            `json:"pass"`

	bytes []byte
}

func loadBadCorpus(t *testing.T, path string) []*badEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*badEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		e := &badEntry{}
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(e); err != nil {
			t.Fatalf("%s:%d: %v", path, n, err)
		}
		switch {
		case e.Raw != nil:
			e.bytes = []byte(*e.Raw)
		case e.Value != nil:
			e.bytes = e.Value
		default:
			t.Fatalf("%s:%d: neither raw nor value", path, n)
		}
		out = append(out, e.normalise(t))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *badEntry) normalise(t *testing.T) *badEntry {
	if e.Stream != "trigger" && e.Stream != "worker" {
		t.Fatalf("corpus entry %q: stream %q", e.Name, e.Stream)
	}
	if e.Stage == "" && e.Stream == "trigger" {
		e.Stage = "trigger"
	}
	if !e.Pass && (e.Stage == "" || len(e.Reason) == 0) {
		t.Fatalf("corpus entry %q: a bad entry needs a stage and a reason", e.Name)
	}
	return e
}

// generatedBadCorpus are the entries a text file holds badly: invalid UTF-8
// and 10 MB payloads.
func generatedBadCorpus() []*badEntry {
	pad := strings.Repeat("0123456789abcdef", 10<<20/16) // 10 MiB
	tenMBEvent, _ := json.Marshal(map[string]any{
		"event_type": "CUSTOM_TASK_COMPLETED", "project_id": "4895140", "task_assignment_id": "5423723",
		"ingested_at": "2026-01-10T22:00:00Z", "raw_data": map[string]any{"blob": pad},
	})
	tenMBTracking, _ := json.Marshal(map[string]any{
		"event_id": "bad_w_10mb", "event_type": "CUSTOM_TASK_COMPLETED", "project_id": "4895140", "task_id": "abc",
		"assignment_id": 5423723, "task_status": "COMPLETED", "timestamp": "2026-01-10T22:30:07.120Z",
		"task": map[string]any{"form_blob": pad},
	})
	return []*badEntry{
		{Name: "trigger/invalid UTF-8 bytes", Stream: "trigger", Stage: "trigger",
			bytes:  []byte("\xff\xfe{\x00\"event_id\": \"bad_t_utf16\"\x00}"),
			Reason: []string{"event is not valid UTF-8", "0xFF at offset 0"}},
		{Name: "trigger/Latin-1 text (invalid UTF-8)", Stream: "trigger", Stage: "trigger",
			bytes:  []byte("\xe9v\xe9nement CUSTOM_TASK_ASSIGNED t\xe2che 5423723"),
			Reason: []string{"event is not valid UTF-8", "0xE9 at offset 0"}},
		{Name: "trigger/Latin-1 inside a JSON string", Stream: "trigger", Stage: "trigger",
			bytes: []byte("{\"event_id\":\"bad_t_latin1\",\"event_type\":\"CUSTOM_TASK_ASSIGNED\",\"project_id\":\"4895140\"," +
				"\"task_assignment_id\":\"5423723\",\"ingested_at\":\"2026-01-10T22:00:00Z\",\"raw_data\":{\"note\":\"t\xe2che\"}}"),
			Reason: []string{"event is not valid UTF-8", "0xE2"}},
		{Name: "trigger/10 MB event without event_id", Stream: "trigger", Stage: "trigger", bytes: tenMBEvent,
			Reason: []string{"(no event_id)", "event_id is missing or blank"}},
		{Name: "worker/invalid UTF-8 bytes", Stream: "worker", Stage: "parse",
			bytes:  []byte("\xff\xfe{\x00\"event_id\": \"bad_w_utf16\"\x00}"),
			Reason: []string{"tracking message is not valid UTF-8", "0xFF at offset 0"}},
		{Name: "worker/Latin-1 inside a JSON string", Stream: "worker", Stage: "parse",
			bytes: []byte("{\"event_id\":\"bad_w_latin1\",\"event_type\":\"CUSTOM_TASK_COMPLETED\",\"project_id\":\"4895140\"," +
				"\"task_id\":32513,\"assignment_id\":5423723,\"task_status\":\"COMPLETED\",\"timestamp\":\"2026-01-10T22:30:07.120Z\"," +
				"\"task_name\":\"R\xe9paration\"}"),
			Reason: []string{"not valid UTF-8", "0xE9"}},
		{Name: "worker/10 MB message with task_id \"abc\"", Stream: "worker", Stage: "validate", bytes: tenMBTracking,
			Reason: []string{"task_id", "abc"}},
	}
}

// checkOriginal checks the original_message of an error: the parsed JSON
// when the record is JSON, else its text; above 256 KiB, its first 64 KiB
// as text with a note.
func checkOriginal(t *testing.T, e *badEntry, value []byte, got json.RawMessage, truncated bool, size int) {
	t.Helper()
	if len(value) > 256<<10 {
		var s string
		if err := json.Unmarshal(got, &s); err != nil {
			t.Errorf("%s: a truncated original_message is not a string: %v", e.Name, err)
			return
		}
		if !truncated || size != len(value) {
			t.Errorf("%s: original_truncated %v, original_size_bytes %d; want true, %d", e.Name, truncated, size, len(value))
		}
		if !strings.HasPrefix(s, string(value[:1000])) || !strings.Contains(s, fmt.Sprintf("[truncated: the original has %d bytes", len(value))) {
			t.Errorf("%s: the truncated original_message does not start with the record and end with the note: %s … %s", e.Name, short(s), s[max(0, len(s)-100):])
		}
		return
	}
	if truncated {
		t.Errorf("%s: a %d-byte original is marked truncated", e.Name, len(value))
	}
	var v any
	if json.Unmarshal(value, &v) == nil && (bytes.HasPrefix(bytes.TrimSpace(value), []byte("{")) || bytes.HasPrefix(bytes.TrimSpace(value), []byte("["))) {
		var g any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Errorf("%s: original_message: %v", e.Name, err)
			return
		}
		a, _ := json.Marshal(v)
		b, _ := json.Marshal(g)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: original_message %s, want %s", e.Name, short(string(b)), short(string(a)))
		}
		return
	}
	var s any
	if err := json.Unmarshal(got, &s); err != nil {
		t.Errorf("%s: original_message: %v", e.Name, err)
		return
	}
	// Text (or a JSON scalar, parsed): what it says, with invalid UTF-8
	// shown as U+FFFD.
	want := replaceInvalidUTF8(value)
	switch x := s.(type) {
	case string:
		if x != want && !(string(value) == `"`+x+`"`) {
			t.Errorf("%s: original_message %q, want %q", e.Name, x, want)
		}
	default:
		b, _ := json.Marshal(x)
		if string(b) != strings.TrimSpace(string(value)) {
			t.Errorf("%s: original_message %s, want %q", e.Name, b, value)
		}
	}
}

// replaceInvalidUTF8 is what a JSON encoder makes of bytes as text: each
// byte of an invalid sequence becomes U+FFFD.
func replaceInvalidUTF8(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			sb.WriteRune(utf8.RuneError)
		} else {
			sb.Write(b[:n])
		}
		b = b[n:]
	}
	return sb.String()
}

// badRecord is one produced record and what it is.
type badRecord struct {
	rec   *kgo.Record
	label string
	entry *badEntry // nil for a good record
	pos   string    // topic/partition/offset once produced
}

type wantRow struct {
	label string
	ts    time.Time
}

type badWant struct {
	bad, passed int
	rows        map[string]wantRow
}

// interleave places each corpus entry between two good records of the same
// key: good ClaimX events of iTel assignments around a trigger entry, good
// tracking messages around a worker entry. Their event times cycle through
// UTC, offsets and no zone, near midnight so that the UTC date differs from
// the local one.
func interleave(t *testing.T, corpus []*badEntry, itel []claimxsim.Assignment, eventsTopic, trackingTopic string) ([]*badRecord, badWant) {
	t.Helper()
	want := badWant{rows: map[string]wantRow{}}
	type stamp struct {
		text string
		utc  time.Time
	}
	stamps := []stamp{
		{"2026-01-10T22:30:07.120Z", time.Date(2026, 1, 10, 22, 30, 7, 120e6, time.UTC)},
		{"2026-01-11T00:30:00+05:30", time.Date(2026, 1, 10, 19, 0, 0, 0, time.UTC)},
		{"2026-01-10T20:30:00.250-05:00", time.Date(2026, 1, 11, 1, 30, 0, 250e6, time.UTC)},
		{"2026-02-28T23:00:00", time.Date(2026, 2, 28, 23, 0, 0, 0, time.UTC)},
		{"2025-12-31T23:30:00-01:00", time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC)},
	}
	var out []*badRecord
	n := 0
	good := func(stream, key string, label string) *badRecord {
		n++
		a := itel[n%len(itel)]
		st := stamps[n%len(stamps)]
		id := fmt.Sprintf("good_%s_%03d", stream, n)
		want.rows[id] = wantRow{label: label + " (" + st.text + ")", ts: st.utc}
		if stream == "trigger" {
			m := map[string]any{"event_id": id, "event_type": "CUSTOM_TASK_ASSIGNED", "project_id": fmt.Sprint(a.ProjectID),
				"task_assignment_id": fmt.Sprint(a.AssignmentID), "ingested_at": st.text}
			if n%3 == 0 {
				m = map[string]any{"eventId": id, "eventType": "CUSTOM_TASK_COMPLETED", "projectId": fmt.Sprint(a.ProjectID),
					"taskAssignmentId": a.AssignmentID, "ingestedAt": st.text}
			}
			b, _ := json.Marshal(m)
			return &badRecord{rec: &kgo.Record{Topic: eventsTopic, Key: []byte(key), Value: b}, label: label}
		}
		m := map[string]any{
			"trigger_name": "iTel Cabinet Repair Form Task", "event_id": id, "event_type": "CUSTOM_TASK_ASSIGNED",
			"project_id": fmt.Sprint(a.ProjectID), "task_id": claimxsim.ITelTemplateID, "assignment_id": a.AssignmentID,
			"task_name": a.TaskName, "task_status": a.Status, "timestamp": st.text, "published_at": "2026-01-10T22:30:07.950Z",
			"task": map[string]any{"assignment_id": a.AssignmentID, "task_id": claimxsim.ITelTemplateID, "status": a.Status,
				"date_assigned": a.DateAssigned.UTC().Format("2006-01-02T15:04:05.000Z")},
			"project": nil,
		}
		b, _ := json.Marshal(m)
		return &badRecord{rec: &kgo.Record{Topic: trackingTopic, Key: []byte(key), Value: b}, label: label}
	}
	for i, e := range corpus {
		key := fmt.Sprintf("k%03d", i)
		topic := eventsTopic
		if e.Stream == "worker" {
			topic = trackingTopic
		}
		out = append(out, good(e.Stream, key, "before "+e.Name))
		out = append(out, &badRecord{rec: &kgo.Record{Topic: topic, Key: []byte(key), Value: e.bytes}, label: e.Name, entry: e})
		out = append(out, good(e.Stream, key, "after "+e.Name))
		if e.Pass {
			want.passed++
		} else {
			want.bad++
		}
	}
	// A 10 MB event that is otherwise good is tracked: the tracking message
	// does not carry raw_data.
	n++
	a := itel[0]
	id := "good_trigger_10mb"
	b, _ := json.Marshal(map[string]any{"event_id": id, "event_type": "CUSTOM_TASK_ASSIGNED", "project_id": fmt.Sprint(a.ProjectID),
		"task_assignment_id": fmt.Sprint(a.AssignmentID), "ingested_at": "2026-01-10T23:59:59.999+00:00",
		"raw_data": map[string]any{"blob": strings.Repeat("x", 10<<20)}})
	want.rows[id] = wantRow{label: "10 MB good event", ts: time.Date(2026, 1, 10, 23, 59, 59, 999e6, time.UTC)}
	out = append(out, &badRecord{rec: &kgo.Record{Topic: eventsTopic, Key: []byte("k-10mb"), Value: b}, label: "10 MB good event"})
	return out, want
}

// ---- processes ----

type badInputProc struct {
	name, log, http string
	cmd             *exec.Cmd
	mu              sync.Mutex
	done            bool
	err             error
}

// badInputBinary builds claimx-connect once for this package's tests.
var badInputBin struct {
	once sync.Once
	path string
	err  error
}

func badInputBinary(t *testing.T, root string) string {
	t.Helper()
	badInputBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "claimx-conf-bin-")
		if err != nil {
			badInputBin.err = err
			return
		}
		out := filepath.Join(dir, "claimx-connect")
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			badInputBin.err = fmt.Errorf("go build: %v\n%s", err, b)
			return
		}
		badInputBin.path = out
	})
	if badInputBin.err != nil {
		t.Fatal(badInputBin.err)
	}
	return badInputBin.path
}

func startBadInputProc(t *testing.T, bin, root, dir, name string, env []string, stream string) *badInputProc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &badInputProc{name: name, log: filepath.Join(dir, name+".log"), http: ln.Addr().String()}
	ln.Close()
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, "run",
		"-r", filepath.Join(root, "pipelines/resources/claimx.yaml"),
		"-r", filepath.Join(root, "pipelines/resources/errors.yaml"),
		"-s", "http.address="+p.http,
		filepath.Join(root, stream))
	p.cmd.Dir = root
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		err := p.cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.done, p.err = true, err
		if err == nil {
			p.err = fmt.Errorf("exit status 0")
		}
		p.mu.Unlock()
	}()
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	return p
}

func (p *badInputProc) exited() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return p.err
	}
	return nil
}

func readFileString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// ---- Kafka and table reads ----

func groupLagOf(t *testing.T, adm *kadm.Client, group, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return -1 // the group may not exist yet
	}
	var lag int64
	ends.Each(func(o kadm.ListedOffset) {
		at := int64(0)
		if c, ok := committed.Lookup(topic, o.Partition); ok && c.At > 0 {
			at = c.At
		}
		lag += o.Offset - at
	})
	return lag
}

// readTopic reads every record of topic up to its end offsets of now.
func readTopic(t *testing.T, addr, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	var out []*kgo.Record
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v", topic, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := left[r.Partition]; ok && r.Offset < end {
				out = append(out, r)
				if r.Offset+1 >= end {
					delete(left, r.Partition)
				}
			}
		})
	}
	return out
}

type badRow struct {
	ts               time.Time
	year, month, day int
}

// readBadTable returns the table's rows by event_id (none before it exists).
func readBadTable(t *testing.T, dir string) map[string][]badRow {
	t.Helper()
	out := map[string][]badRow{}
	if _, err := os.Stat(filepath.Join(dir, "_delta_log")); err != nil {
		return out
	}
	ctx := t.Context()
	store, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := delta.Open(ctx, store, delta.OpenOptions{ReadOnly: true})
	if err != nil {
		return out // not created yet
	}
	snap := tbl.Snapshot()
	s := snap.Schema()
	idx := func(name string) int {
		i := s.Index(name)
		if i < 0 {
			t.Fatalf("the table has no %s column", name)
		}
		return i
	}
	cid, cts, cy, cm, cd := idx("event_id"), idx("event_timestamp"), idx("year"), idx("month"), idx("day")
	for _, f := range snap.Files() {
		rows, err := snap.ReadFile(ctx, store, f)
		if err != nil {
			t.Fatalf("reading %s: %v", f.Path, err)
		}
		for _, r := range rows {
			id, _ := r[cid].(string)
			ts, _ := r[cts].(time.Time)
			out[id] = append(out[id], badRow{ts: ts, year: asInt(r[cy]), month: asInt(r[cm]), day: asInt(r[cd])})
		}
	}
	return out
}

func asInt(v any) int {
	switch x := v.(type) {
	case int32:
		return int(x)
	case int64:
		return int(x)
	case int:
		return x
	}
	return -1
}
