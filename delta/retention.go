package delta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Retention is how long data is kept: calendar years, months and days
// (counted in UTC) plus an exact duration.
type Retention struct {
	Years, Months, Days int
	Duration            time.Duration
}

// retentionUnits maps the calendar unit spellings ParseRetention accepts to
// (years, months, days) per unit.
var retentionUnits = map[string][3]int{
	"y": {1, 0, 0}, "yr": {1, 0, 0}, "year": {1, 0, 0}, "years": {1, 0, 0},
	"mo": {0, 1, 0}, "month": {0, 1, 0}, "months": {0, 1, 0},
	"w": {0, 0, 7}, "week": {0, 0, 7}, "weeks": {0, 0, 7},
	"d": {0, 0, 1}, "day": {0, 0, 1}, "days": {0, 0, 1},
}

// ParseRetention parses a retention such as "7y", "18mo" (months), "12w",
// "90d", "1y6mo", or a Go duration ("36h", "90m" — m is minutes, mo
// months). Years and months are calendar arithmetic (see Cutoff); weeks
// and days are calendar days in UTC. The retention must be positive.
func ParseRetention(s string) (Retention, error) {
	in := strings.ToLower(strings.Join(strings.Fields(s), ""))
	if in == "" {
		return Retention{}, errors.New("empty retention (want e.g. 90d, 12w, 18mo, 7y or a Go duration)")
	}
	r, err := parseRetentionTerms(in)
	if err != nil {
		// Fractions ("1.5h") and anything else Go durations accept.
		d, derr := time.ParseDuration(in)
		if derr != nil {
			return Retention{}, fmt.Errorf("retention %q: %v (want e.g. 90d, 12w, 18mo, 7y or a Go duration)", s, err)
		}
		r = Retention{Duration: d}
	}
	if r.Years < 0 || r.Months < 0 || r.Days < 0 || r.Duration < 0 || r.IsZero() {
		return Retention{}, fmt.Errorf("retention %q must be positive", s)
	}
	return r, nil
}

// parseRetentionTerms reads <integer><unit> terms: calendar units and the
// units of Go durations.
func parseRetentionTerms(s string) (Retention, error) {
	var r Retention
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 {
			return Retention{}, fmt.Errorf("expected a number at %q", s)
		}
		j := i
		for j < len(s) && (unicode.IsLetter(rune(s[j])) || s[j] == 0xc2 || s[j] == 0xb5) {
			j++
		}
		num, unit := s[:i], s[i:j]
		if unit == "" {
			return Retention{}, fmt.Errorf("number %s has no unit", num)
		}
		n, err := strconv.Atoi(num)
		if err != nil {
			return Retention{}, fmt.Errorf("number %s: %v", num, err)
		}
		if u, ok := retentionUnits[unit]; ok {
			r.Years += n * u[0]
			r.Months += n * u[1]
			r.Days += n * u[2]
		} else {
			d, err := time.ParseDuration(num + unit)
			if err != nil {
				return Retention{}, fmt.Errorf("unknown unit %q", unit)
			}
			r.Duration += d
		}
		s = s[j:]
	}
	return r, nil
}

// IsZero reports whether the retention keeps nothing.
func (r Retention) IsZero() bool {
	return r.Years == 0 && r.Months == 0 && r.Days == 0 && r.Duration == 0
}

// String renders the retention the way ParseRetention reads it.
func (r Retention) String() string {
	var b strings.Builder
	for _, p := range []struct {
		n    int
		unit string
	}{{r.Years, "y"}, {r.Months, "mo"}, {r.Days, "d"}} {
		if p.n != 0 {
			fmt.Fprintf(&b, "%d%s", p.n, p.unit)
		}
	}
	if r.Duration != 0 || b.Len() == 0 {
		b.WriteString(r.Duration.String())
	}
	return b.String()
}

