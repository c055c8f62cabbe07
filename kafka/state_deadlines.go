package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/twmb/franz-go/pkg/kgo"
)

// deadlineOf maps a change record (before its deadline fields are set) to
// the key's next deadline, or nil when none applies.
func (s *stateChanges) deadlineOf(rec *stateChangeRecord) (*deadlineMark, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encoding the change for the deadline mapping: %w", err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("decoding the change for the deadline mapping: %w", err)
	}
	out, err := s.deadlineAt.Query(v)
	if errors.Is(err, bloblang.ErrRootDeleted) || (err == nil && out == nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("the deadline mapping: %w", err)
	}
	obj, ok := out.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the deadline mapping gave %T, want an object {name, at} or null", out)
	}
	name, _ := obj["name"].(string)
	if name == "" {
		return nil, fmt.Errorf("the deadline mapping gave no name")
	}
	var at time.Time
	switch a := obj["at"].(type) {
	case time.Time:
		at = a
	case string:
		if at, err = time.Parse(time.RFC3339Nano, a); err != nil {
			return nil, fmt.Errorf("deadline %s: at %q is not RFC 3339", name, a)
		}
	default:
		return nil, fmt.Errorf("deadline %s: at is %T, want an RFC 3339 time", name, obj["at"])
	}
	return &deadlineMark{Name: name, At: at.UTC().Format(time.RFC3339Nano)}, nil
}

// deadlineLoop checks the keys' deadlines every check_interval until the
// processor closes. A failed check (Kafka unavailable) is tried again at
// the next tick: nothing is lost, the overdue change is only later.
func (s *stateChanges) deadlineLoop(ctx context.Context) {
	defer close(s.timerDone)
	tick := time.NewTicker(s.deadlineEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n, err := s.checkDeadlines(ctx)
		if err != nil && ctx.Err() == nil {
			s.held.Incr(1)
			s.avail.Set(0)
			s.log.With("error", err.Error(), "retry_in", s.deadlineEvery.String()).Warn("state_changes: checking deadlines failed")
			continue
		}
		if n > 0 {
			s.log.With("overdue", n).Info("state_changes: deadlines passed; overdue changes written")
		}
	}
}

// checkDeadlines writes an overdue change for every key of this replica
// whose deadline has passed with no change since, and returns how many.
func (s *stateChanges) checkDeadlines(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, s.catchUpMax)
	defer cancel()
	if err := s.ensureTable(cctx); err != nil {
		return 0, err
	}
	s.avail.Set(1)
	s.keys.Set(int64(s.table.Len()))
	now := s.now()
	type due struct {
		key string
		rec stateChangeRecord
	}
	var dues []due
	s.table.Range(func(key string, raw []byte) {
		var rec stateChangeRecord
		if json.Unmarshal(raw, &rec) != nil || rec.Deadline == nil || rec.Overdue.of(rec.Deadline) {
			return
		}
		at, err := time.Parse(time.RFC3339Nano, rec.Deadline.At)
		if err != nil || now.Before(at) {
			return
		}
		dues = append(dues, due{key, rec})
	})
	if len(dues) == 0 {
		return 0, nil
	}
	owns, err := s.ownerOf(cctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range dues {
		if !owns(d.key) {
			continue
		}
		b, err := overdueRecord(d.rec, now)
		if err != nil {
			return n, fmt.Errorf("key %s: %w", d.key, err)
		}
		if err := s.table.Put(cctx, d.key, b); err != nil {
			return n, err
		}
		s.changes.Incr(1, stateChangeOverdue)
		s.overdue.Incr(1)
		n++
	}
	return n, nil
}

// overdueRecord is the change recording that rec's deadline passed: the same
// event and state (a replay of the event is still recognised as one), the
// mark set.
func overdueRecord(rec stateChangeRecord, now time.Time) ([]byte, error) {
	detected := now.UTC().Format(time.RFC3339Nano)
	id := rec.Key + ":overdue:" + rec.Deadline.Name + ":" + rec.Deadline.At
	out := rec
	out.ChangeID, out.Change, out.DetectedAt = id, stateChangeOverdue, detected
	out.Previous = &stateSnapshot{EventID: rec.EventID, EventTime: rec.EventTime, State: rec.State}
	out.Overdue = &overdueMark{Name: rec.Deadline.Name, At: rec.Deadline.At, ChangeID: id, DetectedAt: detected}
	out.Resolves = nil
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encoding the overdue change: %w", err)
	}
	return b, nil
}

// ownerOf returns whether this replica owns a key: with no owner_group,
// every key; otherwise a key whose owner_topic partition (murmur2 of the key,
// as the producers place it) an input of this process in owner_group holds.
func (s *stateChanges) ownerOf(ctx context.Context) (func(key string) bool, error) {
	if s.ownerGroup == "" {
		return func(string) bool { return true }, nil
	}
	n, err := s.table.Partitions(ctx, s.ownerTopic)
	if err != nil {
		return nil, err
	}
	part := kgo.StickyKeyPartitioner(nil).ForTopic(s.ownerTopic)
	return func(key string) bool {
		p := part.Partition(&kgo.Record{Key: []byte(key)}, n)
		return s.owns(s.ownerGroup, s.ownerTopic, int32(p))
	}, nil
}
