package quality

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/claimx/claimx-connect/delta"
)

// maxExamples bounds the example values a result carries.
const maxExamples = 5

// evalUnique reads the column (only) of the files in the window and counts
// the rows whose value an earlier row already had. Nulls are not values.
func evalUnique(ctx context.Context, x *Expectation, tr *tableRun, now time.Time, c *Counters) (outcome, error) {
	col, err := tr.column(x.Column)
	if err != nil {
		return outcome{}, err
	}
	w := daysWindow(now, x.Days, x.IncludeToday, x.Location)
	var ts *timeSpec
	if w != nil {
		if ts, err = tr.timeSpec(""); err != nil {
			return outcome{}, err
		}
	}
	type seen struct {
		value any
		count int64
	}
	values := map[any]*seen{}
	var rows, nulls int64
	c.Considered += int64(len(tr.files))
	for _, f := range tr.files {
		p := tr.place(f, ts, w)
		if p == placeOutside {
			c.Pruned++
			continue
		}
		err := tr.scan(ctx, f, []string{col.name}, ts, w, p, c, func(r delta.Row) {
			rows++
			if r[0] == nil {
				nulls++
				return
			}
			v := norm(r[0])
			k := hashKey(v)
			if s, ok := values[k]; ok {
				s.count++
				return
			}
			values[k] = &seen{value: v, count: 1}
		})
		if err != nil {
			return outcome{}, err
		}
	}
	var dups []valueCount
	var extra int64
	for _, s := range values {
		if s.count > 1 {
			extra += s.count - 1
			dups = append(dups, valueCount{Value: s.value, Count: s.count})
		}
	}
	slices.SortFunc(dups, func(a, b valueCount) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		c, _ := compare(a.Value, b.Value)
		return c
	})
	distinctDup := len(dups)
	if len(dups) > maxExamples {
		dups = dups[:maxExamples]
	}
	ex := make([]string, len(dups))
	for i := range dups {
		ex[i] = fmt.Sprintf("%s ×%d", display(dups[i].Value), dups[i].Count)
		dups[i].Value = jsonValue(dups[i].Value)
	}
	scope := "the table"
	details := map[string]any{"column": col.name, "rows": rows, "nulls": nulls, "distinct": len(values),
		"duplicate_rows": extra, "duplicated_values": distinctDup, "examples": dups}
	if w != nil {
		scope = "the window " + w.String()
		details["window"] = w.String()
	}
	out := outcome{status: statusOf(extra == 0), observed: num(float64(extra)), threshold: num(0), details: details}
	if extra > 0 {
		out.message = fmt.Sprintf("%d duplicate row(s) of %s in %s: %d value(s) repeated, e.g. %s", extra, col.name, scope, distinctDup, strings.Join(ex, ", "))
	} else {
		out.message = fmt.Sprintf("%d distinct %s in %d rows of %s", len(values), col.name, rows, scope)
	}
	return out, nil
}
