package quality

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/claimx/claimx-connect/delta"
)

// workingStart returns the start of the working period now is in, or false
// when now is outside working hours.
func (w *WorkingHours) workingStart(now time.Time) (time.Time, bool) {
	n := now.In(w.Location)
	if !slices.Contains(w.Days, n.Weekday()) {
		return time.Time{}, false
	}
	midnight := time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, w.Location)
	start := midnight.Add(w.Start)
	end := midnight.Add(w.End)
	if n.Before(start) || !n.Before(end) {
		return time.Time{}, false
	}
	return start, true
}

// evalFreshness finds the newest value of the column: from maxValues when
// a file has them, by reading the column only of files without. Files whose
// date partitions (or statistics) end before the newest value found so far
// are pruned, newest files first.
func evalFreshness(ctx context.Context, x *Expectation, tr *tableRun, now time.Time, c *Counters) (outcome, error) {
	threshold := num(x.MaxAge.Seconds())
	var periodStart time.Time
	if x.WorkingHours != nil {
		start, in := x.WorkingHours.workingStart(now)
		if !in {
			return outcome{status: StatusSkipped, threshold: threshold,
				message: fmt.Sprintf("outside working hours (%s)", x.WorkingHours)}, nil
		}
		periodStart = start
	}
	col, err := tr.column(x.Column)
	if err != nil {
		return outcome{}, err
	}
	switch col.typ.Kind {
	case delta.KindTimestamp, delta.KindTimestampNTZ, delta.KindDate:
	default:
		return outcome{}, fmt.Errorf("column %q of table %s is a %s, not a timestamp or date", x.Column, tr.cfg.Name, col.typ)
	}
	ts := &timeSpec{col: col}
	if x.Column == tr.cfg.TimeColumn {
		if full, err := tr.timeSpec(""); err == nil {
			ts = full
		}
	}
	type cand struct {
		f  delta.AddFile
		hi time.Time
		ok bool
	}
	cands := make([]cand, len(tr.files))
	for i, f := range tr.files {
		_, hi, ok := tr.span(f, ts)
		cands[i] = cand{f, hi, ok}
	}
	// Newest first; files the log cannot place last.
	slices.SortStableFunc(cands, func(a, b cand) int {
		switch {
		case a.ok && b.ok:
			return b.hi.Compare(a.hi)
		case a.ok:
			return -1
		case b.ok:
			return 1
		}
		return 0
	})
	c.Considered += int64(len(tr.files))
	var newest time.Time
	fromStats := 0
	for _, cd := range cands {
		if !newest.IsZero() && cd.ok && !cd.hi.After(newest) {
			c.Pruned++
			continue
		}
		fs := tr.statsOf(cd.f)
		if !col.partition {
			if mx, ok := fs.bound(col.typ, col.key, true); ok {
				fromStats++
				if t := mx.(time.Time); t.After(newest) {
					newest = t
				}
				continue
			}
			if fs.allNull(col.key) {
				fromStats++
				continue
			}
		}
		rows, err := tr.read(ctx, cd.f, []string{col.name}, c)
		if err != nil {
			return outcome{}, err
		}
		for _, r := range rows {
			if t, ok := r[0].(time.Time); ok && t.After(newest) {
				newest = t
			}
		}
	}
	if col.typ.Kind == delta.KindDate && !newest.IsZero() {
		newest = newest.Add(24*time.Hour - time.Nanosecond)
	}
	details := map[string]any{"column": x.Column, "max_age": x.MaxAge.String(), "files_from_stats": fromStats}
	if x.WorkingHours != nil {
		details["working_hours"] = x.WorkingHours.String()
		details["working_period_start"] = periodStart.UTC().Format(time.RFC3339)
	}
	if newest.IsZero() {
		return outcome{status: StatusFail, threshold: threshold, details: details,
			message: fmt.Sprintf("no value of %s in table %s", x.Column, tr.cfg.Name)}, nil
	}
	age := now.Sub(newest)
	details["newest"] = newest.UTC().Format(time.RFC3339Nano)
	details["age_seconds"] = age.Seconds()
	// In working hours the clock starts with the working period: data that
	// stopped overnight is not stale at 08:05.
	since := newest
	if periodStart.After(since) {
		since = periodStart
	}
	judged := now.Sub(since)
	if judged < 0 {
		judged = 0
	}
	details["judged_age_seconds"] = judged.Seconds()
	ok := judged <= x.MaxAge
	var msg string
	switch {
	case ok && since.Equal(newest):
		msg = fmt.Sprintf("newest %s is %s old (max %s)", x.Column, round(age), x.MaxAge)
	case ok:
		msg = fmt.Sprintf("newest %s is %s old, %s into working hours (max %s)", x.Column, round(age), round(judged), x.MaxAge)
	default:
		msg = fmt.Sprintf("stale: newest %s is %s (%s old", x.Column, newest.UTC().Format(time.RFC3339), round(age))
		if !since.Equal(newest) {
			msg += fmt.Sprintf(", %s into working hours", round(judged))
		}
		msg += fmt.Sprintf("), more than max_age %s", x.MaxAge)
	}
	return outcome{status: statusOf(ok), observed: num(judged.Seconds()), threshold: threshold, message: msg, details: details}, nil
}

// round shortens a duration for messages.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute)
	case d >= time.Minute:
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}
