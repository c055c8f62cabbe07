package quality

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/kafka/broker"
)

// testNow is Wednesday 2026-01-14 15:00 in Chicago (21:00 UTC): inside the
// example file's working hours.
var testNow = time.Date(2026, 1, 14, 21, 0, 0, 0, time.UTC)

// event is one row of the tracking table (and one record of its topic).
type event struct {
	id         string
	eventType  string
	ts         time.Time
	assignment int64
	nullAssign bool
	status     string
}

// dataset is a week of tracking events, three per assignment (assigned,
// in progress, completed), and the forms of the completed assignments.
type dataset struct {
	events []event
	forms  map[int64]time.Time // assignment → processed_timestamp
	// kafka are the records of the tracking topic (the events before any
	// fault that removes rows from the table only).
	kafka []event
}

// faults seed problems into a healthy dataset.
type faults struct {
	dropDay         string // no table rows on this UTC day (the topic keeps them)
	dropSomeDay     string // the first dropSome events of this day are not in the table
	dropSome        int
	nullAssignDay   string  // a burst of null assignment_id on this day
	nullAssignShare float64 // … in this share of its rows
	duplicates      int     // events written twice
	badStatus       string  // one event with this task_status
	dropForm        int64   // this completed assignment has no forms row
	staleFor        time.Duration
}

const perDay = 42 // events a day: 14 assignments

func genDataset(now time.Time, f faults) dataset {
	ds := dataset{forms: map[int64]time.Time{}}
	first := time.Date(now.Year(), now.Month(), now.Day()-7, 0, 0, 0, 0, time.UTC)
	statuses := []string{"ASSIGNED", "IN_PROGRESS", "COMPLETED"}
	latest := now.Add(-10 * time.Minute)
	if f.staleFor > 0 {
		latest = now.Add(-f.staleFor)
	}
	for d := 0; d <= 7; d++ {
		day := first.AddDate(0, 0, d)
		for i := 0; i < perDay; i++ {
			ts := day.Add(time.Duration(i)*(24*time.Hour/perDay) + 5*time.Minute)
			if ts.After(latest) {
				break
			}
			a := int64(100000 + d*100 + i/3)
			ev := event{
				id:         fmt.Sprintf("evt-%s-%02d", day.Format("0102"), i),
				ts:         ts,
				assignment: a,
				status:     statuses[i%3],
			}
			ev.eventType = "CUSTOM_TASK_" + ev.status
			ds.kafka = append(ds.kafka, ev)
			if day.Format("2006-01-02") == f.dropDay || (day.Format("2006-01-02") == f.dropSomeDay && i < f.dropSome) {
				continue
			}
			if day.Format("2006-01-02") == f.nullAssignDay && float64(i) < f.nullAssignShare*perDay {
				ev.nullAssign = true
			}
			if ev.status == "COMPLETED" && a != f.dropForm {
				ds.forms[a] = ts.Add(time.Minute)
			}
			ds.events = append(ds.events, ev)
		}
	}
	for i := 0; i < f.duplicates; i++ {
		ds.events = append(ds.events, ds.events[len(ds.events)/2+i])
	}
	if f.badStatus != "" {
		ds.events[len(ds.events)/3].status = f.badStatus
	}
	return ds
}

func readSchema(t testing.TB, name string) *delta.Schema {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "schemas", name))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := delta.ParseSchemaFile(raw)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return sc
}