// Cutoff returns now (in UTC) minus the retention. Years and months move
// the calendar month and keep the day, clamped to the last day of the
// target month (2024-02-29 minus 1y is 2023-02-28, as Spark's add_months),
// so the cutoff never lands later than the calendar date asked for; then
// days, then the duration, are subtracted.
func (r Retention) Cutoff(now time.Time) time.Time {
	now = now.UTC()
	y, m, d := now.Date()
	months := int(m) - 1 - (r.Years*12 + r.Months)
	ty := y + floorDivInt(months, 12)
	tm := time.Month(months - floorDivInt(months, 12)*12 + 1)
	if last := daysInMonth(ty, tm); d > last {
		d = last
	}
	c := time.Date(ty, tm, d, now.Hour(), now.Minute(), now.Second(), now.Nanosecond(), time.UTC)
	return c.AddDate(0, 0, -r.Days).Add(-r.Duration)
}

func floorDivInt(a, b int) int {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func daysInMonth(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// ExpireOptions select the data Expire removes.
type ExpireOptions struct {
	// Column is the time column: a partition column of type date,
	// timestamp, timestamp_ntz or string (holding an ISO date or
	// timestamp); a non-partition date/timestamp/timestamp_ntz column
	// (files are judged by their statistics); or integer partition
	// columns "year,month,day" (or "year,month", "year") that together
	// hold a UTC calendar date, as the tracking table is partitioned.
	Column string
	// Keep is how long data is kept: data older than Now minus Keep goes.
	Keep Retention
	// DryRun reports what would be expired and commits nothing.
	DryRun bool
}

// ExpiredPartition is one partition (or, by statistics, the part of one)
// whose files are removed.
type ExpiredPartition struct {
	// Values are the partition values by logical column name (nil: null).
	Values map[string]*string
	Files  int
	Bytes  int64
	// Rows are the live rows of the files with stats.
	Rows int64
}

// ExpireResult describes an expiry.
type ExpireResult struct {
	// Version is the DELETE commit, or the current version when nothing
	// was committed (NoOp or DryRun).
	Version int64
	NoOp    bool
	DryRun  bool
	// Cutoff: data older than this (UTC) is expired.
	Cutoff time.Time
	// Predicate is the commitInfo predicate, e.g. (event_date < '2019-12-06').
	Predicate string
	// ByStats: the column is not a partition column and files were judged
	// by their maxValues statistics.
	ByStats bool
	// Partitions are those with removed files, sorted by their values
	// (empty for an unpartitioned table).
	Partitions   []ExpiredPartition
	Files        int
	Bytes        int64
	Rows         int64
	RowsExact    bool
	RemovedPaths []string
	// KeptStraddling counts files kept (by statistics) that hold rows on
	// both sides of the cutoff; KeptWithoutStats counts files kept because
	// their statistics give no minimum and maximum for the column.
	KeptStraddling, KeptWithoutStats int
	// Checkpointed: a checkpoint of Version was written. CheckpointErr is
	// a failed checkpoint after a successful commit (the commit stands).
	Checkpointed  bool
	CheckpointErr error
}

// OperationDelete is commitInfo.operation of an expiry commit.
const OperationDelete = "DELETE"

// expiryRule decides, for one file, whether all its rows are older than
// the cutoff.
type expiryRule struct {
	schema *Schema
	cutoff time.Time
	// Partition rules: the partition columns (logical names) and, for a
	// single column, its kind.
	partCols []string
	kind     Kind
	// Stats rule: the stats key (physical name) of the column.
	statsKey string
	byStats  bool
}

// newExpiryRule resolves opts.Column against the snapshot.
func newExpiryRule(s *Snapshot, column string, cutoff time.Time) (*expiryRule, error) {
	sc := s.schema
	isPart := func(c string) (string, bool) {
		for _, p := range s.metadata.PartitionColumns {
			if strings.EqualFold(p, c) {
				return p, true
			}
		}
		return "", false
	}
	var cols []string
	for _, c := range strings.Split(column, ",") {
		if c = strings.TrimSpace(c); c != "" {
			cols = append(cols, c)
		}
	}
	if len(cols) == 0 {
		return nil, errors.New("no column given")
	}
	r := &expiryRule{schema: sc, cutoff: cutoff}
	if len(cols) > 1 {
		if len(cols) > 3 {
			return nil, fmt.Errorf("columns %q: at most year,month,day", column)
		}
		for _, c := range cols {
			p, ok := isPart(c)
			i := sc.Index(c)
			if !ok || i < 0 {
				return nil, fmt.Errorf("column %q: a list of columns must name integer partition columns year,month,day", c)
			}
			switch sc.types[i].Kind {
			case KindInteger, KindLong, KindShort, KindByte:
			default:
				return nil, fmt.Errorf("column %q is %s: a list of columns must name integer partition columns year,month,day", c, sc.types[i])
			}
			r.partCols = append(r.partCols, p)
		}
		return r, nil
	}
	c := cols[0]
	i := sc.Index(c)
	if i < 0 {
		return nil, fmt.Errorf("column %q is not in the table schema", c)
	}
	r.kind = sc.types[i].Kind
	if p, ok := isPart(c); ok {
		switch r.kind {
		case KindDate, KindTimestamp, KindTimestampNTZ, KindString:
		case KindInteger, KindLong, KindShort, KindByte:
			// A lone integer partition column is a year (year[,month[,day]]).
		default:
			return nil, fmt.Errorf("partition column %q is %s, not a date, timestamp, string date or integer year", c, sc.types[i])
		}
		r.partCols = []string{p}
		return r, nil
	}
	switch r.kind {
	case KindDate, KindTimestamp, KindTimestampNTZ:
	default:
		return nil, fmt.Errorf("column %q is %s: a non-partition column must be a date or timestamp", c, sc.types[i])
	}
	r.byStats = true
	r.statsKey = PhysicalName(sc.fields[i].Name, sc.fields[i].Metadata)
	r.partCols = []string{sc.fields[i].Name}
	return r, nil
}

// olderThan reports whether the period [start, end) lies wholly before the
// cutoff.
func (r *expiryRule) olderThan(end time.Time) bool { return !end.After(r.cutoff) }

// partitionExpired judges the partition values of a file. A null value is
// never expired.
func (r *expiryRule) partitionExpired(pvals map[string]*string) (bool, error) {
	vals := make([]string, len(r.partCols))
	for i, c := range r.partCols {
		v, _ := r.schema.PartitionValue(pvals, c)
		if v == nil || *v == "" {
			return false, nil
		}
		vals[i] = *v
	}
	if len(r.partCols) > 1 || r.kind == KindInteger || r.kind == KindLong || r.kind == KindShort || r.kind == KindByte {
		return r.calendarExpired(vals)
	}
	v := vals[0]
	switch r.kind {
	case KindDate:
		d, err := ParseDate(v)
		if err != nil {
			return false, fmt.Errorf("partition value %s=%q: %w", r.partCols[0], v, err)
		}
		return r.olderThan(d.AddDate(0, 0, 1)), nil
	case KindTimestamp, KindTimestampNTZ:
		ts, err := ParsePartitionValue(DataType{Kind: r.kind}, &v)
		if err != nil {
			return false, fmt.Errorf("partition value %s=%q: %w", r.partCols[0], v, err)
		}
		return ts.(time.Time).Before(r.cutoff), nil
	case KindString:
		// An ISO date is a whole UTC day; a full timestamp an instant.
		if d, err := ParseDate(v); err == nil {
			return r.olderThan(d.AddDate(0, 0, 1)), nil
		}
		if ts, err := ParseTimestamp(v); err == nil {
			return ts.Before(r.cutoff), nil
		}
		return false, fmt.Errorf("partition value %s=%q is not an ISO date (YYYY-MM-DD) or timestamp", r.partCols[0], v)
	}
	return false, fmt.Errorf("partition column %s of kind %s", r.partCols[0], r.kind)
}

// calendarExpired judges integer year[,month[,day]] partition values: the
// partition is the whole year, month or day.
func (r *expiryRule) calendarExpired(vals []string) (bool, error) {
	var n [3]int
	n[1], n[2] = 1, 1
	for i, v := range vals {
		x, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return false, fmt.Errorf("partition value %s=%q is not an integer", r.partCols[i], v)
		}
		n[i] = x
	}
	if n[1] < 1 || n[1] > 12 || n[2] < 1 || n[2] > daysInMonth(n[0], time.Month(n[1])) {
		return false, fmt.Errorf("partition values %v are not a calendar date", vals)
	}
	start := time.Date(n[0], time.Month(n[1]), n[2], 0, 0, 0, 0, time.UTC)
	var end time.Time
	switch len(vals) {
	case 1:
		end = start.AddDate(1, 0, 0)
	case 2:
		end = start.AddDate(0, 1, 0)
	default:
		end = start.AddDate(0, 0, 1)
	}
	return r.olderThan(end), nil
}

// statsVerdict is what a file's statistics say about the column.
type statsVerdict int

const (
	statsExpired   statsVerdict = iota // every row older than the cutoff
	statsStraddles                     // rows on both sides of the cutoff
	statsNewer                         // no row older than the cutoff
	statsMissing                       // no min/max for the column
)

// statsVerdict judges a file by its statistics for the column: it expires
// when its maxValues is before the cutoff. Statistics hold milliseconds and
// Spark truncates the maximum, so the maximum plus 1 ms must not pass the
// cutoff; a date maximum covers its whole day. A file whose column is all
// null has no maximum and is kept (null never expires), as is a file
// without statistics.
func (r *expiryRule) statsVerdict(stats string) (statsVerdict, error) {
	if stats == "" {
		return statsMissing, nil
	}
	var st struct {
		MinValues map[string]json.RawMessage `json:"minValues"`
		MaxValues map[string]json.RawMessage `json:"maxValues"`
	}
	if err := json.Unmarshal([]byte(stats), &st); err != nil {
		return statsMissing, nil
	}
	bound := func(m map[string]json.RawMessage, isMax bool) (time.Time, bool, error) {
		raw, ok := m[r.statsKey]
		if !ok {
			return time.Time{}, false, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, false, nil
		}
		if r.kind == KindDate {
			d, err := ParseDate(s)
			if err != nil {
				return time.Time{}, false, fmt.Errorf("stats of %s: %q: %w", r.statsKey, s, err)
			}
			if isMax {
				d = d.AddDate(0, 0, 1)
			}
			return d, true, nil
		}
		v, err := ParsePartitionValue(DataType{Kind: r.kind}, &s)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("stats of %s: %q: %w", r.statsKey, s, err)
		}
		ts := v.(time.Time)
		if isMax {
			ts = ts.Add(time.Millisecond)
		}
		return ts, true, nil
	}
	end, ok, err := bound(st.MaxValues, true)
	if err != nil || !ok {
		return statsMissing, err
	}
	if r.olderThan(end) {
		return statsExpired, nil
	}
	if start, ok, err := bound(st.MinValues, false); err == nil && ok && start.Before(r.cutoff) {
		return statsStraddles, nil
	}
	return statsNewer, nil
}

