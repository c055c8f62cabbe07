package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
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

// The SLA stream's group and table directory (pipelines/sla.yaml), and how
// often dev has the status stream check SLA deadlines.
const (
	devSLAGroup         = "itel_cabinet_sla_group"
	devSLATableDir      = "itel_cabinet_task_sla"
	devSLACheckInterval = 2 * time.Second
)

// slaSummary is what the SLA table holds after a dev run.
type slaSummary struct {
	Rows      int            // rows of itel_cabinet_task_sla
	Changes   int            // status change records they should match
	Breaches  int            // rows of missed deadlines (change = overdue)
	Open      int            // assignments whose last status has a deadline (ASSIGNED, IN_PROGRESS)
	Alerted   int            // sla_breach alerts
	ByStatus  []slaByStatus  // time from assigned to each status reached
	Deadlines map[string]int // breaches per deadline name
}

type slaByStatus struct {
	Status        string
	N             int
	P50, P90      float64 // hours since assigned
	Within, Judge int     // rows within their target, of those with one
}

func (d *devRun) summariseSLA(ctx context.Context, alerts alertsSummary) (slaSummary, error) {
	s := slaSummary{Changes: alerts.Changes, Alerted: alerts.ByRule["sla_breach"], Deadlines: map[string]int{}}
	rows, err := readTableMaps(ctx, d.formsPath(devSLATableDir))
	if err != nil {
		return s, fmt.Errorf("reading the SLA table: %w", err)
	}
	s.Rows = len(rows)
	hours := map[string][]float64{}
	by := map[string]*slaByStatus{}
	type last struct {
		at     time.Time
		status string
	}
	latest := map[int64]last{}
	for _, r := range rows {
		status, _ := r["to_status"].(string)
		if aid, ok := r["assignment_id"].(int64); ok {
			at, _ := r["detected_at"].(time.Time)
			if l, seen := latest[aid]; !seen || at.After(l.at) {
				latest[aid] = last{at, status}
			}
		}
		if r["change"] == "overdue" {
			s.Breaches++
			name, _ := r["deadline_name"].(string)
			s.Deadlines[name]++
			continue
		}
		b := by[status]
		if b == nil {
			b = &slaByStatus{Status: status}
			by[status] = b
		}
		b.N++
		if h, ok := r["hours_since_assigned"].(float64); ok {
			hours[status] = append(hours[status], h)
		}
		if w, ok := r["within_sla"].(bool); ok {
			b.Judge++
			if w {
				b.Within++
			}
		}
	}
	for _, l := range latest {
		if l.status == "ASSIGNED" || l.status == "IN_PROGRESS" {
			s.Open++
		}
	}
	for status, b := range by {
		hs := hours[status]
		sort.Float64s(hs)
		b.P50, b.P90 = quantile(hs, 0.5), quantile(hs, 0.9)
		s.ByStatus = append(s.ByStatus, *b)
	}
	sort.Slice(s.ByStatus, func(i, j int) bool { return s.ByStatus[i].Status < s.ByStatus[j].Status })
	return s, nil
}

// quantile of sorted values, nearest rank; 0 for none.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func (s slaSummary) print(w io.Writer) {
	fmt.Fprintln(w, "── SLA (itel_cabinet_task_sla) ─────────────────────────")
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "status reached\tchanges\tp50 h\tp90 h\twithin target\n")
	for _, b := range s.ByStatus {
		within := "—"
		if b.Judge > 0 {
			within = fmt.Sprintf("%d/%d (%.0f%%)", b.Within, b.Judge, 100*float64(b.Within)/float64(b.Judge))
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%s\n", b.Status, b.N, b.P50, b.P90, within)
	}
	tw.Flush()
	names := make([]string, 0, len(s.Deadlines))
	for n, c := range s.Deadlines {
		names = append(names, fmt.Sprintf("not %s %d", n, c))
	}
	sort.Strings(names)
	fmt.Fprintf(w, "breaches %d (%s) of %d assignments still open; %d sla_breach alerts\n", s.Breaches, strings.Join(names, ", "), s.Open, s.Alerted)
	if s.problem() == "" {
		fmt.Fprintf(w, "✔ one SLA row per status change (%d) and one breach per open assignment past its target (%d)\n", s.Rows, s.Breaches)
	} else {
		fmt.Fprintf(w, "✘ %s\n", s.problem())
	}
}

func (s slaSummary) problem() string {
	switch {
	case s.Rows != s.Changes:
		return fmt.Sprintf("the SLA table holds %d rows for %d status change records", s.Rows, s.Changes)
	case s.Breaches != s.Open:
		// dev's events are months old: every open assignment is past its target.
		return fmt.Sprintf("%d SLA breaches for %d assignments open past their target", s.Breaches, s.Open)
	case s.Alerted != s.Breaches:
		return fmt.Sprintf("%d sla_breach alerts for %d breaches", s.Alerted, s.Breaches)
	}
	return ""
}
