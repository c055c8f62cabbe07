package quality

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/claimx/claimx-connect/delta"
)

type nullStat struct {
	Column   string  `json:"column"`
	Nulls    int64   `json:"nulls"`
	Rows     int64   `json:"rows"`
	Fraction float64 `json:"fraction"`
}

// evalNullRate sums nullCount and numRecords over the files in the window;
// a file is read (those columns only) when it lacks the statistics, has a
// deletion vector (its statistics count deleted rows), or straddles the
// window.
func evalNullRate(ctx context.Context, x *Expectation, tr *tableRun, now time.Time, c *Counters) (outcome, error) {
	cols := make([]*column, len(x.Columns))
	for i, name := range x.Columns {
		col, err := tr.column(name)
		if err != nil {
			return outcome{}, err
		}
		cols[i] = col
	}
	w := daysWindow(now, x.Days, x.IncludeToday, x.Location)
	var ts *timeSpec
	if w != nil {
		var err error
		if ts, err = tr.timeSpec(""); err != nil {
			return outcome{}, err
		}
	}
	stats := make([]nullStat, len(cols))
	for i, col := range cols {
		stats[i].Column = col.name
	}
	c.Considered += int64(len(tr.files))
	for _, f := range tr.files {
		p := tr.place(f, ts, w)
		if p == placeOutside {
			c.Pruned++
			continue
		}
		if p == placeInside && f.DeletionVector == nil {
			if n, ok := tr.liveRecords(f); ok {
				nulls := make([]int64, len(cols))
				answered := true
				for i, col := range cols {
					if col.partition {
						v, err := tr.partitionValue(f, col)
						if err != nil {
							return outcome{}, err
						}
						if v == nil {
							nulls[i] = n
						}
						continue
					}
					k, ok := tr.statsOf(f).nulls(col.key)
					if !ok {
						answered = false
						break
					}
					nulls[i] = k
				}
				if answered {
					for i := range cols {
						stats[i].Nulls += nulls[i]
						stats[i].Rows += n
					}
					continue
				}
			}
		}
		err := tr.scan(ctx, f, x.Columns, ts, w, p, c, func(r delta.Row) {
			for i := range cols {
				stats[i].Rows++
				if r[i] == nil {
					stats[i].Nulls++
				}
			}
		})
		if err != nil {
			return outcome{}, err
		}
	}
	worst := 0.0
	var over []string
	for i := range stats {
		if stats[i].Rows > 0 {
			stats[i].Fraction = float64(stats[i].Nulls) / float64(stats[i].Rows)
		}
		worst = max(worst, stats[i].Fraction)
		if stats[i].Fraction > x.MaxNullFraction {
			over = append(over, fmt.Sprintf("%s %d of %d rows null (%.4f)", stats[i].Column, stats[i].Nulls, stats[i].Rows, stats[i].Fraction))
		}
	}
	details := map[string]any{"columns": stats, "max_null_fraction": x.MaxNullFraction}
	scope := "the table"
	if w != nil {
		scope = "the window " + w.String()
		details["window"] = w.String()
	}
	out := outcome{status: statusOf(len(over) == 0), observed: num(worst), threshold: num(x.MaxNullFraction), details: details}
	switch {
	case len(over) > 0:
		out.message = fmt.Sprintf("null rate above %g in %s: %s", x.MaxNullFraction, scope, strings.Join(over, "; "))
	case stats[0].Rows == 0:
		out.message = fmt.Sprintf("no rows in %s", scope)
	default:
		out.message = fmt.Sprintf("highest null rate %.4f (max %g) over %d rows of %s", worst, x.MaxNullFraction, stats[0].Rows, scope)
	}
	return out, nil
}