func localStore(t testing.TB, dir string) storage.Store {
	t.Helper()
	st, err := storage.Open(context.Background(), dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// writeTracking writes the events as the worker would, a commit per UTC day
// split in two (two files a day), partitioned by year, month, day.
func writeTracking(t testing.TB, dir string, events []event, props map[string]string) {
	t.Helper()
	ctx := context.Background()
	sc := readSchema(t, "itel_cabinet_task_tracking.yaml")
	tbl, err := delta.Create(ctx, localStore(t, dir), delta.CreateOptions{Schema: sc, PartitionColumns: []string{"year", "month", "day"}, Properties: props})
	if err != nil {
		t.Fatal(err)
	}
	byDay := map[string][]event{}
	var days []string
	for _, ev := range events {
		d := ev.ts.Format("2006-01-02")
		if _, ok := byDay[d]; !ok {
			days = append(days, d)
		}
		byDay[d] = append(byDay[d], ev)
	}
	sort.Strings(days)
	for _, d := range days {
		evs := byDay[d]
		for _, part := range [][]event{evs[:len(evs)/2], evs[len(evs)/2:]} {
			if len(part) > 0 {
				appendEvents(t, tbl, part)
			}
		}
	}
}

// appendTracking appends events to the tracking table in one commit.
func appendTracking(t testing.TB, dir string, events []event) {
	t.Helper()
	tbl, err := delta.Open(context.Background(), localStore(t, dir), delta.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	appendEvents(t, tbl, events)
}

func appendEvents(t testing.TB, tbl *delta.Table, events []event) {
	t.Helper()
	sc := tbl.Schema()
	rows := make([]delta.Row, len(events))
	for i, ev := range events {
		m := map[string]any{
			"event_id": ev.id, "event_type": ev.eventType, "event_timestamp": ev.ts,
			"processed_timestamp": ev.ts.Add(2 * time.Second), "task_id": 32513, "project_id": "P-1",
			"task_status": ev.status, "task_name": "iTel Cabinet Repair Form", "tracking_version": "1.0",
			"source": "claimx_itel_plugin", "year": ev.ts.Year(), "month": int(ev.ts.Month()), "day": ev.ts.Day(),
		}
		if !ev.nullAssign {
			m["assignment_id"] = ev.assignment
		}
		row, err := sc.RowFromJSON(m)
		if err != nil {
			t.Fatal(err)
		}
		rows[i] = row
	}
	if _, err := tbl.Append(context.Background(), delta.AppendRequest{Rows: rows}); err != nil {
		t.Fatal(err)
	}
}

// writeForms writes one forms row per completed assignment, in one commit.
func writeForms(t testing.TB, dir string, forms map[int64]time.Time) {
	t.Helper()
	ctx := context.Background()
	sc := readSchema(t, "itel_cabinet_forms.yaml")
	tbl, err := delta.Create(ctx, localStore(t, dir), delta.CreateOptions{Schema: sc})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for a := range forms {
		ids = append(ids, a)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var rows []delta.Row
	for _, a := range ids {
		row, err := sc.RowFromJSON(map[string]any{
			"form_key": fmt.Sprintf("%d:FR-%d", a, a), "event_id": fmt.Sprintf("evt-form-%d", a), "assignment_id": a,
			"project_id": "P-1", "form_response_id": fmt.Sprintf("FR-%d", a), "other_answers": map[string]any{},
			"photo_count": 0, "processed_timestamp": forms[a],
		})
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
	if len(rows) > 0 {
		if _, err := tbl.Append(ctx, delta.AppendRequest{Rows: rows}); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	brokerOnce sync.Once
	testBroker *broker.Broker
	brokerErr  error
)

// sharedBroker is one embedded broker for the package's tests; each test
// uses topics of its own.
func sharedBroker(t testing.TB) string {
	t.Helper()
	brokerOnce.Do(func() {
		testBroker, brokerErr = broker.Start(broker.Config{Addr: "127.0.0.1:0", DefaultPartitions: 3, AutoCreateTopics: true})
	})
	if brokerErr != nil {
		t.Fatal(brokerErr)
	}
	return testBroker.Addrs()[0]
}

// produceEvents writes one record per event to topic, timestamped with the
// event time, keyed by assignment as the trigger does.
func produceEvents(t testing.TB, addr, topic string, events []event) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(events))
	for i, ev := range events {
		recs[i] = &kgo.Record{Key: []byte(fmt.Sprint(ev.assignment)), Value: []byte(ev.id), Timestamp: ev.ts}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// env is a fixture on disk: the tables and the topic of a dataset, and the
// environment the example expectations file reads them from.
type env struct {
	trackingURI, formsURI, topic, brokers string
}

var topicSeq int

func newEnv(t *testing.T, ds dataset, trackingProps map[string]string) env {
	t.Helper()
	dir := t.TempDir()
	topicSeq++
	e := env{
		trackingURI: filepath.Join(dir, "itel_cabinet_task_tracking"),
		formsURI:    filepath.Join(dir, "itel_cabinet_forms"),
		topic:       fmt.Sprintf("itel.cabinet.task.tracking.test%d", topicSeq),
		brokers:     sharedBroker(t),
	}
	writeTracking(t, e.trackingURI, ds.events, trackingProps)
	writeForms(t, e.formsURI, ds.forms)
	produceEvents(t, e.brokers, e.topic, ds.kafka)
	t.Setenv("DELTA_TABLE_URI", e.trackingURI)
	t.Setenv("ITEL_FORMS_TABLE_URI", e.formsURI)
	t.Setenv("ITEL_TRACKING_TOPIC", e.topic)
	t.Setenv("KAFKA_BOOTSTRAP_SERVERS", e.brokers)
	return e
}

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func byName(run Run) map[string]Result {
	out := map[string]Result{}
	for _, r := range run.Results {
		out[r.Expectation] = r
	}
	return out
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

func has(t testing.TB, what, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("%s: %q does not contain %q", what, s, sub)
	}
}

func val[T any](t testing.TB, what string, p *T) T {
	t.Helper()
	if p == nil {
		t.Fatalf("%s: nil", what)
	}
	return *p
}
