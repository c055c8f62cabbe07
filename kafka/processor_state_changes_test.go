package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/redpanda-data/benthos/v4/public/service"
)

func newTestStateChanges(t *testing.T, addr, topic string) *stateChanges {
	t.Helper()
	conf, err := stateChangesSpec().ParseYAML(fmt.Sprintf(`
seed_brokers: [ %q ]
topic: %s
key: '${! json("assignment_id") }'
event_id: '${! json("event_id") }'
event_time: '${! json("event_timestamp") }'
state: 'root = {"status": this.task_status, "assignee": this.assignee}'
context: 'root = {"project_id": this.project_id}'
`, addr, topic), nil)
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

type trackingEvent struct {
	AssignmentID int    `json:"assignment_id"`
	EventID      string `json:"event_id"`
	Time         string `json:"event_timestamp"`
	Status       string `json:"task_status"`
	Assignee     int    `json:"assignee"`
	ProjectID    string `json:"project_id"`
}

func (e trackingEvent) msg() *service.Message {
	b, _ := json.Marshal(e)
	return service.NewMessage(b)
}

func judgeAll(t *testing.T, p *stateChanges, evs ...trackingEvent) []string {
	t.Helper()
	var batch service.MessageBatch
	for _, e := range evs {
		batch = append(batch, e.msg())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := p.ProcessBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range out[0] {
		if err := m.GetError(); err != nil {
			got = append(got, "error: "+err.Error())
			continue
		}
		v, _ := m.MetaGet("state_change")
		got = append(got, v)
	}
	return got
}

// changeRecords reads every record of the state topic.
func changeRecords(t *testing.T, addr, topic string) []stateChangeRecord {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []stateChangeRecord
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var c stateChangeRecord
			if err := json.Unmarshal(r.Value, &c); err != nil {
				t.Fatalf("record at %d: %v", r.Offset, err)
			}
			if string(r.Key) != c.Key {
				t.Fatalf("record key %s, change key %s", r.Key, c.Key)
			}
			recs = append(recs, c)
		})
	}
	return recs
}

func TestStateChangesJudgesReplaysDuplicatesAndOrder(t *testing.T) {
	const topic = "states"
	addr := startCluster(t, 3, topic)
	p := newTestStateChanges(t, addr, topic)

	a1 := trackingEvent{7, "e1", "2026-12-01T10:00:00Z", "ASSIGNED", 1, "p"}
	a2 := trackingEvent{7, "e2", "2026-12-01T11:00:00Z", "ASSIGNED", 1, "p"}
	a3 := trackingEvent{7, "e3", "2026-12-01T12:00:00Z", "IN_PROGRESS", 1, "p"}
	a4 := trackingEvent{7, "e4", "2026-12-01T13:00:00Z", "IN_PROGRESS", 2, "p"}
	b1 := trackingEvent{8, "f1", "2026-12-01T10:00:00Z", "ASSIGNED", 1, "p"}
	bad := trackingEvent{9, "g1", "yesterday", "ASSIGNED", 1, "p"}

	for _, c := range []struct {
		name string
		in   []trackingEvent
		want []string
	}{
		{"first states", []trackingEvent{a1, b1}, []string{"new", "new"}},
		{"same state later", []trackingEvent{a2}, []string{"unchanged"}},
		{"a change, then the same event twice in one batch", []trackingEvent{a3, a3}, []string{"changed", "replay"}},
		{"older events replayed", []trackingEvent{a1, a2, b1}, []string{"out_of_order", "out_of_order", "replay"}},
		{"a reassignment is a change", []trackingEvent{a4}, []string{"changed"}},
	} {
		if got := judgeAll(t, p, c.in...); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Fatalf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
	if got := judgeAll(t, p, bad); len(got) != 1 || got[0] != `error: state_changes: event g1: time "yesterday" is not RFC 3339` {
		t.Fatalf("a bad time: %v", got)
	}

	// A restarted process (or another replica) judges against the topic.
	p2 := newTestStateChanges(t, addr, topic)
	if got := judgeAll(t, p2, a4, a3, trackingEvent{7, "e5", "2026-12-01T14:00:00Z", "COMPLETED", 2, "p"}); fmt.Sprint(got) != "[replay out_of_order changed]" {
		t.Fatalf("after a restart: %v", got)
	}
	// The first process catches up on what the second wrote.
	if got := judgeAll(t, p, trackingEvent{7, "e5", "2026-12-01T14:00:00Z", "COMPLETED", 2, "p"}); fmt.Sprint(got) != "[replay]" {
		t.Fatalf("the other replica: %v", got)
	}

	recs := changeRecords(t, addr, topic)
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ChangeID)
	}
	// Kafka orders within a partition only: compare as a set.
	want := map[string]bool{"7:e1": true, "8:f1": true, "7:e3": true, "7:e4": true, "7:e5": true}
	if len(recs) != len(want) {
		t.Fatalf("change records %v, want %v", ids, want)
	}
	for _, r := range recs {
		if !want[r.ChangeID] {
			t.Fatalf("unexpected change %s in %v", r.ChangeID, ids)
		}
		if r.ChangeID == "7:e5" {
			if r.Previous == nil || r.Previous.EventID != "e4" || string(r.State) != `{"assignee":2,"status":"COMPLETED"}` || string(r.Previous.State) != `{"assignee":2,"status":"IN_PROGRESS"}` || string(r.Context) != `{"project_id":"p"}` {
				t.Fatalf("change 7:e5 = %+v", r)
			}
		}
	}
}

// TestStateChangesHoldsWhileKafkaIsDown: no broker at the address holds the
// batch (no record fails); once a broker answers, the batch goes on.
func TestStateChangesHoldsWhileKafkaIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := newTestStateChanges(t, addr, "states")

	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	_, err = p.ProcessBatch(ctx, service.MessageBatch{trackingEvent{1, "e1", "2026-12-01T10:00:00Z", "ASSIGNED", 1, "p"}.msg()})
	cancel()
	if err == nil {
		t.Fatal("with no broker the batch went on")
	}

	done := make(chan []string, 1)
	go func() {
		done <- judgeAll(t, p, trackingEvent{1, "e1", "2026-12-01T10:00:00Z", "ASSIGNED", 1, "p"})
	}()
	time.Sleep(500 * time.Millisecond)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(1, "states"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := <-done; fmt.Sprint(got) != "[new]" {
		t.Fatalf("after the broker came up: %v", got)
	}
}
