package quality

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/claimx/claimx-connect/delta/storage"
)

// Expectation kinds.
const (
	KindFreshness     = "freshness"
	KindCompleteness  = "completeness"
	KindNullRate      = "null_rate"
	KindUnique        = "unique"
	KindRange         = "range"
	KindAllowedValues = "allowed_values"
	KindReferential   = "referential"
)

// Severities: a failed critical expectation makes `delta check` exit 1; a
// failed warning is reported only.
const (
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Config is a parsed expectations file.
type Config struct {
	// Tables by name.
	Tables map[string]*TableConfig
	// Expectations in file order.
	Expectations []*Expectation
	// Storage is the file's storage section: the endpoint, region and
	// path style of every table's store.
	Storage storage.Options
}

// TableConfig names a Delta table and how its rows are placed in time.
type TableConfig struct {
	Name string
	URI  string
	// TimeColumn is the timestamp (or date) column that windows and days
	// apply to when an expectation names none.
	TimeColumn string
	// DatePartitions are the partition columns that hold a row's UTC day:
	// [year, month, day] or one date (or "YYYY-MM-DD" string) column. They
	// let whole partitions be pruned or counted from the log.
	DatePartitions []string
}

// Expectation is one check. Which fields apply depends on Kind.
type Expectation struct {
	Name        string
	Table       string
	Kind        string
	Severity    string
	Description string
	// Line is where the expectation starts in the file.
	Line int

	// Window: the last Days calendar days in Location (0: the whole table),
	// today included or not.
	Days         int
	IncludeToday bool
	Location     *time.Location

	// Column is the checked column: freshness's timestamp, the timestamp
	// completeness counts rows by (default the table's), the column of
	// unique, range and allowed_values, referential's key.
	Column string
	// Columns are the null_rate columns.
	Columns []string

	MaxAge       time.Duration // freshness
	WorkingHours *WorkingHours // freshness

	MinRows   int64    // completeness
	MinRatio  *float64 // completeness
	Reference *Reference

	MaxNullFraction float64 // null_rate

	Min, Max any   // range: YAML scalars, typed by the column at evaluation
	Values   []any // allowed_values

	Where *Where        // referential
	Grace time.Duration // referential: rows newer than this are not judged yet
}

// Reference is what completeness compares with (a table or a Kafka topic)
// or what referential looks keys up in (a table).
type Reference struct {
	Table        string
	Column       string
	KafkaTopic   string
	KafkaBrokers []string
}

// Where is a referential filter: Column = Equals.
type Where struct {
	Column string
	Equals any
}

// WorkingHours are when freshness is judged.
type WorkingHours struct {
	Days       []time.Weekday
	Start, End time.Duration // since local midnight
	Location   *time.Location
}

// String renders the hours as in messages: "Mon-Fri 08:00-18:00 America/Chicago".
func (w *WorkingHours) String() string {
	names := make([]string, len(w.Days))
	for i, d := range w.Days {
		names[i] = d.String()[:3]
	}
	days := strings.Join(names, ",")
	if len(w.Days) > 2 {
		contiguous := true
		for i := 1; i < len(w.Days); i++ {
			if w.Days[i] != w.Days[i-1]+1 {
				contiguous = false
			}
		}
		if contiguous {
			days = names[0] + "-" + names[len(names)-1]
		}
	}
	return fmt.Sprintf("%s %s-%s %s", days, clock(w.Start), clock(w.End), w.Location)
}

func clock(d time.Duration) string {
	return fmt.Sprintf("%02d:%02d", int(d.Hours()), int(d.Minutes())%60)
}

// The fields each kind accepts, besides name, table, kind, severity and
// description.
var kindFields = map[string][]string{
	KindFreshness:     {"column", "max_age", "working_hours"},
	KindCompleteness:  {"column", "days", "include_today", "timezone", "min_rows", "min_ratio", "reference"},
	KindNullRate:      {"columns", "max_null_fraction", "days", "include_today", "timezone"},
	KindUnique:        {"column", "days", "include_today", "timezone"},
	KindRange:         {"column", "min", "max", "days", "include_today", "timezone"},
	KindAllowedValues: {"column", "values", "days", "include_today", "timezone"},
	KindReferential:   {"column", "where", "reference", "grace", "days", "include_today", "timezone"},
}

var commonFields = []string{"name", "table", "kind", "severity", "description"}

// Kinds returns the expectation kinds, sorted.
func Kinds() []string {
	out := make([]string, 0, len(kindFields))
	for k := range kindFields {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// LoadConfig reads and parses an expectations file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading expectations file: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses an expectations file after replacing ${VAR} and
// ${VAR:default} with the environment, as the pipelines' configs do.
func ParseConfig(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(ExpandEnv(string(data))), &root); err != nil {
		return nil, fmt.Errorf("parsing expectations: %w", err)
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("parsing expectations: the file is empty")
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the file must be a mapping with tables and expectations", doc.Line)
	}
	fields, err := mappingFields(doc, "the file", []string{"storage", "tables", "expectations"})
	if err != nil {
		return nil, err
	}
	cfg := &Config{Tables: map[string]*TableConfig{}}
	if n := fields["storage"]; n != nil {
		if cfg.Storage, err = parseStorage(n); err != nil {
			return nil, err
		}
	}
	tables := fields["tables"]
	if tables == nil || tables.Kind != yaml.MappingNode || len(tables.Content) == 0 {
		return nil, fmt.Errorf("tables: a mapping of table name to URI is required")
	}
	for i := 0; i < len(tables.Content); i += 2 {
		tc, err := parseTable(tables.Content[i].Value, tables.Content[i+1])
		if err != nil {
			return nil, err
		}
		cfg.Tables[tc.Name] = tc
	}
	exps := fields["expectations"]
	if exps == nil || exps.Kind != yaml.SequenceNode || len(exps.Content) == 0 {
		return nil, fmt.Errorf("expectations: a list of expectations is required")
	}
	seen := map[string]int{}
	for i, n := range exps.Content {
		e, err := parseExpectation(cfg, i, n)
		if err != nil {
			return nil, err
		}
		if line, dup := seen[e.Name]; dup {
			return nil, fmt.Errorf("expectation %q (line %d): the name is already used on line %d", e.Name, e.Line, line)
		}
		seen[e.Name] = e.Line
		cfg.Expectations = append(cfg.Expectations, e)
	}
	return cfg, nil
}

// Select returns the expectations named, in file order; no names means all.
func (c *Config) Select(names []string) ([]*Expectation, error) {
	if len(names) == 0 {
		return c.Expectations, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []*Expectation
	for _, e := range c.Expectations {
		if want[e.Name] {
			out = append(out, e)
			delete(want, e.Name)
		}
	}
	if len(want) > 0 {
		var missing []string
		for n := range want {
			missing = append(missing, n)
		}
		slices.Sort(missing)
		return nil, fmt.Errorf("no expectation named %s", strings.Join(missing, ", "))
	}
	return out, nil
}

func parseStorage(n *yaml.Node) (storage.Options, error) {
	var o storage.Options
	f, err := mappingFields(n, "storage", []string{"endpoint", "region", "force_path_style"})
	if err != nil {
		return o, err
	}
	if o.Endpoint, err = scalarString(f["endpoint"], "storage", "endpoint"); err != nil {
		return o, err
	}
	if o.Region, err = scalarString(f["region"], "storage", "region"); err != nil {
		return o, err
	}
	if v := f["force_path_style"]; v != nil {
		b, err := scalarBool(v, "storage", "force_path_style")
		if err != nil {
			return o, err
		}
		if b {
			o.Extra = map[string]string{storage.S3ForcePathStyle: "true"}
		}
	}
	return o, nil
}

func parseTable(name string, n *yaml.Node) (*TableConfig, error) {
	where := fmt.Sprintf("tables.%s (line %d)", name, n.Line)
	if name == "" {
		return nil, fmt.Errorf("%s: a table needs a name", where)
	}
	tc := &TableConfig{Name: name}
	if n.Kind == yaml.ScalarNode {
		tc.URI = strings.TrimSpace(n.Value)
	} else {
		f, err := mappingFields(n, where, []string{"uri", "time_column", "date_partitions"})
		if err != nil {
			return nil, err
		}
		if tc.URI, err = scalarString(f["uri"], where, "uri"); err != nil {
			return nil, err
		}
		if tc.TimeColumn, err = scalarString(f["time_column"], where, "time_column"); err != nil {
			return nil, err
		}
		if tc.DatePartitions, err = stringList(f["date_partitions"], where, "date_partitions"); err != nil {
			return nil, err
		}
		if k := len(tc.DatePartitions); k != 0 && k != 1 && k != 3 {
			return nil, fmt.Errorf("%s: date_partitions: give [year, month, day] or one date column, not %d columns", where, k)
		}
	}
	if tc.URI == "" {
		return nil, fmt.Errorf("%s: uri is required (after ${VAR} expansion it is empty)", where)
	}
	return tc, nil
}

func parseExpectation(cfg *Config, idx int, n *yaml.Node) (*Expectation, error) {
	where := fmt.Sprintf("expectation %d (line %d)", idx+1, n.Line)
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: an expectation is a mapping", where)
	}
	raw, err := mappingFields(n, where, nil)
	if err != nil {
		return nil, err
	}
	e := &Expectation{Line: n.Line, Severity: SeverityCritical, Location: time.UTC}
	if e.Name, err = scalarString(raw["name"], where, "name"); err != nil {
		return nil, err
	}
	if e.Name == "" {
		return nil, fmt.Errorf("%s: name is required", where)
	}
	where = fmt.Sprintf("expectation %q (line %d)", e.Name, n.Line)
	if e.Kind, err = scalarString(raw["kind"], where, "kind"); err != nil {
		return nil, err
	}
	allowed, ok := kindFields[e.Kind]
	if !ok {
		return nil, fmt.Errorf("%s: kind %q is not one of %s", where, e.Kind, strings.Join(Kinds(), ", "))
	}
	for key, v := range raw {
		if !slices.Contains(commonFields, key) && !slices.Contains(allowed, key) {
			return nil, fmt.Errorf("%s: field %q (line %d) does not apply to kind %s (its fields: %s)", where, key, v.Line, e.Kind, strings.Join(allowed, ", "))
		}
	}
	if e.Table, err = scalarString(raw["table"], where, "table"); err != nil {
		return nil, err
	}
	tc := cfg.Tables[e.Table]
	if tc == nil {
		return nil, fmt.Errorf("%s: table %q is not in tables", where, e.Table)
	}
	if e.Description, err = scalarString(raw["description"], where, "description"); err != nil {
		return nil, err
	}
	if s, err := scalarString(raw["severity"], where, "severity"); err != nil {
		return nil, err
	} else if s != "" {
		if s != SeverityWarning && s != SeverityCritical {
			return nil, fmt.Errorf("%s: severity %q is not warning or critical", where, s)
		}
		e.Severity = s
	}
	if e.Column, err = scalarString(raw["column"], where, "column"); err != nil {
		return nil, err
	}
	// The window.
	e.IncludeToday = e.Kind != KindCompleteness
	if v := raw["days"]; v != nil {
		d, err := scalarInt(v, where, "days")
		if err != nil {
			return nil, err
		}
		if d < 1 {
			return nil, fmt.Errorf("%s: days must be at least 1, got %d", where, d)
		}
		e.Days = int(d)
	}
	if v := raw["include_today"]; v != nil {
		if e.IncludeToday, err = scalarBool(v, where, "include_today"); err != nil {
			return nil, err
		}
	}
	if tz, err := scalarString(raw["timezone"], where, "timezone"); err != nil {
		return nil, err
	} else if tz != "" {
		if e.Location, err = time.LoadLocation(tz); err != nil {
			return nil, fmt.Errorf("%s: timezone %q: %w", where, tz, err)
		}
	}

	switch e.Kind {
	case KindFreshness:
		err = e.parseFreshness(raw, tc, where)
	case KindCompleteness:
		err = e.parseCompleteness(cfg, raw, tc, where)
	case KindNullRate:
		err = e.parseNullRate(raw, where)
	case KindUnique:
		if e.Column == "" {
			err = fmt.Errorf("%s: column is required", where)
		}
	case KindRange:
		err = e.parseRange(raw, where)
	case KindAllowedValues:
		err = e.parseAllowedValues(raw, where)
	case KindReferential:
		err = e.parseReferential(cfg, raw, where)
	}
	if err != nil {
		return nil, err
	}
	if e.Days > 0 && e.Kind != KindCompleteness {
		if err := windowable(tc, "", e.Location); err != nil {
			return nil, fmt.Errorf("%s: days: %w", where, err)
		}
	}
	return e, nil
}

// windowable says whether rows of tc can be placed in days of loc: by a
// time column, or by date partitions when the days are UTC days.
func windowable(tc *TableConfig, column string, loc *time.Location) error {
	if column != "" || tc.TimeColumn != "" {
		return nil
	}
	if len(tc.DatePartitions) == 0 {
		return fmt.Errorf("table %s has neither a time_column nor date_partitions to place rows in days", tc.Name)
	}
	if loc != time.UTC {
		return fmt.Errorf("table %s has only date_partitions (UTC days) and no time_column, so days in %s cannot be told apart", tc.Name, loc)
	}
	return nil
}

func (e *Expectation) parseFreshness(raw map[string]*yaml.Node, tc *TableConfig, where string) error {
	if e.Column == "" {
		e.Column = tc.TimeColumn
	}
	if e.Column == "" {
		return fmt.Errorf("%s: column is required (or the table's time_column)", where)
	}
	var err error
	if e.MaxAge, err = scalarDuration(raw["max_age"], where, "max_age"); err != nil {
		return err
	}
	if e.MaxAge <= 0 {
		return fmt.Errorf("%s: max_age is required and must be positive", where)
	}
	if n := raw["working_hours"]; n != nil {
		if e.WorkingHours, err = parseWorkingHours(n, where+": working_hours"); err != nil {
			return err
		}
	}
	return nil
}

func (e *Expectation) parseCompleteness(cfg *Config, raw map[string]*yaml.Node, tc *TableConfig, where string) error {
	if e.Days == 0 {
		return fmt.Errorf("%s: days is required", where)
	}
	if err := windowable(tc, e.Column, e.Location); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	e.MinRows = 1
	if v := raw["min_rows"]; v != nil {
		n, err := scalarInt(v, where, "min_rows")
		if err != nil {
			return err
		}
		if n < 0 {
			return fmt.Errorf("%s: min_rows must not be negative, got %d", where, n)
		}
		e.MinRows = n
	}
	if v := raw["min_ratio"]; v != nil {
		r, err := scalarFloat(v, where, "min_ratio")
		if err != nil {
			return err
		}
		if r <= 0 {
			return fmt.Errorf("%s: min_ratio must be above 0, got %g", where, r)
		}
		e.MinRatio = &r
	}
	if n := raw["reference"]; n != nil {
		ref, err := parseReference(cfg, n, where+": reference", true)
		if err != nil {
			return err
		}
		if ref.Table != "" {
			if err := windowable(cfg.Tables[ref.Table], ref.Column, e.Location); err != nil {
				return fmt.Errorf("%s: reference: %w", where, err)
			}
		}
		e.Reference = ref
	}
	if e.MinRatio != nil && e.Reference == nil {
		return fmt.Errorf("%s: min_ratio needs a reference (a table or a kafka_topic)", where)
	}
	if e.Reference != nil && e.MinRatio == nil {
		return fmt.Errorf("%s: reference needs min_ratio", where)
	}
	return nil
}

func (e *Expectation) parseNullRate(raw map[string]*yaml.Node, where string) error {
	var err error
	if e.Columns, err = stringList(raw["columns"], where, "columns"); err != nil {
		return err
	}
	if len(e.Columns) == 0 {
		return fmt.Errorf("%s: columns is required", where)
	}
	if v := raw["max_null_fraction"]; v != nil {
		if e.MaxNullFraction, err = scalarFloat(v, where, "max_null_fraction"); err != nil {
			return err
		}
	}
	if e.MaxNullFraction < 0 || e.MaxNullFraction > 1 {
		return fmt.Errorf("%s: max_null_fraction must be within 0 and 1, got %g", where, e.MaxNullFraction)
	}
	return nil
}

func (e *Expectation) parseRange(raw map[string]*yaml.Node, where string) error {
	if e.Column == "" {
		return fmt.Errorf("%s: column is required", where)
	}
	var err error
	if v := raw["min"]; v != nil {
		if e.Min, err = scalarValue(v, where, "min"); err != nil {
			return err
		}
	}
	if v := raw["max"]; v != nil {
		if e.Max, err = scalarValue(v, where, "max"); err != nil {
			return err
		}
	}
	if e.Min == nil && e.Max == nil {
		return fmt.Errorf("%s: min or max is required", where)
	}
	return nil
}

func (e *Expectation) parseAllowedValues(raw map[string]*yaml.Node, where string) error {
	if e.Column == "" {
		return fmt.Errorf("%s: column is required", where)
	}
	n := raw["values"]
	if n == nil || n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		return fmt.Errorf("%s: values: a non-empty list is required", where)
	}
	for i, c := range n.Content {
		v, err := scalarValue(c, where, fmt.Sprintf("values[%d]", i))
		if err != nil {
			return err
		}
		e.Values = append(e.Values, v)
	}
	return nil
}

func (e *Expectation) parseReferential(cfg *Config, raw map[string]*yaml.Node, where string) error {
	if e.Column == "" {
		return fmt.Errorf("%s: column (the key) is required", where)
	}
	n := raw["reference"]
	if n == nil {
		return fmt.Errorf("%s: reference (table and column) is required", where)
	}
	ref, err := parseReference(cfg, n, where+": reference", false)
	if err != nil {
		return err
	}
	if ref.Column == "" {
		ref.Column = e.Column
	}
	e.Reference = ref
	if w := raw["where"]; w != nil {
		wf, err := mappingFields(w, where+": where", []string{"column", "equals"})
		if err != nil {
			return err
		}
		e.Where = &Where{}
		if e.Where.Column, err = scalarString(wf["column"], where+": where", "column"); err != nil {
			return err
		}
		if e.Where.Column == "" || wf["equals"] == nil {
			return fmt.Errorf("%s: where needs column and equals", where)
		}
		if e.Where.Equals, err = scalarValue(wf["equals"], where+": where", "equals"); err != nil {
			return err
		}
	}
	if v := raw["grace"]; v != nil {
		if e.Grace, err = scalarDuration(v, where, "grace"); err != nil {
			return err
		}
		if e.Grace < 0 {
			return fmt.Errorf("%s: grace must not be negative", where)
		}
	}
	if e.Grace > 0 && cfg.Tables[e.Table].TimeColumn == "" {
		return fmt.Errorf("%s: grace needs the table's time_column", where)
	}
	return nil
}

func parseReference(cfg *Config, n *yaml.Node, where string, kafka bool) (*Reference, error) {
	keys := []string{"table", "column"}
	if kafka {
		keys = append(keys, "kafka_topic", "kafka_brokers")
	}
	f, err := mappingFields(n, where, keys)
	if err != nil {
		return nil, err
	}
	ref := &Reference{}
	if ref.Table, err = scalarString(f["table"], where, "table"); err != nil {
		return nil, err
	}
	if ref.Column, err = scalarString(f["column"], where, "column"); err != nil {
		return nil, err
	}
	if kafka {
		if ref.KafkaTopic, err = scalarString(f["kafka_topic"], where, "kafka_topic"); err != nil {
			return nil, err
		}
		if b := f["kafka_brokers"]; b != nil && b.Kind == yaml.SequenceNode {
			if ref.KafkaBrokers, err = stringList(b, where, "kafka_brokers"); err != nil {
				return nil, err
			}
		} else {
			s, err := scalarString(b, where, "kafka_brokers")
			if err != nil {
				return nil, err
			}
			if s == "" {
				s = ExpandEnv("${KAFKA_BOOTSTRAP_SERVERS:localhost:9092}")
			}
			ref.KafkaBrokers = splitList(s)
		}
	}
	switch {
	case ref.Table != "" && ref.KafkaTopic != "":
		return nil, fmt.Errorf("%s: give a table or a kafka_topic, not both", where)
	case ref.Table == "" && ref.KafkaTopic == "":
		if kafka {
			return nil, fmt.Errorf("%s: a table or a kafka_topic is required", where)
		}
		return nil, fmt.Errorf("%s: table is required", where)
	case ref.Table != "" && cfg.Tables[ref.Table] == nil:
		return nil, fmt.Errorf("%s: table %q is not in tables", where, ref.Table)
	case ref.KafkaTopic != "" && len(ref.KafkaBrokers) == 0:
		return nil, fmt.Errorf("%s: kafka_brokers is empty", where)
	}
	return ref, nil
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func weekday(s string) (time.Weekday, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) < 3 {
		return 0, false
	}
	d, ok := weekdays[s[:3]]
	if !ok || !strings.HasPrefix(strings.ToLower(d.String()), s) {
		return 0, false
	}
	return d, true
}

func parseWorkingHours(n *yaml.Node, where string) (*WorkingHours, error) {
	f, err := mappingFields(n, where, []string{"days", "start", "end", "timezone"})
	if err != nil {
		return nil, err
	}
	w := &WorkingHours{Location: time.UTC}
	var days []string
	if d := f["days"]; d != nil && d.Kind == yaml.ScalarNode {
		days = splitList(d.Value)
	} else if days, err = stringList(d, where, "days"); err != nil {
		return nil, err
	}
	if len(days) == 0 {
		return nil, fmt.Errorf("%s: days is required (for example [Mon, Tue, Wed, Thu, Fri] or Mon-Fri)", where)
	}
	set := map[time.Weekday]bool{}
	for _, s := range days {
		from, to, isRange := strings.Cut(s, "-")
		a, ok1 := weekday(from)
		b := a
		ok2 := true
		if isRange {
			b, ok2 = weekday(to)
		}
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%s: days: %q is not a day of the week (Mon … Sun) or a range of them", where, s)
		}
		for d := a; ; d = (d + 1) % 7 {
			set[d] = true
			if d == b {
				break
			}
		}
	}
	for d := time.Sunday; d <= time.Saturday; d++ {
		if set[d] {
			w.Days = append(w.Days, d)
		}
	}
	for _, k := range []struct {
		name string
		dst  *time.Duration
	}{{"start", &w.Start}, {"end", &w.End}} {
		s, err := scalarString(f[k.name], where, k.name)
		if err != nil {
			return nil, err
		}
		if s == "" {
			return nil, fmt.Errorf("%s: %s is required (HH:MM)", where, k.name)
		}
		t, err := time.Parse("15:04", s)
		if err != nil {
			if s != "24:00" || k.name != "end" {
				return nil, fmt.Errorf("%s: %s %q is not a clock time HH:MM", where, k.name, s)
			}
			*k.dst = 24 * time.Hour
			continue
		}
		*k.dst = time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute
	}
	if w.End <= w.Start {
		return nil, fmt.Errorf("%s: end %s must be after start %s", where, clock(w.End), clock(w.Start))
	}
	if tz, err := scalarString(f["timezone"], where, "timezone"); err != nil {
		return nil, err
	} else if tz != "" {
		if w.Location, err = time.LoadLocation(tz); err != nil {
			return nil, fmt.Errorf("%s: timezone %q: %w", where, tz, err)
		}
	}
	return w, nil
}

