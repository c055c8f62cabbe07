package claimxsim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// ClaimX event types (DOMAIN.md §2).
const (
	EventProjectCreated          = "PROJECT_CREATED"
	EventProjectFileAdded        = "PROJECT_FILE_ADDED"
	EventProjectMFNAdded         = "PROJECT_MFN_ADDED"
	EventCustomTaskAssigned      = "CUSTOM_TASK_ASSIGNED"
	EventCustomTaskCompleted     = "CUSTOM_TASK_COMPLETED"
	EventPolicyholderInvited     = "POLICYHOLDER_INVITED"
	EventPolicyholderJoined      = "POLICYHOLDER_JOINED"
	EventVideoCollabInviteSent   = "VIDEO_COLLABORATION_INVITE_SENT"
	EventVideoCollabCompleted    = "VIDEO_COLLABORATION_COMPLETED"
	EventAutoXALinkingUnsuccess  = "PROJECT_AUTO_XA_LINKING_UNSUCCESSFUL"
	malformedNotJSON             = "not_json"
	malformedMissingEventID      = "missing_event_id"
	malformedMissingAssignmentID = "missing_assignment_id"
	malformedBadTimestamp        = "bad_timestamp"
)

// otherEventTypes are the event types that are not task events.
var otherEventTypes = []string{
	EventProjectCreated, EventProjectFileAdded, EventProjectMFNAdded, EventPolicyholderInvited,
	EventPolicyholderJoined, EventVideoCollabInviteSent, EventVideoCollabCompleted, EventAutoXALinkingUnsuccess,
}

// MalformedKinds lists the kinds of malformed events GenerateEvents produces.
var MalformedKinds = []string{malformedNotJSON, malformedMissingEventID, malformedMissingAssignmentID, malformedBadTimestamp}

// EventOptions drives GenerateEvents. Fractions are within 0..1.
type EventOptions struct {
	// Seed makes the output deterministic.
	Seed int64
	// Count is the number of events.
	Count int
	// Assignments are the assignments task events refer to, usually
	// (*Server).Assignments() of a simulator built with the same data.
	Assignments []Assignment
	// TaskEventFraction is the share of CUSTOM_TASK_* events among the
	// well-formed ones (the rest spread over the other types).
	TaskEventFraction float64
	// UnknownAssignmentFraction is the share of task events whose assignment
	// id the simulator does not know (its lookup answers 404).
	UnknownAssignmentFraction float64
	// MalformedFraction is the share of events a trigger cannot read: not
	// JSON, no event_id, a task event without assignment id, a time that does
	// not parse (see MalformedKinds).
	MalformedFraction float64
	// CamelCaseFraction is the share of events with camelCase field names
	// (eventId, eventType, projectId, taskAssignmentId, ingestedAt or
	// IngestionTime).
	CamelCaseFraction float64
	// Start is the ingested_at of the first event (default
	// 2026-01-10T22:00:00Z); events follow about two seconds apart.
	Start time.Time
}

// DefaultEventOptions returns options with a realistic mix: 60 % task
// events, 5 % unknown assignments, 5 % malformed, 30 % camelCase.
func DefaultEventOptions(seed int64, count int, assignments []Assignment) EventOptions {
	return EventOptions{
		Seed: seed, Count: count, Assignments: assignments,
		TaskEventFraction: 0.6, UnknownAssignmentFraction: 0.05, MalformedFraction: 0.05, CamelCaseFraction: 0.3,
	}
}

// Event is one generated ClaimX event with what a test needs to know about it.
type Event struct {
	// Body is the Kafka message value (not JSON when Malformed is not_json).
	Body []byte
	// Key is the project id, a natural Kafka key for the events topic.
	Key       string
	EventID   string
	EventType string
	// AssignmentID is set for task events (also when unknown or malformed).
	AssignmentID int64
	// TemplateID is the task template of a known assignment, else 0.
	TemplateID int
	// Malformed is "" for a readable event, else one of MalformedKinds.
	Malformed string
	// UnknownAssignment marks task events whose assignment does not exist.
	UnknownAssignment bool
	// IngestedAt is the event time (UTC) the body carries.
	IngestedAt time.Time
}