// predicate renders the rows removed as commitInfo's predicate (Spark's
// DELETE form).
func (r *expiryRule) predicate() string {
	day := r.cutoff.Format("2006-01-02")
	if len(r.partCols) > 1 {
		y, m, d := r.cutoff.Date()
		c := r.partCols
		// The first partition not wholly before the cutoff.
		switch len(c) {
		case 2:
			return fmt.Sprintf("((%s < %d) OR (%s = %d AND %s < %d))", c[0], y, c[0], y, c[1], int(m))
		default:
			return fmt.Sprintf("((%s < %d) OR (%s = %d AND %s < %d) OR (%s = %d AND %s = %d AND %s < %d))",
				c[0], y, c[0], y, c[1], int(m), c[0], y, c[1], int(m), c[2], d)
		}
	}
	col := r.partCols[0]
	switch r.kind {
	case KindInteger, KindLong, KindShort, KindByte:
		return fmt.Sprintf("(%s < %d)", col, r.cutoff.Year())
	case KindDate:
		return fmt.Sprintf("(%s < '%s')", col, day)
	case KindString:
		return fmt.Sprintf("(%s < '%s')", col, day)
	}
	return fmt.Sprintf("(%s < '%s')", col, r.cutoff.Format("2006-01-02 15:04:05.999999"))
}

