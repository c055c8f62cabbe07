//go:build conformance

package conformance

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

// pagerDutyStandIn counts the events it accepts.
type pagerDutyStandIn struct {
	mu     sync.Mutex
	events []map[string]any
}

func (s *pagerDutyStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		http.Error(w, "not JSON", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.events = append(s.events, v)
	s.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (s *pagerDutyStandIn) accepted() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.events...)
}

func statusEvent(topic string, assignment int, eventID string, at time.Time, status string) *kgo.Record {
	v, _ := json.Marshal(map[string]any{
		"event_id": eventID, "event_type": "CUSTOM_TASK_" + status, "timestamp": at.Format(time.RFC3339Nano),
		"task_id": 32513, "assignment_id": assignment, "project_id": "4895140", "task_status": status,
		"task_name": "iTel Cabinet Repair Form",
		"task":      map[string]any{"assignment_id": assignment, "assignee_id": 7, "assignor_id": 1, "date_assigned": at.Format(time.RFC3339Nano)},
	})
	return &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(assignment)), Value: v}
}

// TestStatusReplicasSLAOnce runs two replicas of the status stream in one
// group on Apache Kafka (six tracking partitions), kills one and restarts
// it around the SLA deadline of the assignments left ASSIGNED, and checks
// that every change is recorded once and every open assignment gets exactly
// one overdue change (the replica owning its partition writes it); then the
// alerts stream pages each breach once and resolves it with its dedup key.
func TestStatusReplicasSLAOnce(t *testing.T) {
	pd := &pagerDutyStandIn{}
	pdSrv := httptest.NewServer(pd)
	defer pdSrv.Close()
	e := faultEnv(t, "status", harness.Options{TrackingPartitions: 6, ChildEnv: []string{
		"STATUS_BATCH_PERIOD=100ms",
		"SLA_TARGET_HOURS_IN_PROGRESS=0.01", // 36s: the 60 changes are in before it
		"SLA_TARGET_HOURS_COMPLETED=1000",
		"SLA_CHECK_INTERVAL=1s",
		"PAGERDUTY_ROUTING_KEY=conformance-routing-key",
		"PAGERDUTY_EVENTS_URL=" + pdSrv.URL + "/v2/enqueue",
	}})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	produce := func(recs []*kgo.Record) {
		t.Helper()
		if err := e.Cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().UTC().Truncate(time.Second)
	var first []*kgo.Record
	for a := 1; a <= 40; a++ {
		first = append(first, statusEvent(e.Names.Tracking, a, fmt.Sprintf("a%d-1", a), t0, "ASSIGNED"))
		if a <= 15 {
			first = append(first, statusEvent(e.Names.Tracking, a, fmt.Sprintf("a%d-2", a), t0.Add(time.Second), "IN_PROGRESS"))
		}
		if a <= 5 {
			first = append(first, statusEvent(e.Names.Tracking, a, fmt.Sprintf("a%d-3", a), t0.Add(2*time.Second), "COMPLETED"))
		}
	}
	produce(first)
	produce(first[:20]) // duplicates
	stream := filepath.Join(harness.RepoRoot, "pipelines", "status.yaml")
	a, b := e.NewProc("status-a", stream), e.NewProc("status-b", stream)
	a.Start()
	b.Start()
	waitStatusCount(t, e, 60)
	// One replica dies before the deadline and returns around it: its
	// partitions move to the other and back.
	b.Kill()
	time.Sleep(time.Until(t0.Add(32 * time.Second)))
	b.Start()
	waitStatusCount(t, e, 85)
	time.Sleep(5 * time.Second)
	recs := statusRecords(t, e)
	if len(recs) != 85 {
		t.Fatalf("status topic: %d records, want 85 (60 changes, 25 overdue)", len(recs))
	}
	overdue := map[string]int{}
	ids := map[string]bool{}
	for _, r := range recs {
		if ids[r.ChangeID] {
			t.Fatalf("change %s written twice", r.ChangeID)
		}
		ids[r.ChangeID] = true
		if r.Change == "overdue" {
			overdue[r.Key]++
		}
	}
	for k := 1; k <= 40; k++ {
		want := 0
		if k > 15 {
			want = 1
		}
		if got := overdue[strconv.Itoa(k)]; got != want {
			t.Fatalf("assignment %d: %d overdue changes, want %d (all: %v)", k, got, want, overdue)
		}
	}
	var starts []*kgo.Record
	for k := 16; k <= 20; k++ {
		starts = append(starts, statusEvent(e.Names.Tracking, k, fmt.Sprintf("a%d-2", k), time.Now().UTC(), "IN_PROGRESS"))
	}
	produce(starts)
	waitStatusCount(t, e, 90)

	alerts := e.NewProc("alerts", filepath.Join(harness.RepoRoot, "pipelines", "alerts.yaml"))
	alerts.Start()
	kafkatest.WaitFor(t, 2*time.Minute, "35 alerts", func() bool {
		n, err := e.TopicCount(ctx, e.Names.Alerts)
		return err == nil && n >= 35
	})
	kafkatest.WaitFor(t, time.Minute, "35 PagerDuty events", func() bool { return len(pd.accepted()) >= 35 })
	time.Sleep(2 * time.Second)
	byRule := map[string]int{}
	for _, r := range e.ConsumeAll(e.Names.Alerts) {
		var al map[string]any
		if err := json.Unmarshal(r.Value, &al); err != nil {
			t.Fatal(err)
		}
		byRule[fmt.Sprint(al["rule"])]++
	}
	if fmt.Sprint(byRule) != "map[completed:5 sla_breach:25 sla_resolved:5]" {
		t.Fatalf("alerts by rule: %v", byRule)
	}
	incidents := map[string][]string{}
	for _, ev := range pd.accepted() {
		k := fmt.Sprint(ev["dedup_key"])
		incidents[k] = append(incidents[k], fmt.Sprint(ev["event_action"]))
	}
	var sla, resolved int
	for k, actions := range incidents {
		sort.Strings(actions)
		switch {
		case strings.HasPrefix(k, "itel-cabinet-sla-"):
			sla++
			if fmt.Sprint(actions) != "[trigger]" && fmt.Sprint(actions) != "[resolve trigger]" {
				t.Fatalf("SLA incident %s: %v", k, actions)
			}
			if len(actions) == 2 {
				resolved++
			}
		case fmt.Sprint(actions) != "[resolve]":
			t.Fatalf("assignment incident %s: %v", k, actions)
		}
	}
	if sla != 25 || resolved != 5 || len(pd.accepted()) != 35 {
		t.Fatalf("PagerDuty: %d SLA incidents (%d resolved), %d events; want 25 (5 resolved), 35", sla, resolved, len(pd.accepted()))
	}
	t.Logf("two status replicas, one killed and restarted around the deadline: 60 changes and 25 overdue changes once each; alerts %v; PagerDuty 35 events", byRule)
}

type statusRecord struct {
	Key      string `json:"key"`
	ChangeID string `json:"change_id"`
	Change   string `json:"change"`
}

func statusRecords(t *testing.T, e *harness.Env) []statusRecord {
	t.Helper()
	var out []statusRecord
	for _, r := range e.ConsumeAll(e.Names.Status) {
		var s statusRecord
		if err := json.Unmarshal(r.Value, &s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func waitStatusCount(t *testing.T, e *harness.Env, n int64) {
	t.Helper()
	kafkatest.WaitFor(t, 2*time.Minute, fmt.Sprintf("%d records on the status topic", n), func() bool {
		got, err := e.TopicCount(context.Background(), e.Names.Status)
		if got > n {
			t.Fatalf("status topic has %d records, want %d", got, n)
		}
		return err == nil && got == n
	})
}
