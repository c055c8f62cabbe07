package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"
)

// newDeadlineStateChanges is a state_changes whose deadline is 24 hours
// after an ASSIGNED event (named after the assignee, so a reassignment is a
// new deadline) and none otherwise; its timer does not run by itself
// (check_interval 1h): the tests call checkDeadlines with a clock.
func newDeadlineStateChanges(t *testing.T, addr, topic, ownerGroup string) *stateChanges {
	t.Helper()
	owner := ""
	if ownerGroup != "" {
		owner = fmt.Sprintf("owner_group: %s\n  owner_topic: %s", ownerGroup, topic)
	}
	conf, err := stateChangesSpec().ParseYAML(fmt.Sprintf(`
seed_brokers: [ %q ]
topic: %s
key: '${! json("assignment_id") }'
event_id: '${! json("event_id") }'
event_time: '${! json("event_timestamp") }'
state: 'root = {"status": this.task_status, "assignee": this.assignee}'
deadline:
  check_interval: 1h
  at: |
    root = if this.state.status == "ASSIGNED" {
      {"name": "started_by_" + this.state.assignee.string(), "at": this.event_time.ts_parse("2006-01-02T15:04:05Z07:00").ts_add_iso8601("PT24H")}
    } else { null }
  %s
`, addr, topic, owner), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newStateChanges(conf, service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func checkAt(t *testing.T, p *stateChanges, now string) int {
	t.Helper()
	at, err := time.Parse(time.RFC3339, now)
	if err != nil {
		t.Fatal(err)
	}
	p.now = func() time.Time { return at }
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	n, err := p.checkDeadlines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStateChangesDeadlineOverdueOnceThenResolved: a key left ASSIGNED past
// its deadline gets one overdue change with no event after it, none again on
// later checks or from a restarted process; the completion carries the mark
// it resolves; a replay of the assigning event is still a replay.
func TestStateChangesDeadlineOverdueOnceThenResolved(t *testing.T) {
	const topic = "deadlines"
	addr := startCluster(t, 3, topic)
	p := newDeadlineStateChanges(t, addr, topic, "")

	a1 := trackingEvent{7, "e1", "2026-12-01T10:00:00Z", "ASSIGNED", 1, "p"}
	b1 := trackingEvent{8, "f1", "2026-12-01T10:00:00Z", "ASSIGNED", 1, "p"}
	b2 := trackingEvent{8, "f2", "2026-12-01T12:00:00Z", "IN_PROGRESS", 1, "p"}
	if got := judgeAll(t, p, a1, b1, b2); fmt.Sprint(got) != "[new new changed]" {
		t.Fatalf("first events: %v", got)
	}
	if n := checkAt(t, p, "2026-12-02T09:59:59Z"); n != 0 {
		t.Fatalf("before the deadline: %d overdue", n)
	}
	if n := checkAt(t, p, "2026-12-02T10:00:00Z"); n != 1 {
		t.Fatalf("at the deadline: %d overdue, want 1 (key 7; key 8 started)", n)
	}
	if n := checkAt(t, p, "2026-12-02T11:00:00Z"); n != 0 {
		t.Fatalf("a later check: %d overdue, want 0", n)
	}
	p2 := newDeadlineStateChanges(t, addr, topic, "")
	if n := checkAt(t, p2, "2026-12-03T11:00:00Z"); n != 0 {
		t.Fatalf("a restarted process: %d overdue, want 0", n)
	}
	// The event that set the state, again, and the same state later: no change.
	if got := judgeAll(t, p2, a1, trackingEvent{7, "e1b", "2026-12-02T12:00:00Z", "ASSIGNED", 1, "p"}); fmt.Sprint(got) != "[replay unchanged]" {
		t.Fatalf("after the overdue change: %v", got)
	}
	if got := judgeAll(t, p2, trackingEvent{7, "e2", "2026-12-03T12:00:00Z", "IN_PROGRESS", 1, "p"}); fmt.Sprint(got) != "[changed]" {
		t.Fatalf("starting: %v", got)
	}

	recs := changeRecords(t, addr, topic)
	byID := map[string]stateChangeRecord{}
	for _, r := range recs {
		if _, dup := byID[r.ChangeID]; dup {
			t.Fatalf("change %s written twice", r.ChangeID)
		}
		byID[r.ChangeID] = r
	}
	const overdueID = "7:overdue:started_by_1:2026-12-02T10:00:00Z"
	od, ok := byID[overdueID]
	if !ok || len(recs) != 5 {
		t.Fatalf("change records %v, want 7:e1 8:f1 8:f2 %s 7:e2", keys(byID), overdueID)
	}
	if od.Change != "overdue" || od.EventID != "e1" || od.Overdue == nil || od.Overdue.ChangeID != overdueID || od.Overdue.DetectedAt != "2026-12-02T10:00:00Z" || string(od.State) != `{"assignee":1,"status":"ASSIGNED"}` {
		t.Fatalf("overdue change = %+v", od)
	}
	if d := byID["8:f1"].Deadline; d == nil || d.At != "2026-12-02T10:00:00Z" || byID["8:f2"].Deadline != nil {
		t.Fatalf("deadlines: 8:f1 %+v, 8:f2 %+v", d, byID["8:f2"].Deadline)
	}
	done := byID["7:e2"]
	if done.Resolves == nil || done.Resolves.ChangeID != overdueID || done.Overdue != nil || done.Deadline != nil {
		t.Fatalf("the start after the overdue change: resolves %+v, overdue %+v, deadline %+v", done.Resolves, done.Overdue, done.Deadline)
	}
}

// TestStateChangesDeadlineCarriedAndReplaced: a change keeping the same
// deadline carries the overdue mark (nothing is resolved, nothing fires
// again); a change with a new deadline resolves the old mark and, once it
// passes too, is overdue on its own.
func TestStateChangesDeadlineCarriedAndReplaced(t *testing.T) {
	const topic = "deadlines"
	addr := startCluster(t, 1, topic)
	p := newDeadlineStateChanges(t, addr, topic, "")
	judgeAll(t, p, trackingEvent{7, "e1", "2026-12-01T10:00:00Z", "ASSIGNED", 1, "p"})
	if n := checkAt(t, p, "2026-12-02T10:00:00Z"); n != 1 {
		t.Fatalf("overdue: %d", n)
	}
	// Reassigned: a new deadline (named after the assignee) 24h later.
	if got := judgeAll(t, p, trackingEvent{7, "e2", "2026-12-02T11:00:00Z", "ASSIGNED", 2, "p"}); fmt.Sprint(got) != "[changed]" {
		t.Fatalf("reassigned: %v", got)
	}
	if n := checkAt(t, p, "2026-12-03T10:59:00Z"); n != 0 {
		t.Fatalf("before the new deadline: %d", n)
	}
	if n := checkAt(t, p, "2026-12-03T11:00:00Z"); n != 1 {
		t.Fatalf("at the new deadline: %d", n)
	}
	recs := changeRecords(t, addr, topic)
	var got []string
	for _, r := range recs {
		s := r.ChangeID
		if r.Resolves != nil {
			s += " resolves " + r.Resolves.ChangeID
		}
		if r.Overdue != nil {
			s += " overdue " + r.Overdue.ChangeID
		}
		got = append(got, s)
	}
	want := []string{
		"7:e1",
		"7:overdue:started_by_1:2026-12-02T10:00:00Z overdue 7:overdue:started_by_1:2026-12-02T10:00:00Z",
		"7:e2 resolves 7:overdue:started_by_1:2026-12-02T10:00:00Z",
		"7:overdue:started_by_2:2026-12-03T11:00:00Z overdue 7:overdue:started_by_2:2026-12-03T11:00:00Z",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("changes:\n got %q\nwant %q", got, want)
	}
}

// TestStateChangesDeadlineOnlyOwnedKeys: with owner_group, a replica writes
// overdue changes only for the keys whose partition of the input topic its
// group owns here (as the producers' murmur2 places the key).
func TestStateChangesDeadlineOnlyOwnedKeys(t *testing.T) {
	const topic = "deadlines"
	addr := startCluster(t, 3, topic)
	p := newDeadlineStateChanges(t, addr, topic, "g")
	part := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
	owned := map[int32]bool{}
	p.owns = func(group, tp string, partition int32) bool {
		if group != "g" || tp != topic {
			t.Fatalf("asked for group %s topic %s", group, tp)
		}
		return owned[partition]
	}
	var evs []trackingEvent
	for k := 1; k <= 12; k++ {
		evs = append(evs, trackingEvent{k, fmt.Sprintf("e%d", k), "2026-12-01T10:00:00Z", "ASSIGNED", 1, "p"})
	}
	judgeAll(t, p, evs...)
	if n := checkAt(t, p, "2026-12-02T10:00:00Z"); n != 0 {
		t.Fatalf("owning no partition: %d overdue", n)
	}
	owned[1] = true
	want := 0
	for k := 1; k <= 12; k++ {
		if part.Partition(&kgo.Record{Key: fmt.Appendf(nil, "%d", k)}, 3) == 1 {
			want++
		}
	}
	if want == 0 || want == 12 {
		t.Fatalf("the keys should spread over the partitions: %d of 12 on partition 1", want)
	}
	if n := checkAt(t, p, "2026-12-02T10:00:00Z"); n != want {
		t.Fatalf("owning partition 1: %d overdue, want %d", n, want)
	}
	owned[0], owned[2] = true, true
	if n := checkAt(t, p, "2026-12-02T10:00:00Z"); n != 12-want {
		t.Fatalf("owning them all: %d more overdue, want %d", n, 12-want)
	}
}

func keys(m map[string]stateChangeRecord) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