// GenerateEvents produces Count ClaimX events deterministically from Seed.
func GenerateEvents(o EventOptions) []Event {
	r := rand.New(rand.NewPCG(uint64(o.Seed), 0x5eed_e7e7))
	start := o.Start
	if start.IsZero() {
		start = time.Date(2026, 1, 10, 22, 0, 0, 0, time.UTC)
	}
	offsets := []*time.Location{
		time.UTC, time.UTC, time.FixedZone("", 2*3600), time.FixedZone("", -5*3600), time.FixedZone("", 5*3600+1800),
	}
	at := start
	out := make([]Event, 0, o.Count)
	for i := range o.Count {
		at = at.Add(time.Duration(500+r.IntN(3000)) * time.Millisecond)
		ev := Event{
			EventID:    fmt.Sprintf("evt_%s", hexID(r, 12)),
			IngestedAt: at.Truncate(time.Millisecond),
			EventType:  pick(r, otherEventTypes),
		}
		projectID := int64(4895000 + r.IntN(1000))
		isTask := r.Float64() < o.TaskEventFraction
		if isTask {
			ev.EventType = EventCustomTaskAssigned
			if len(o.Assignments) == 0 || r.Float64() < o.UnknownAssignmentFraction {
				ev.UnknownAssignment = true
				ev.AssignmentID = 9_900_000 + int64(i)
			} else {
				a := o.Assignments[r.IntN(len(o.Assignments))]
				ev.AssignmentID, ev.TemplateID, projectID = a.AssignmentID, a.TaskID, a.ProjectID
				if a.Status == StatusCompleted && r.IntN(3) > 0 {
					ev.EventType = EventCustomTaskCompleted
				}
			}
		}
		ev.Key = strconv.FormatInt(projectID, 10)
		if r.Float64() < o.MalformedFraction {
			ev.Malformed = pick(r, MalformedKinds)
			if ev.Malformed == malformedMissingAssignmentID && !isTask {
				ev.EventType = EventCustomTaskAssigned
			}
		}

		camel := r.Float64() < o.CamelCaseFraction
		k := func(snake, camelName string) string {
			if camel {
				return camelName
			}
			return snake
		}
		loc := pick(r, offsets)
		layout := pick(r, []string{"2006-01-02T15:04:05.000Z07:00", time.RFC3339, time.RFC3339Nano})
		if layout == time.RFC3339 {
			// This layout has no fraction: keep IngestedAt equal to what the body says.
			ev.IngestedAt = ev.IngestedAt.Truncate(time.Second)
		}
		ts := ev.IngestedAt.In(loc).Format(layout)
		if ev.Malformed == malformedBadTimestamp {
			ts = pick(r, []string{"2026-13-45T25:61:00Z", "yesterday", "10/01/2026 22:30", ""})
		}
		tsKey := k("ingested_at", pick(r, []string{"ingestedAt", "IngestionTime"}))

		m := map[string]any{
			k("event_type", "eventType"): ev.EventType,
			k("project_id", "projectId"): ev.Key,
			tsKey:                        ts,
		}
		if ev.Malformed != malformedMissingEventID {
			m[k("event_id", "eventId")] = ev.EventID
		} else {
			ev.EventID = ""
		}
		if ev.AssignmentID != 0 && ev.Malformed != malformedMissingAssignmentID {
			m[k("task_assignment_id", "taskAssignmentId")] = strconv.FormatInt(ev.AssignmentID, 10)
		}
		switch ev.EventType {
		case EventProjectFileAdded:
			m[k("media_id", "mediaId")] = strconv.Itoa(91000000 + r.IntN(100000))
		case EventProjectMFNAdded:
			m[k("master_file_name", "masterFileName")] = fmt.Sprintf("MFN-%06d", r.IntN(1_000_000))
		case EventVideoCollabInviteSent, EventVideoCollabCompleted:
			m[k("video_collaboration_id", "videoCollaborationId")] = strconv.Itoa(700000 + r.IntN(100000))
		}
		if r.IntN(4) == 0 {
			m[k("raw_data", "rawData")] = map[string]any{"source": "claimx-edi", "sequence": i, "region": pick(r, []string{"us-east", "us-west"})}
		}

		body, err := json.Marshal(m)
		if err != nil {
			// Only plain maps of strings and numbers are marshalled.
			panic(fmt.Sprintf("marshalling generated event %d: %v", i, err))
		}
		if ev.Malformed == malformedNotJSON {
			body = body[:len(body)/2]
		}
		ev.Body = body
		out = append(out, ev)
	}
	return out
}