// Expire removes the data older than Now minus opts.Keep (in UTC) in one
// metadata-only commit: remove actions with dataChange=true, as Spark's
// DELETE of whole files or partitions writes, so change data feed readers
// see the rows deleted without any change data file. No file is deleted:
// Vacuum deletes them once they are older than
// delta.deletedFileRetentionDuration.
//
// When the column is a partition column, every file of a partition whose
// whole range lies before the cutoff goes: a date (or ISO-date string, or
// year,month,day) partition goes when the day ends by the cutoff, so the
// day the cutoff falls in is kept; a timestamp partition goes when its
// value is before the cutoff. Null partition values never expire.
//
// When the column is not a partition column, files are judged by their
// statistics: a file goes only when its maxValues for the column is before
// the cutoff. A file straddling the cutoff stays until all its rows have
// expired, and a file without statistics for the column (or whose column
// is all null) stays; both are counted in the result.
//
// The commit conflicts (ErrConflict, nothing committed) with a concurrent
// commit that removes one of the same files, e.g. a compaction; the caller
// retries later. A concurrent append is no conflict: its files (late rows
// of an expired partition included) stay until the next run. Nothing is
// committed when nothing has expired.
func (t *Table) Expire(ctx context.Context, opts ExpireOptions) (ExpireResult, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	uri := t.store.URI()
	if opts.Keep.IsZero() || opts.Keep.Years < 0 || opts.Keep.Months < 0 || opts.Keep.Days < 0 || opts.Keep.Duration < 0 {
		return ExpireResult{}, fmt.Errorf("expiring data of %s: retention %s must be positive", uri, opts.Keep)
	}
	if err := checkWritable(t.snap.protocol, t.snap.metadata, t.snap.schema); err != nil {
		return ExpireResult{}, fmt.Errorf("expiring data of %s: %w", uri, err)
	}
	if _, err := t.catchUp(ctx); err != nil {
		return ExpireResult{}, fmt.Errorf("expiring data of %s: %w", uri, err)
	}
	snap := t.snap
	if propertyTrue(snap.metadata.Configuration, "delta.appendOnly") {
		return ExpireResult{}, fmt.Errorf("expiring data of %s: the table is append-only (delta.appendOnly=true) and refuses removes", uri)
	}
	now := t.opts.Now()
	cutoff := opts.Keep.Cutoff(now)
	rule, err := newExpiryRule(snap, opts.Column, cutoff)
	if err != nil {
		return ExpireResult{}, fmt.Errorf("expiring data of %s: %w", uri, err)
	}
	res := ExpireResult{Version: snap.version, DryRun: opts.DryRun, Cutoff: cutoff, Predicate: rule.predicate(), ByStats: rule.byStats, RowsExact: true}
	partCols := snap.metadata.PartitionColumns
	byPart := map[string]*ExpiredPartition{}
	var removed []AddFile
	for _, f := range snap.Files() {
		if rule.byStats {
			v, err := rule.statsVerdict(f.Stats)
			if err != nil {
				return ExpireResult{}, fmt.Errorf("expiring data of %s: file %s: %w", uri, f.Path, err)
			}
			switch v {
			case statsStraddles:
				res.KeptStraddling++
				continue
			case statsMissing:
				res.KeptWithoutStats++
				continue
			case statsNewer:
				continue
			}
		} else {
			ok, err := rule.partitionExpired(f.PartitionValues)
			if err != nil {
				return ExpireResult{}, fmt.Errorf("expiring data of %s: file %s: %w", uri, f.Path, err)
			}
			if !ok {
				continue
			}
		}
		removed = append(removed, f)
		res.Files++
		res.Bytes += f.Size
		res.RemovedPaths = append(res.RemovedPaths, f.Path)
		rows, exact := liveRecords(&f)
		res.Rows += rows
		res.RowsExact = res.RowsExact && exact
		if len(partCols) == 0 {
			continue
		}
		vals := logicalPartitionValues(snap.schema, partCols, f.PartitionValues)
		kb, _ := json.Marshal(vals)
		p := byPart[string(kb)]
		if p == nil {
			p = &ExpiredPartition{Values: vals}
			byPart[string(kb)] = p
		}
		p.Files++
		p.Bytes += f.Size
		p.Rows += rows
	}
	for _, p := range byPart {
		res.Partitions = append(res.Partitions, *p)
	}
	sort.Slice(res.Partitions, func(i, j int) bool {
		return comparePartitionValues(partCols, res.Partitions[i].Values, res.Partitions[j].Values) < 0
	})
	if len(removed) == 0 {
		res.NoOp = true
		return res, nil
	}
	if opts.DryRun {
		return res, nil
	}
	acts := make([]Action, 0, len(removed))
	for _, f := range removed {
		acts = append(acts, Action{Remove: removeOf(f, now, true)})
	}
	// Spark writes the predicate list as JSON text, '<' unescaped.
	var pred strings.Builder
	enc := json.NewEncoder(&pred)
	enc.SetEscapeHTML(false)
	_ = enc.Encode([]string{res.Predicate})
	metrics := map[string]any{
		"numRemovedFiles":     strconv.Itoa(res.Files),
		"numAddedFiles":       "0",
		"numRemovedBytes":     strconv.FormatInt(res.Bytes, 10),
		"numAddedBytes":       "0",
		"numCopiedRows":       "0",
		"numAddedChangeFiles": "0",
	}
	if res.RowsExact {
		metrics["numDeletedRows"] = strconv.FormatInt(res.Rows, 10)
	}
	ci := map[string]any{
		"operation":           OperationDelete,
		"operationParameters": map[string]any{"predicate": strings.TrimSpace(pred.String())},
		"operationMetrics":    metrics,
		"isBlindAppend":       false,
	}
	v, _, err := t.commit(ctx, acts, ci, false)
	if err != nil {
		return res, fmt.Errorf("expiring data of %s before %s: %w", uri, cutoff.Format(time.RFC3339), err)
	}
	res.Version = v
	res.Checkpointed, res.CheckpointErr = t.maybeCheckpoint(ctx)
	return res, nil
}

// logicalPartitionValues returns a file's partition values keyed by the
// logical partition column names (they are keyed by physical name under
// column mapping).
func logicalPartitionValues(sc *Schema, partCols []string, pvals map[string]*string) map[string]*string {
	out := make(map[string]*string, len(partCols))
	for _, c := range partCols {
		v, _ := sc.PartitionValue(pvals, c)
		out[c] = v
	}
	return out
}

// comparePartitionValues orders partitions by their values in partition
// column order: null first, integers numerically, anything else (ISO dates
// and timestamps included) as strings.
func comparePartitionValues(partCols []string, a, b map[string]*string) int {
	for _, c := range partCols {
		x, y := a[c], b[c]
		switch {
		case x == nil && y == nil:
			continue
		case x == nil:
			return -1
		case y == nil:
			return 1
		}
		xi, ex := strconv.ParseInt(*x, 10, 64)
		yi, ey := strconv.ParseInt(*y, 10, 64)
		if ex == nil && ey == nil {
			if xi != yi {
				if xi < yi {
					return -1
				}
				return 1
			}
			continue
		}
		if c := strings.Compare(*x, *y); c != 0 {
			return c
		}
	}
	return 0
}
