package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// Topic and group names of the status and alerts streams (pipelines/status.yaml,
// alerts.yaml), as their defaults say.
const (
	devStatusGroup       = "itel_cabinet_status_group"
	devAlertsGroup       = "itel_cabinet_alerts_group"
	devStatusTopic       = "itel.cabinet.task.status"
	devAlertsTopic       = "itel.cabinet.alerts"
	devAlertsErrorsTopic = "itel.cabinet.alerts.errors"
)

// alertsSummary is what the status and alerts streams did in a dev run, read
// back from their topics.
type alertsSummary struct {
	Changes     int            // change records on the status topic
	ChangeIDs   int            // … distinct change ids
	Assignments int            // … distinct assignments
	Alerts      int            // messages on the alerts topic
	AlertIDs    int            // … distinct alert ids
	ByRule      map[string]int // alerts per rule
	Errors      int64          // messages on the alerts errors topic
}

func (d *devRun) summariseAlerts(ctx context.Context) (alertsSummary, error) {
	s := alertsSummary{ByRule: map[string]int{}}
	changes, err := d.readAll(ctx, devStatusTopic)
	if err != nil {
		return s, err
	}
	ids, keys := map[string]bool{}, map[string]bool{}
	for _, v := range changes {
		var c struct {
			Key      string `json:"key"`
			ChangeID string `json:"change_id"`
		}
		if err := json.Unmarshal(v, &c); err != nil {
			return s, fmt.Errorf("reading %s: %w", devStatusTopic, err)
		}
		ids[c.ChangeID], keys[c.Key] = true, true
	}
	s.Changes, s.ChangeIDs, s.Assignments = len(changes), len(ids), len(keys)
	alerts, err := d.readAll(ctx, devAlertsTopic)
	if err != nil {
		return s, err
	}
	alertIDs := map[string]bool{}
	for _, v := range alerts {
		var a struct {
			AlertID string `json:"alert_id"`
			Rule    string `json:"rule"`
		}
		if err := json.Unmarshal(v, &a); err != nil {
			return s, fmt.Errorf("reading %s: %w", devAlertsTopic, err)
		}
		alertIDs[a.AlertID] = true
		s.ByRule[a.Rule]++
	}
	s.Alerts, s.AlertIDs = len(alerts), len(alertIDs)
	s.Errors, err = d.topicCount(ctx, devAlertsErrorsTopic)
	return s, err
}

func (s alertsSummary) print(w io.Writer) {
	fmt.Fprintln(w, "── status changes and alerts ───────────────────────────")
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "status changes\t%d\t(%d assignments, on %s)\n", s.Changes, s.Assignments, devStatusTopic)
	rules := make([]string, 0, len(s.ByRule))
	for r := range s.ByRule {
		rules = append(rules, fmt.Sprintf("%s %d", r, s.ByRule[r]))
	}
	sort.Strings(rules)
	fmt.Fprintf(tw, "alerts\t%d\t(%s; on %s)\n", s.Alerts, strings.Join(rules, ", "), devAlertsTopic)
	fmt.Fprintf(tw, "alert errors\t%d\t(on %s)\n", s.Errors, devAlertsErrorsTopic)
	tw.Flush()
	if s.problem() == "" {
		fmt.Fprintf(w, "✔ every status change recorded once (%d) and every alert sent once (%d)\n", s.Changes, s.Alerts)
	} else {
		fmt.Fprintf(w, "✘ %s\n", s.problem())
	}
}

func (s alertsSummary) problem() string {
	switch {
	case s.Changes != s.ChangeIDs:
		return fmt.Sprintf("%d status change records for %d changes", s.Changes, s.ChangeIDs)
	case s.Alerts != s.AlertIDs:
		return fmt.Sprintf("%d alerts for %d alert ids", s.Alerts, s.AlertIDs)
	case s.Errors > 0:
		return fmt.Sprintf("%d records on %s", s.Errors, devAlertsErrorsTopic)
	}
	return ""
}
