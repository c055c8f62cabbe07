package quality

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
)

// tableRun is one table at the version a run reads: every expectation of the
// run on this table sees the same snapshot.
type tableRun struct {
	cfg   *TableConfig
	store storage.Store
	snap  *delta.Snapshot
	files []delta.AddFile
	stats map[string]*fileStats
}

func newTableRun(cfg *TableConfig, store storage.Store, snap *delta.Snapshot) *tableRun {
	return &tableRun{cfg: cfg, store: store, snap: snap, files: snap.Files(), stats: map[string]*fileStats{}}
}

func (tr *tableRun) statsOf(f delta.AddFile) *fileStats {
	fs, ok := tr.stats[f.Path]
	if !ok {
		fs = parseStats(f.Stats)
		tr.stats[f.Path] = fs
	}
	return fs
}

// liveRecords is the number of live rows the log gives for a file, if it
// gives one.
func (tr *tableRun) liveRecords(f delta.AddFile) (int64, bool) {
	fs := tr.statsOf(f)
	if fs.numRecords == nil {
		return 0, false
	}
	n := *fs.numRecords
	if f.DeletionVector != nil {
		n -= f.DeletionVector.Cardinality
	}
	return n, true
}

// column is a resolved column of the table.
type column struct {
	name      string
	typ       delta.DataType
	key       string // the physical name: the statistics' and partition values' key
	partition bool
}

func (tr *tableRun) column(name string) (*column, error) {
	sc := tr.snap.Schema()
	i := sc.Index(name)
	if i < 0 {
		return nil, fmt.Errorf("column %q is not in table %s (columns: %s)", name, tr.cfg.Name, sc.String())
	}
	f := sc.Field(i)
	c := &column{name: f.Name, typ: sc.Type(i), key: delta.PhysicalName(f.Name, f.Metadata)}
	for _, p := range tr.snap.PartitionColumns() {
		if sc.Index(p) == i {
			c.partition = true
		}
	}
	return c, nil
}

// partitionValue returns the typed, normalised value of a partition column
// for a file.
func (tr *tableRun) partitionValue(f delta.AddFile, c *column) (any, error) {
	raw, _ := tr.snap.Schema().PartitionValue(f.PartitionValues, c.name)
	v, err := delta.ParsePartitionValue(c.typ, raw)
	if err != nil {
		return nil, fmt.Errorf("partition value of %s in %s: %w", c.name, f.Path, err)
	}
	return norm(v), nil
}

// timeSpec places a table's rows in time: by a time column (its values, and
// its statistics for whole files) and by date partitions (whole files).
type timeSpec struct {
	col   *column
	parts []*column
}

func (tr *tableRun) timeSpec(override string) (*timeSpec, error) {
	ts := &timeSpec{}
	name := override
	if name == "" {
		name = tr.cfg.TimeColumn
	}
	if name != "" {
		c, err := tr.column(name)
		if err != nil {
			return nil, err
		}
		switch c.typ.Kind {
		case delta.KindTimestamp, delta.KindTimestampNTZ, delta.KindDate:
		default:
			return nil, fmt.Errorf("column %q of table %s is a %s, not a timestamp or date", name, tr.cfg.Name, c.typ)
		}
		ts.col = c
	}
	// Date partitions place whole files only when the day is the UTC day of
	// the time column (or there is no time column).
	for _, p := range tr.cfg.DatePartitions {
		c, err := tr.column(p)
		if err != nil {
			return nil, fmt.Errorf("date_partitions of table %s: %w", tr.cfg.Name, err)
		}
		if !c.partition {
			return nil, fmt.Errorf("date_partitions of table %s: %q is not a partition column", tr.cfg.Name, p)
		}
		ts.parts = append(ts.parts, c)
	}
	if ts.col != nil && override != "" && override != tr.cfg.TimeColumn {
		// The partitions follow the table's time column, not this one.
		ts.parts = nil
	}
	if ts.col == nil && len(ts.parts) == 0 {
		return nil, fmt.Errorf("table %s has neither a time_column nor date_partitions", tr.cfg.Name)
	}
	return ts, nil
}

// span is the closed interval of instants a file's rows lie in, from its
// date partitions and the statistics of the time column, intersected. ok is
// false when neither says.
func (tr *tableRun) span(f delta.AddFile, ts *timeSpec) (lo, hi time.Time, ok bool) {
	if day, found := tr.partitionDay(f, ts); found {
		lo, hi, ok = day, day.Add(24*time.Hour-time.Nanosecond), true
	}
	if ts.col == nil || ts.col.partition {
		return lo, hi, ok
	}
	fs := tr.statsOf(f)
	mn, ok1 := fs.bound(ts.col.typ, ts.col.key, false)
	mx, ok2 := fs.bound(ts.col.typ, ts.col.key, true)
	if !ok1 || !ok2 {
		return lo, hi, ok
	}
	slo, shi := mn.(time.Time), mx.(time.Time)
	if ts.col.typ.Kind == delta.KindDate {
		shi = shi.Add(24*time.Hour - time.Nanosecond)
	}
	if !ok {
		return slo, shi, true
	}
	if slo.After(lo) {
		lo = slo
	}
	if shi.Before(hi) {
		hi = shi
	}
	return lo, hi, true
}

