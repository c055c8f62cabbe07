package quality

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/claimx/claimx-connect/delta"
)

// evalReferential collects the keys of the rows of table A that match the
// filter in the window (a file whose statistics exclude the filter value is
// pruned), then looks them up in table B, reading B's key column only of
// the files whose key statistics could hold a key still missing.
func evalReferential(ctx context.Context, x *Expectation, tr *tableRun, open opener, now time.Time, c *Counters) (outcome, error) {
	key, err := tr.column(x.Column)
	if err != nil {
		return outcome{}, err
	}
	cols := []string{key.name}
	var where *column
	var equals any
	if x.Where != nil {
		if where, err = tr.column(x.Where.Column); err != nil {
			return outcome{}, err
		}
		if equals, err = typed(where.typ, x.Where.Equals); err != nil {
			return outcome{}, fmt.Errorf("where.equals: %w", err)
		}
		cols = append(cols, where.name)
	}
	w := daysWindow(now, x.Days, x.IncludeToday, x.Location)
	if x.Grace > 0 {
		// Rows newer than the grace period may not have their B row yet.
		cut := now.Add(-x.Grace)
		if w == nil {
			w = &window{}
		}
		if w.to.IsZero() || cut.Before(w.to) {
			w.to = cut
		}
	}
	var ts *timeSpec
	if w != nil {
		if ts, err = tr.timeSpec(""); err != nil {
			return outcome{}, err
		}
	}
	missing := map[any]any{} // hash key → key value
	var matched, nullKeys int64
	c.Considered += int64(len(tr.files))
	for _, f := range tr.files {
		p := tr.place(f, ts, w)
		if p == placeOutside {
			c.Pruned++
			continue
		}
		if where != nil {
			if excluded, err := excludes(tr, f, where, equals); err != nil {
				return outcome{}, err
			} else if excluded {
				c.Pruned++
				continue
			}
		}
		err := tr.scan(ctx, f, cols, ts, w, p, c, func(r delta.Row) {
			if where != nil {
				if cmp, ok := compare(norm(r[1]), equals); !ok || cmp != 0 {
					return
				}
			}
			matched++
			if r[0] == nil {
				nullKeys++
				return
			}
			v := norm(r[0])
			missing[hashKey(v)] = v
		})
		if err != nil {
			return outcome{}, err
		}
	}
	keys := len(missing)

	ref, err := open(x.Reference.Table)
	if err != nil {
		return outcome{}, fmt.Errorf("reference: %w", err)
	}
	rkey, err := ref.column(x.Reference.Column)
	if err != nil {
		return outcome{}, fmt.Errorf("reference: %w", err)
	}
	c.Considered += int64(len(ref.files))
	for _, f := range ref.files {
		if len(missing) == 0 {
			c.Pruned++
			continue
		}
		if !mayHoldAny(ref, f, rkey, missing) {
			c.Pruned++
			continue
		}
		rows, err := ref.read(ctx, f, []string{rkey.name}, c)
		if err != nil {
			return outcome{}, fmt.Errorf("reference: %w", err)
		}
		for _, r := range rows {
			if r[0] != nil {
				delete(missing, hashKey(norm(r[0])))
			}
		}
	}

	absent := make([]any, 0, len(missing))
	for _, v := range missing {
		absent = append(absent, v)
	}
	slices.SortFunc(absent, func(a, b any) int { c, _ := compare(a, b); return c })
	examples := absent[:min(len(absent), maxExamples)]
	ex := make([]string, len(examples))
	jex := make([]any, len(examples))
	for i, v := range examples {
		ex[i], jex[i] = display(v), jsonValue(v)
	}
	filter := ""
	if where != nil {
		filter = fmt.Sprintf(" with %s = %s", where.name, display(equals))
	}
	details := map[string]any{"key": key.name, "reference": x.Reference.Table + "." + rkey.name, "rows_matched": matched,
		"null_keys": nullKeys, "keys": keys, "missing_keys": len(absent), "examples": jex, "reference_version": ref.snap.Version()}
	if where != nil {
		details["where"] = fmt.Sprintf("%s = %s", where.name, display(equals))
	}
	scope := "the table"
	if w != nil {
		scope = "the window " + w.String()
		details["window"] = w.String()
	}
	out := outcome{status: statusOf(len(absent) == 0), observed: num(float64(len(absent))), threshold: num(0), details: details}
	if len(absent) > 0 {
		out.message = fmt.Sprintf("%d of %d %s value(s) of rows%s in %s have no row in %s.%s, e.g. %s",
			len(absent), keys, key.name, filter, scope, x.Reference.Table, rkey.name, strings.Join(ex, ", "))
	} else {
		out.message = fmt.Sprintf("all %d %s value(s) of rows%s in %s are in %s.%s", keys, key.name, filter, scope, x.Reference.Table, rkey.name)
	}
	return out, nil
}

// excludes reports whether the log proves no row of the file has column =
// value: a partition value that differs, or statistics whose bounds leave
// it out.
func excludes(tr *tableRun, f delta.AddFile, col *column, value any) (bool, error) {
	if col.partition {
		v, err := tr.partitionValue(f, col)
		if err != nil {
			return false, err
		}
		c, ok := compare(v, value)
		return v == nil || (ok && c != 0), nil
	}
	fs := tr.statsOf(f)
	if fs.allNull(col.key) {
		return true, nil
	}
	mn, ok1 := fs.bound(col.typ, col.key, false)
	mx, ok2 := fs.bound(col.typ, col.key, true)
	if !ok1 || !ok2 {
		return false, nil
	}
	lo, okLo := compare(value, mn)
	hi, okHi := compare(value, mx)
	return okLo && okHi && (lo < 0 || hi > 0), nil
}

// mayHoldAny reports whether a file of the reference table may hold one of
// the keys, by its key statistics.
func mayHoldAny(tr *tableRun, f delta.AddFile, col *column, keys map[any]any) bool {
	if col.partition {
		v, err := tr.partitionValue(f, col)
		if err != nil {
			return true
		}
		_, ok := keys[hashKey(v)]
		return ok
	}
	fs := tr.statsOf(f)
	if fs.allNull(col.key) {
		return false
	}
	mn, ok1 := fs.bound(col.typ, col.key, false)
	mx, ok2 := fs.bound(col.typ, col.key, true)
	if !ok1 || !ok2 {
		return true
	}
	for _, v := range keys {
		lo, okLo := compare(v, mn)
		hi, okHi := compare(v, mx)
		if !okLo || !okHi || (lo >= 0 && hi <= 0) {
			return true
		}
	}
	return false
}
