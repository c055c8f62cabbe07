package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/claimx/claimx-connect/kafka/kafkatest"
	"github.com/claimx/claimx-connect/tests/internal/harness"
)

// standIn is a local webhook endpoint that counts what it accepts; it
// answers 503 to its first failFirst requests (an endpoint that is down).
type standIn struct {
	mu        sync.Mutex
	failFirst int
	requests  int
	bodies    []map[string]any
}

func (s *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if s.requests <= s.failFirst {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		http.Error(w, "not JSON", http.StatusBadRequest)
		return
	}
	s.bodies = append(s.bodies, v)
	w.WriteHeader(http.StatusAccepted)
}

func (s *standIn) accepted() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.bodies...)
}

// trackingEvent is a message of the tracking topic (DOMAIN.md §4).
func trackingEvent(assignment int, eventID string, at time.Time, status string, assignee int) *kgo.Record {
	v, _ := json.Marshal(map[string]any{
		"event_id":      eventID,
		"event_type":    "CUSTOM_TASK_" + status,
		"timestamp":     at.Format(time.RFC3339Nano),
		"task_id":       32513,
		"assignment_id": assignment,
		"project_id":    "4895140",
		"task_status":   status,
		"task_name":     "iTel Cabinet Repair Form",
		"task":          map[string]any{"assignment_id": assignment, "assignee_id": assignee, "assignor_id": 1, "date_assigned": at.Format(time.RFC3339Nano)},
	})
	return &kgo.Record{Key: []byte(strconv.Itoa(assignment)), Value: v}
}