// partitionDay is the UTC day a file's date partitions name.
func (tr *tableRun) partitionDay(f delta.AddFile, ts *timeSpec) (time.Time, bool) {
	switch len(ts.parts) {
	case 1:
		v, err := tr.partitionValue(f, ts.parts[0])
		if err != nil || v == nil {
			return time.Time{}, false
		}
		switch x := v.(type) {
		case time.Time:
			return time.Date(x.Year(), x.Month(), x.Day(), 0, 0, 0, 0, time.UTC), true
		case string:
			d, err := delta.ParseDate(x)
			return d, err == nil
		}
	case 3:
		var ymd [3]int
		for k, c := range ts.parts {
			v, err := tr.partitionValue(f, c)
			if err != nil || v == nil {
				return time.Time{}, false
			}
			var n int64
			switch x := v.(type) {
			case int64:
				n = x
			case string:
				if n, err = strconv.ParseInt(x, 10, 64); err != nil {
					return time.Time{}, false
				}
			default:
				return time.Time{}, false
			}
			ymd[k] = int(n)
		}
		return time.Date(ymd[0], time.Month(ymd[1]), ymd[2], 0, 0, 0, 0, time.UTC), true
	}
	return time.Time{}, false
}

// window is the half-open interval [from, to); a zero end is unbounded.
type window struct {
	from, to time.Time
}

func (w *window) contains(t time.Time) bool {
	if w == nil {
		return true
	}
	return (w.from.IsZero() || !t.Before(w.from)) && (w.to.IsZero() || t.Before(w.to))
}

func (w *window) String() string {
	f := func(t time.Time) string {
		if t.IsZero() {
			return "…"
		}
		return t.Format(time.RFC3339)
	}
	return "[" + f(w.from) + ", " + f(w.to) + ")"
}

type placement int

const (
	placeInside   placement = iota // every row of the file is in the window
	placeOutside                   // no row is
	placeStraddle                  // some may be, or the log cannot say
)

// place judges a file against a window from the log alone.
func (tr *tableRun) place(f delta.AddFile, ts *timeSpec, w *window) placement {
	if w == nil {
		return placeInside
	}
	lo, hi, ok := tr.span(f, ts)
	if !ok {
		return placeStraddle
	}
	if (!w.to.IsZero() && !lo.Before(w.to)) || (!w.from.IsZero() && hi.Before(w.from)) {
		return placeOutside
	}
	if w.contains(lo) && w.contains(hi) {
		return placeInside
	}
	return placeStraddle
}

// Counters are what an evaluation cost.
type Counters struct {
	// Considered: live files of the tables the expectation reads.
	Considered int64
	// Pruned: files skipped because their partition values or statistics
	// show they cannot matter.
	Pruned int64
	// Scanned: data files read (only the columns needed).
	Scanned int64
	// Rows read from the scanned files.
	Rows int64
}

// read reads the columns of a file, counting the cost.
func (tr *tableRun) read(ctx context.Context, f delta.AddFile, cols []string, c *Counters) ([]delta.Row, error) {
	rows, err := tr.snap.ReadColumns(ctx, tr.store, f, cols)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", tr.cfg.Name, err)
	}
	c.Scanned++
	c.Rows += int64(len(rows))
	return rows, nil
}

// scan reads cols of a file and calls fn with each row that lies in the
// window: a file inside it gives every row, a straddling one is filtered by
// the time column.
func (tr *tableRun) scan(ctx context.Context, f delta.AddFile, cols []string, ts *timeSpec, w *window, p placement, c *Counters, fn func(delta.Row)) error {
	filter := w != nil && p == placeStraddle
	read := cols
	if filter {
		if ts == nil || ts.col == nil {
			return fmt.Errorf("table %s: the log cannot place file %s in the window %s and the table has no time_column to filter its rows", tr.cfg.Name, f.Path, w)
		}
		read = append(append([]string(nil), cols...), ts.col.name)
	}
	rows, err := tr.read(ctx, f, read, c)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if filter {
			t, ok := r[len(cols)].(time.Time)
			if !ok || !w.contains(t) {
				continue
			}
			r = r[:len(cols)]
		}
		fn(r)
	}
	return nil
}

// daysWindow is the window of the last days calendar days in loc, ending
// with today (whole, includeToday) or yesterday.
func daysWindow(now time.Time, days int, includeToday bool, loc *time.Location) *window {
	if days <= 0 {
		return nil
	}
	starts := dayStarts(now, days, includeToday, loc)
	return &window{from: starts[0], to: starts[len(starts)-1]}
}

// dayStarts returns days+1 local midnights: the start of each day of the
// window, then the end of the last. Calendar arithmetic keeps days right
// across daylight-saving changes.
func dayStarts(now time.Time, days int, includeToday bool, loc *time.Location) []time.Time {
	n := now.In(loc)
	last := 0 // the last day: today
	if !includeToday {
		last = -1
	}
	out := make([]time.Time, 0, days+1)
	for k := last - days + 1; k <= last+1; k++ {
		out = append(out, time.Date(n.Year(), n.Month(), n.Day()+k, 0, 0, 0, 0, loc))
	}
	return out
}