// mappingFields returns the values of a mapping by key, refusing keys not in
// allowed (nil: any key) and repeated keys.
func mappingFields(n *yaml.Node, where string, allowed []string) (map[string]*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: a mapping is expected (line %d)", where, n.Line)
	}
	out := map[string]*yaml.Node{}
	for i := 0; i < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if allowed != nil && !slices.Contains(allowed, k) {
			return nil, fmt.Errorf("%s: unknown field %q (line %d); known: %s", where, k, n.Content[i].Line, strings.Join(allowed, ", "))
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%s: field %q is given twice (line %d)", where, k, n.Content[i].Line)
		}
		out[k] = n.Content[i+1]
	}
	return out, nil
}

func scalarString(n *yaml.Node, where, field string) (string, error) {
	if n == nil {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("%s: %s (line %d) must be a single value", where, field, n.Line)
	}
	return strings.TrimSpace(n.Value), nil
}

func scalarInt(n *yaml.Node, where, field string) (int64, error) {
	s, err := scalarString(n, where, field)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %s %q is not a whole number", where, field, s)
	}
	return v, nil
}

func scalarFloat(n *yaml.Node, where, field string) (float64, error) {
	s, err := scalarString(n, where, field)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %s %q is not a number", where, field, s)
	}
	return v, nil
}