// TestStatusAlertsOncePerChangeAcrossRestartsReplaysAndOutages runs the
// status and alerts streams (pipelines/status.yaml, alerts.yaml) as
// processes: the status stream is killed between two events of the same
// assignments and later re-reads the whole tracking topic (its group
// deleted), events arrive twice and out of order, and the Slack stand-in is
// down for its first requests. Every configured change alerts exactly once
// on the alerts topic, in Slack and in PagerDuty (with its dedup key).
func TestStatusAlertsOncePerChangeAcrossRestartsReplaysAndOutages(t *testing.T) {
	harness.RequireBinary(t)
	slack := &standIn{failFirst: 3}
	pagerduty := &standIn{}
	slackSrv := httptest.NewServer(slack)
	defer slackSrv.Close()
	pdSrv := httptest.NewServer(pagerduty)
	defer pdSrv.Close()
	e := harness.NewWith(t, harness.Options{ChildEnv: []string{
		"SLACK_WEBHOOK_URL=" + slackSrv.URL + "/hooks/T0/B0/x",
		"PAGERDUTY_ROUTING_KEY=e2e-routing-key",
		"PAGERDUTY_EVENTS_URL=" + pdSrv.URL + "/v2/enqueue",
		"ALERTS_NOTIFY_PER_SECOND=20",
		"STATUS_BATCH_PERIOD=100ms",
		// Its events are days old: no SLA deadline may pass here
		// (TestSLABreachAlertsOnceWithNoEventAfterIt tests them).
		"SLA_TARGET_HOURS_IN_PROGRESS=1000000",
		"SLA_TARGET_HOURS_COMPLETED=1000000",
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	produce := func(recs ...*kgo.Record) {
		t.Helper()
		for _, r := range recs {
			r.Topic = e.Names.Tracking
		}
		if err := e.Cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	statusTopic := e.Names.Status

	// Phase 1: the first events, one of them twice.
	phase1 := []*kgo.Record{
		trackingEvent(101, "a1", at(0), "ASSIGNED", 7),
		trackingEvent(101, "a2", at(1), "IN_PROGRESS", 7),
		trackingEvent(102, "b1", at(0), "ASSIGNED", 7),
		trackingEvent(103, "c1", at(0), "COMPLETED", 7),
		trackingEvent(104, "d1", at(0), "ASSIGNED", 7),
		trackingEvent(105, "f1", at(0), "ASSIGNED", 7),
		trackingEvent(105, "f1", at(0), "ASSIGNED", 7),
	}
	produce(phase1...)
	status := e.NewProc("status", filepath.Join(harness.RepoRoot, "pipelines", "status.yaml"))
	status.Start()
	waitCount(t, e, statusTopic, 6)
	status.Kill()

	// Phase 2, while the status stream is down: the rest, duplicates of
	// phase 1, and a late event older than its assignment's last change.
	produce(
		trackingEvent(101, "a3", at(2), "COMPLETED", 7),
		trackingEvent(101, "a0", at(-1), "ASSIGNED", 7),
		trackingEvent(102, "b2", at(3), "CANCELLED", 7),
		trackingEvent(103, "c2", at(4), "IN_PROGRESS", 7),
		trackingEvent(103, "c3", at(5), "COMPLETED", 7),
		trackingEvent(104, "d2", at(1), "ASSIGNED", 8),
		trackingEvent(105, "f2", at(2), "ASSIGNED", 7),
	)
	produce(phase1...)
	status.Start()
	waitCount(t, e, statusTopic, 11)
	status.Kill()
	// A full replay: the group's offsets gone, the stream reads the tracking
	// topic from its start again.
	// The killed member holds the group until its session times out.
	kafkatest.WaitFor(t, 30*time.Second, "the status group deleted", func() bool {
		r, err := e.Adm.DeleteGroups(ctx, e.Names.StatusGroup)
		return err == nil && r.Error() == nil
	})
	status.Start()
	// The replay judges all 21 tracking records again and changes nothing.
	kafkatest.WaitFor(t, time.Minute, "the replay judged", func() bool {
		m, err := status.Scrape(ctx)
		return err == nil && m["state_changes_total"] >= 21
	})
	if n, _ := e.TopicCount(ctx, statusTopic); n != 11 {
		t.Fatalf("status topic after a full replay: %d records, want 11", n)
	}

	alerts := e.NewProc("alerts", filepath.Join(harness.RepoRoot, "pipelines", "alerts.yaml"))
	alerts.Start()
	waitCount(t, e, e.Names.Alerts, 6)
	kafkatest.WaitFor(t, time.Minute, "Slack and PagerDuty deliveries", func() bool {
		return len(slack.accepted()) >= 6 && len(pagerduty.accepted()) >= 5
	})
	time.Sleep(2 * time.Second) // anything twice would arrive now

	var ids []string
	for _, r := range e.ConsumeAll(e.Names.Alerts) {
		var a map[string]any
		if err := json.Unmarshal(r.Value, &a); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != a["alert_id"] {
			t.Fatalf("alert key %s, alert_id %v", r.Key, a["alert_id"])
		}
		ids = append(ids, fmt.Sprintf("%v %v→%v", a["alert_id"], a["from_status"], a["to_status"]))
	}
	sort.Strings(ids)
	want := []string{
		"101:a3:completed IN_PROGRESS→COMPLETED", // the restart came between a2 and a3
		"102:b2:cancelled ASSIGNED→CANCELLED",
		"103:c1:completed <nil>→COMPLETED",
		"103:c2:reopened COMPLETED→IN_PROGRESS",
		"103:c3:completed IN_PROGRESS→COMPLETED",
		"104:d2:reassigned ASSIGNED→ASSIGNED",
	}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("alerts topic:\n got %q\nwant %q", ids, want)
	}
	if got := slack.accepted(); len(got) != 6 {
		t.Fatalf("Slack accepted %d messages, want 6: %v", len(got), got)
	}
	var pd []string
	for _, b := range pagerduty.accepted() {
		if b["routing_key"] != "e2e-routing-key" {
			t.Fatalf("PagerDuty event without the routing key: %v", b)
		}
		pd = append(pd, fmt.Sprintf("%v %v", b["event_action"], b["dedup_key"]))
	}
	sort.Strings(pd)
	wantPD := []string{
		"resolve itel-cabinet-assignment-101",
		"resolve itel-cabinet-assignment-103",
		"resolve itel-cabinet-assignment-103",
		"trigger itel-cabinet-assignment-102",
		"trigger itel-cabinet-assignment-103",
	}
	if fmt.Sprint(pd) != fmt.Sprint(wantPD) {
		t.Fatalf("PagerDuty events:\n got %q\nwant %q", pd, wantPD)
	}
	if slack.requests < 9 {
		t.Fatalf("Slack saw %d requests: the first 3 (down) were not retried", slack.requests)
	}
	if n, _ := e.TopicCount(ctx, e.Names.AlertsErrors); n != 0 {
		t.Fatalf("%d records on the alerts errors topic", n)
	}
}

// TestSLABreachAlertsOnceWithNoEventAfterIt: an assignment left ASSIGNED past
// its SLA target (22s here) raises one sla_breach with no event after it —
// from a status stream restarted while the deadline passed, and not again on
// later checks or after another restart — and the event that starts it
// resolves the breach's PagerDuty incident. An assignment started in time
// raises nothing.
func TestSLABreachAlertsOnceWithNoEventAfterIt(t *testing.T) {
	harness.RequireBinary(t)
	slack, pagerduty := &standIn{}, &standIn{}
	mail := newSMTPStandIn(t)
	slackSrv := httptest.NewServer(slack)
	defer slackSrv.Close()
	pdSrv := httptest.NewServer(pagerduty)
	defer pdSrv.Close()
	e := harness.NewWith(t, harness.Options{ChildEnv: []string{
		"SLACK_WEBHOOK_URL=" + slackSrv.URL + "/hooks/T0/B0/x",
		"PAGERDUTY_ROUTING_KEY=e2e-routing-key",
		"PAGERDUTY_EVENTS_URL=" + pdSrv.URL + "/v2/enqueue",
		"STATUS_BATCH_PERIOD=100ms",
		// 21.6s, rounded to 22s: long enough that the first life has
		// recorded the three changes before the deadline on a slow machine.
		"SLA_TARGET_HOURS_IN_PROGRESS=0.006",
		"SLA_TARGET_HOURS_COMPLETED=1000",
		"SLA_CHECK_INTERVAL=1s",
		"ALERTS_EMAIL_TO=cabinet-ops@example.com",
		"SMTP_ADDRESS=" + mail.addr(),
		"SMTP_TLS=none",
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	produce := func(recs ...*kgo.Record) {
		t.Helper()
		for _, r := range recs {
			r.Topic = e.Names.Tracking
		}
		if err := e.Cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().UTC().Truncate(time.Second)
	produce(
		trackingEvent(201, "s1", t0, "ASSIGNED", 7),
		trackingEvent(202, "t1", t0, "ASSIGNED", 7),
		trackingEvent(202, "t2", t0.Add(time.Second), "IN_PROGRESS", 7),
	)
	status := e.NewProc("status", filepath.Join(harness.RepoRoot, "pipelines", "status.yaml"))
	status.Start()
	waitCount(t, e, e.Names.Status, 3)
	// Down while the deadline passes: the restarted stream's timer finds it.
	status.Kill()
	time.Sleep(time.Until(t0.Add(23 * time.Second)))
	status.Start()
	waitCount(t, e, e.Names.Status, 4)
	time.Sleep(4 * time.Second) // four more checks
	status.Kill()
	status.Start()
	kafkatest.WaitFor(t, 2*time.Minute, "the restarted status stream checking deadlines", func() bool {
		m, err := status.Scrape(ctx)
		return err == nil && m["state_changelog_keys"] == 2
	})
	time.Sleep(4 * time.Second)
	if n, _ := e.TopicCount(ctx, e.Names.Status); n != 4 {
		t.Fatalf("status topic after more checks and a restart: %d records, want 4 (one overdue change)", n)
	}
	produce(trackingEvent(201, "s2", time.Now().UTC(), "IN_PROGRESS", 7))
	waitCount(t, e, e.Names.Status, 5)

	alerts := e.NewProc("alerts", filepath.Join(harness.RepoRoot, "pipelines", "alerts.yaml"))
	alerts.Start()
	waitCount(t, e, e.Names.Alerts, 2)
	kafkatest.WaitFor(t, time.Minute, "Slack and PagerDuty deliveries", func() bool {
		return len(slack.accepted()) >= 2 && len(pagerduty.accepted()) >= 2
	})
	time.Sleep(2 * time.Second)
	var ids []string
	for _, r := range e.ConsumeAll(e.Names.Alerts) {
		var a map[string]any
		if err := json.Unmarshal(r.Value, &a); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, fmt.Sprintf("%v %v", a["rule"], a["dedup_key"]))
	}
	sort.Strings(ids)
	incident := "itel-cabinet-sla-201:overdue:started:" + t0.Add(22*time.Second).Format(time.RFC3339Nano)
	if want := []string{"sla_breach " + incident, "sla_resolved " + incident}; fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("alerts:\n got %q\nwant %q", ids, want)
	}
	var pd []string
	for _, b := range pagerduty.accepted() {
		pd = append(pd, fmt.Sprintf("%v %v", b["event_action"], b["dedup_key"]))
	}
	sort.Strings(pd)
	if want := []string{"resolve " + incident, "trigger " + incident}; fmt.Sprint(pd) != fmt.Sprint(want) {
		t.Fatalf("PagerDuty events:\n got %q\nwant %q", pd, want)
	}
	if got := slack.accepted(); len(got) != 2 {
		t.Fatalf("Slack accepted %d messages, want 2: %v", len(got), got)
	}
	kafkatest.WaitFor(t, 30*time.Second, "two e-mails", func() bool { return len(mail.messages()) >= 2 })
	var subjects []string
	for _, m := range mail.messages() {
		for _, line := range strings.Split(m, "\n") {
			if s, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "Subject: "); ok {
				subjects = append(subjects, s)
			}
		}
		if !strings.Contains(m, "To: <cabinet-ops@example.com>") || !strings.Contains(m, "Alert:  201:") {
			t.Fatalf("e-mail (%d of %d):\n%q", len(m), len(mail.messages()), m)
		}
	}
	sort.Strings(subjects)
	if want := []string{"[iTel Cabinet sla_breach] assignment 201", "[iTel Cabinet sla_resolved] assignment 201"}; fmt.Sprint(subjects) != fmt.Sprint(want) {
		t.Fatalf("e-mail subjects %q, want %q", subjects, want)
	}
	if m, err := status.Scrape(ctx); err != nil || m["state_deadlines_overdue_total"] != 0 {
		t.Fatalf("the last status process wrote overdue changes (%v, %v): the breach was written twice", m["state_deadlines_overdue_total"], err)
	}
}

func waitCount(t *testing.T, e *harness.Env, topic string, n int64) {
	t.Helper()
	kafkatest.WaitFor(t, 90*time.Second, fmt.Sprintf("%d records on %s", n, topic), func() bool {
		got, err := e.TopicCount(t.Context(), topic)
		if got > n {
			t.Fatalf("%s has %d records, want %d", topic, got, n)
		}
		return err == nil && got == n
	})
}
