package quality

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/claimx/claimx-connect/delta"
)

// valueRule is a range or a set of allowed values, typed by the column.
type valueRule struct {
	min, max any   // range bounds, nil when open
	set      []any // allowed values
	text     string
}

func (r *valueRule) ok(v any) bool {
	if r.set != nil {
		k := hashKey(v)
		for _, a := range r.set {
			if hashKey(a) == k {
				return true
			}
		}
		return false
	}
	if r.min != nil {
		if c, ok := compare(v, r.min); !ok || c < 0 {
			return false
		}
	}
	if r.max != nil {
		if c, ok := compare(v, r.max); !ok || c > 0 {
			return false
		}
	}
	return true
}

// provenByStats reports whether a file's statistics prove every non-null
// value of the column obeys the rule: its bounds lie in the range, or its
// min and max are one allowed value (a string cut to 32 characters never
// has equal bounds, Delta marks the max), or every value is null.
func (r *valueRule) provenByStats(fs *fileStats, col *column) bool {
	if fs.allNull(col.key) {
		return true
	}
	mn, ok1 := fs.bound(col.typ, col.key, false)
	mx, ok2 := fs.bound(col.typ, col.key, true)
	if !ok1 || !ok2 {
		return false
	}
	if r.set != nil {
		c, ok := compare(mn, mx)
		return ok && c == 0 && r.ok(mn)
	}
	return r.ok(mn) && r.ok(mx)
}

func newValueRule(x *Expectation, col *column) (*valueRule, error) {
	r := &valueRule{}
	if x.Kind == KindAllowedValues {
		texts := make([]string, len(x.Values))
		for i, v := range x.Values {
			tv, err := typed(col.typ, v)
			if err != nil {
				return nil, fmt.Errorf("values[%d]: %w", i, err)
			}
			r.set = append(r.set, tv)
			texts[i] = display(tv)
		}
		r.text = "in {" + strings.Join(texts, ", ") + "}"
		return r, nil
	}
	var parts []string
	var err error
	if x.Min != nil {
		if r.min, err = typed(col.typ, x.Min); err != nil {
			return nil, fmt.Errorf("min: %w", err)
		}
		parts = append(parts, "≥ "+display(r.min))
	}
	if x.Max != nil {
		if r.max, err = typed(col.typ, x.Max); err != nil {
			return nil, fmt.Errorf("max: %w", err)
		}
		parts = append(parts, "≤ "+display(r.max))
	}
	if r.min != nil {
		if _, ok := compare(r.min, r.min); !ok {
			return nil, fmt.Errorf("column %s (%s) has no order for a range", col.name, col.typ)
		}
	}
	if r.max != nil {
		if _, ok := compare(r.max, r.max); !ok {
			return nil, fmt.Errorf("column %s (%s) has no order for a range", col.name, col.typ)
		}
	}
	r.text = strings.Join(parts, " and ")
	return r, nil
}

// valueCount is an example value and how many rows hold it (a disallowed
// value, a duplicated key), as results show them.
type valueCount struct {
	Value any   `json:"value"`
	Count int64 `json:"count"`
}

// evalValues judges range and allowed_values: a partition column by its
// partition values, other columns by their statistics when those prove the
// file obeys, and otherwise by reading the column of the file. Nulls are
// never violations (null_rate judges them).
func evalValues(ctx context.Context, x *Expectation, tr *tableRun, now time.Time, c *Counters) (outcome, error) {
	col, err := tr.column(x.Column)
	if err != nil {
		return outcome{}, err
	}
	rule, err := newValueRule(x, col)
	if err != nil {
		return outcome{}, fmt.Errorf("column %s: %w", col.name, err)
	}
	w := daysWindow(now, x.Days, x.IncludeToday, x.Location)
	var ts *timeSpec
	if w != nil {
		if ts, err = tr.timeSpec(""); err != nil {
			return outcome{}, err
		}
	}
	bad := map[any]*valueCount{}
	var violations int64
	fromStats := 0
	record := func(v any, n int64) {
		violations += n
		k := hashKey(v)
		if b, ok := bad[k]; ok {
			b.Count += n
			return
		}
		bad[k] = &valueCount{Value: v, Count: n}
	}
	c.Considered += int64(len(tr.files))
	for _, f := range tr.files {
		p := tr.place(f, ts, w)
		if p == placeOutside {
			c.Pruned++
			continue
		}
		if col.partition && p == placeInside {
			v, err := tr.partitionValue(f, col)
			if err != nil {
				return outcome{}, err
			}
			if n, ok := tr.liveRecords(f); ok {
				fromStats++
				if v != nil && !rule.ok(v) {
					record(v, n)
				}
				continue
			}
		}
		if !col.partition && (p == placeInside || p == placeStraddle) && rule.provenByStats(tr.statsOf(f), col) {
			// Every row of the file obeys, so the rows in the window do.
			fromStats++
			continue
		}
		err := tr.scan(ctx, f, []string{col.name}, ts, w, p, c, func(r delta.Row) {
			if r[0] == nil {
				return
			}
			if v := norm(r[0]); !rule.ok(v) {
				record(v, 1)
			}
		})
		if err != nil {
			return outcome{}, err
		}
	}
	examples := make([]valueCount, 0, len(bad))
	for _, b := range bad {
		examples = append(examples, *b)
	}
	slices.SortFunc(examples, func(a, b valueCount) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		c, _ := compare(a.Value, b.Value)
		return c
	})
	distinct := len(examples)
	if len(examples) > maxExamples {
		examples = examples[:maxExamples]
	}
	ex := make([]string, len(examples))
	for i := range examples {
		ex[i] = fmt.Sprintf("%s ×%d", display(examples[i].Value), examples[i].Count)
		examples[i].Value = jsonValue(examples[i].Value)
	}
	scope := "the table"
	details := map[string]any{"column": col.name, "rule": rule.text, "violations": violations,
		"distinct_violating_values": distinct, "examples": examples, "files_from_stats": fromStats}
	if w != nil {
		scope = "the window " + w.String()
		details["window"] = w.String()
	}
	out := outcome{status: statusOf(violations == 0), observed: num(float64(violations)), threshold: num(0), details: details}
	if violations > 0 {
		out.message = fmt.Sprintf("%d row(s) of %s not %s in %s, e.g. %s", violations, col.name, rule.text, scope, strings.Join(ex, ", "))
	} else {
		out.message = fmt.Sprintf("every %s %s in %s (%d files proven by statistics, %d read)", col.name, rule.text, scope, fromStats, c.Scanned)
	}
	return out, nil
}