func scalarBool(n *yaml.Node, where, field string) (bool, error) {
	s, err := scalarString(n, where, field)
	if err != nil {
		return false, err
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%s: %s %q is not true or false", where, field, s)
	}
	return v, nil
}

var dayDuration = regexp.MustCompile(`^(\d+)d$`)

// scalarDuration parses a Go duration ("90m", "1h30m") or whole days ("7d").
func scalarDuration(n *yaml.Node, where, field string) (time.Duration, error) {
	s, err := scalarString(n, where, field)
	if err != nil || s == "" {
		return 0, err
	}
	if m := dayDuration.FindStringSubmatch(s); m != nil {
		d, _ := strconv.Atoi(m[1])
		return time.Duration(d) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %s %q is not a duration (like 60m, 2h or 7d)", where, field, s)
	}
	return d, nil
}

// scalarValue keeps a value as its text: it is typed by the column it is
// compared with when the table's schema is known.
func scalarValue(n *yaml.Node, where, field string) (any, error) {
	if n.Kind != yaml.ScalarNode {
		return nil, fmt.Errorf("%s: %s (line %d) must be a single value", where, field, n.Line)
	}
	if n.Tag == "!!null" {
		return nil, fmt.Errorf("%s: %s (line %d) must not be null", where, field, n.Line)
	}
	return n.Value, nil
}

func stringList(n *yaml.Node, where, field string) ([]string, error) {
	if n == nil {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s: %s (line %d) must be a list", where, field, n.Line)
	}
	var out []string
	for _, c := range n.Content {
		if c.Kind != yaml.ScalarNode || strings.TrimSpace(c.Value) == "" {
			return nil, fmt.Errorf("%s: %s (line %d): every entry must be a non-empty value", where, field, c.Line)
		}
		out = append(out, strings.TrimSpace(c.Value))
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

var envRe = regexp.MustCompile(`\$\{([0-9A-Za-z_.]+)(?::([^}]*))?\}`)

// ExpandEnv replaces ${VAR} and ${VAR:default} with the environment, as
// benthos does with a config: an unset or empty VAR takes the default.
func ExpandEnv(s string) string {
	return envRe.ReplaceAllStringFunc(s, func(m string) string {
		sub := envRe.FindStringSubmatch(m)
		if v := os.Getenv(sub[1]); v != "" {
			return v
		}
		return sub[2]
	})
}
