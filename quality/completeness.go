package quality

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"
)

// countByDay counts a table's rows in each day [starts[i], starts[i+1]). A
// file the log places inside one day adds its numRecords (partition values
// and time-column statistics, no read); a file outside every day is pruned;
// any other file has its time column read and each row counted in its day.
func countByDay(ctx context.Context, tr *tableRun, column string, starts []time.Time, c *Counters) ([]int64, error) {
	ts, err := tr.timeSpec(column)
	if err != nil {
		return nil, err
	}
	counts := make([]int64, len(starts)-1)
	all := &window{from: starts[0], to: starts[len(starts)-1]}
	c.Considered += int64(len(tr.files))
	for _, f := range tr.files {
		p := tr.place(f, ts, all)
		if p == placeOutside {
			c.Pruned++
			continue
		}
		if lo, hi, ok := tr.span(f, ts); ok {
			if d := dayOf(starts, lo); d >= 0 && d == dayOf(starts, hi) {
				if n, ok := tr.liveRecords(f); ok {
					counts[d] += n
					continue
				}
				rows, err := tr.read(ctx, f, nil, c)
				if err != nil {
					return nil, err
				}
				counts[d] += int64(len(rows))
				continue
			}
		}
		if ts.col == nil {
			return nil, fmt.Errorf("table %s: the log cannot place file %s in one day and the table has no time_column to count its rows by", tr.cfg.Name, f.Path)
		}
		rows, err := tr.read(ctx, f, []string{ts.col.name}, c)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			if t, ok := r[0].(time.Time); ok {
				if d := dayOf(starts, t); d >= 0 {
					counts[d]++
				}
			}
		}
	}
	return counts, nil
}

// dayOf returns the index of the day t falls in, or -1.
func dayOf(starts []time.Time, t time.Time) int {
	for i := 0; i+1 < len(starts); i++ {
		if !t.Before(starts[i]) && t.Before(starts[i+1]) {
			return i
		}
	}
	return -1
}

type dayResult struct {
	Day       string   `json:"day"`
	Rows      int64    `json:"rows"`
	Reference *int64   `json:"reference,omitempty"`
	Ratio     *float64 `json:"ratio,omitempty"`
	// Partial: the reference lost part of the day (Kafka retention), so the
	// ratio is not judged.
	Partial bool   `json:"reference_partial,omitempty"`
	Problem string `json:"problem,omitempty"`
}

func (e *Evaluator) evalCompleteness(ctx context.Context, x *Expectation, tr *tableRun, open opener, now time.Time, c *Counters) (outcome, error) {
	starts := dayStarts(now, x.Days, x.IncludeToday, x.Location)
	counts, err := countByDay(ctx, tr, x.Column, starts, c)
	if err != nil {
		return outcome{}, err
	}
	var refCounts []int64
	var partial []bool
	refName := ""
	if ref := x.Reference; ref != nil {
		if ref.Table != "" {
			refName = "table " + ref.Table
			rt, err := open(ref.Table)
			if err != nil {
				return outcome{}, fmt.Errorf("reference: %w", err)
			}
			if refCounts, err = countByDay(ctx, rt, ref.Column, starts, c); err != nil {
				return outcome{}, fmt.Errorf("reference: %w", err)
			}
			partial = make([]bool, len(refCounts))
		} else {
			refName = "Kafka topic " + ref.KafkaTopic
			if refCounts, partial, err = topicDayCounts(ctx, ref.KafkaBrokers, e.opts.KafkaOpts, ref.KafkaTopic, starts); err != nil {
				return outcome{}, fmt.Errorf("reference Kafka topic %s: %w", ref.KafkaTopic, err)
			}
		}
	}
	days := make([]dayResult, len(counts))
	var problems []string
	minRows := int64(math.MaxInt64)
	minRatio := math.Inf(1)
	for i, n := range counts {
		d := dayResult{Day: starts[i].Format("2006-01-02"), Rows: n}
		minRows = min(minRows, n)
		switch {
		case n == 0 && x.MinRows > 0:
			d.Problem = "missing day (0 rows)"
		case n < x.MinRows:
			d.Problem = fmt.Sprintf("%d rows < min_rows %d", n, x.MinRows)
		}
		if refCounts != nil {
			rc := refCounts[i]
			d.Reference, d.Partial = &rc, partial[i]
			if rc > 0 && !d.Partial {
				ratio := float64(n) / float64(rc)
				d.Ratio = &ratio
				minRatio = min(minRatio, ratio)
				if ratio < *x.MinRatio && d.Problem == "" {
					d.Problem = fmt.Sprintf("%d rows = %.3f × %d of %s < min_ratio %g", n, ratio, rc, refName, *x.MinRatio)
				}
			}
		}
		if d.Problem != "" {
			problems = append(problems, d.Day+": "+d.Problem)
		}
		days[i] = d
	}
	details := map[string]any{"days": days, "min_rows": x.MinRows, "timezone": x.Location.String()}
	if x.MinRatio != nil {
		details["min_ratio"] = *x.MinRatio
		details["reference"] = refName
	}
	out := outcome{status: statusOf(len(problems) == 0), details: details}
	// With a ratio, the lowest ratio is what a dashboard follows; without
	// one, the emptiest day.
	if x.MinRatio != nil && !math.IsInf(minRatio, 1) {
		out.observed, out.threshold = num(minRatio), num(*x.MinRatio)
	} else {
		out.observed, out.threshold = num(float64(minRows)), num(float64(x.MinRows))
	}
	span := fmt.Sprintf("%d day(s) %s … %s", len(days), days[0].Day, days[len(days)-1].Day)
	if len(problems) > 0 {
		out.message = fmt.Sprintf("%d of %s incomplete: %s", len(problems), span, strings.Join(problems, "; "))
		return out, nil
	}
	lo, hi := counts[0], counts[0]
	for _, n := range counts {
		lo, hi = min(lo, n), max(hi, n)
	}
	out.message = fmt.Sprintf("%s complete: %d–%d rows a day (min_rows %d)", span, lo, hi, x.MinRows)
	if x.MinRatio != nil {
		if math.IsInf(minRatio, 1) {
			out.message += fmt.Sprintf("; no day with records in %s to compare", refName)
		} else {
			out.message += fmt.Sprintf("; lowest ratio %.3f of %s (min_ratio %g)", minRatio, refName, *x.MinRatio)
		}
	}
	return out, nil
}
