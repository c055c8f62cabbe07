//go:build conformance

package conformance

// The forms stream's Delta tables as the analysts read them (issue 16):
// Spark, delta-rs and DuckDB must see in itel_cabinet_forms,
// itel_cabinet_attachments and itel_cabinet_submissions exactly the rows
// claimx-connect's own engine reads — every value (doubles to the bit,
// timestamps to the microsecond, array<long> photo ids, the other_answers
// map) and every column type — and the forms section of docs/queries.sql
// must run on Spark. checkFormsReaders does it for any directory holding
// the three tables (the forms stream's output in forms_test.go, or the
// tables TestFormsTablesReaders writes here).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/claimxsim"
	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/forms"
)

// formsTableNames are the forms stream's tables, by their directory (and
// s3://claimx-lake/NAME) name.
var formsTableNames = []string{"itel_cabinet_forms", "itel_cabinet_attachments", "itel_cabinet_submissions"}

// formsReaderTypes: how each reader names the Delta types the forms tables use.
var formsReaderTypes = map[string]map[string]string{
	"spark": {"string": "string", "long": "bigint", "integer": "int", "double": "double", "boolean": "boolean",
		"timestamp": "timestamp", "array<long>": "array<bigint>", "map<string,string>": "map<string,string>"},
	"deltars": {"string": "string", "long": "long", "integer": "integer", "double": "double", "boolean": "boolean",
		"timestamp": "timestamp", "array<long>": "array<long>", "map<string,string>": "map<string,string>"},
	"duckdb": {"string": "VARCHAR", "long": "BIGINT", "integer": "INTEGER", "double": "DOUBLE", "boolean": "BOOLEAN",
		"timestamp": "TIMESTAMP WITH TIME ZONE", "array<long>": "BIGINT[]", "map<string,string>": "MAP(VARCHAR, VARCHAR)"},
}

// formsReaderOut is read_forms.py's document.
type formsReaderOut struct {
	Reader         string                       `json:"reader"`
	Versions       map[string]any               `json:"versions"`
	Startup        float64                      `json:"startup_seconds"`
	Tables         map[string]*formsReaderTable `json:"tables"`
	Queries        []formsQuery                 `json:"queries"`
	QueriesSeconds float64                      `json:"queries_seconds"`
}

type formsReaderTable struct {
	Error     string      `json:"error"`
	Traceback string      `json:"traceback"`
	Count     json.Number `json:"count"`
	Schema    []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		Nullable bool   `json:"nullable"`
		Arrow    string `json:"arrow"`
	} `json:"schema"`
	Key     string           `json:"key"`
	Rows    []map[string]any `json:"rows"`
	Seconds float64          `json:"seconds"`
}

type formsQuery struct {
	Index   int      `json:"index"`
	SQL     string   `json:"sql"`
	Status  string   `json:"status"`
	Rows    *int     `json:"rows"`
	Error   string   `json:"error"`
	Missing []string `json:"missing"`
	Seconds float64  `json:"seconds"`
}

// engineTable is one forms table as claimx-connect's engine reads it.
type engineTable struct {
	name, dir string
	schema    *delta.Schema
	version   int64
	files     int
	rows      []map[string]any
}

// engineRows reads every live row of the table in dir with the delta
// engine (delta.Open, Snapshot.Files, Snapshot.ReadFile): the reference the
// other readers are compared with.
func engineRows(t *testing.T, name, dir string) *engineTable {
	t.Helper()
	st := openLocal(t, dir)
	tbl, err := delta.Open(t.Context(), st, delta.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("opening %s at %s: %v", name, dir, err)
	}
	snap := tbl.Snapshot()
	e := &engineTable{name: name, dir: dir, schema: snap.Schema(), version: tbl.Version()}
	names := e.schema.Names()
	for _, f := range snap.Files() {
		e.files++
		rows, err := snap.ReadFile(t.Context(), st, f)
		if err != nil {
			t.Fatalf("reading %s version %d file %s: %v", name, e.version, f.Path, err)
		}
		for _, r := range rows {
			m := make(map[string]any, len(names))
			for i, n := range names {
				m[n] = r[i]
			}
			e.rows = append(e.rows, m)
		}
	}
	return e
}

// checkFormsReaders reads the forms tables under formsDir
// (<formsDir>/itel_cabinet_forms, …_attachments, …_submissions; an absent
// one is skipped, all absent is an error) with deltars, duckdb and spark
// (skipped without java, as requireIntegration says) through
// read_forms.py, and checks for each reader and table: COUNT(*) and the
// rows it returns equal the engine's rows (delta.Open + Snapshot.ReadFile),
// matched by key (attachment_key, else form_key) and compared value by value
// (doubles exact, timestamps to the microsecond, arrays element by element,
// maps entry by entry); the column names, order and types (formsReaderTypes;
// nullability too for spark and deltars); for spark, that every statement
// of docs/queries.sql naming the given tables ran, that the data-quality
// statements (HAVING) found nothing, and that the latest-response and
// not-accepted queries return as many rows as the engine's rows imply.
func checkFormsReaders(t *testing.T, formsDir string) {
	t.Helper()
	checkTablesReaders(t, formsDir, formsTableNames)
}

// checkTablesReaders: delta-rs, DuckDB and Spark read each named table under
// dir as the engine does, and Spark runs the statements of docs/queries.sql
// naming them.
func checkTablesReaders(t *testing.T, formsDir string, names []string) {
	t.Helper()
	var tables []*engineTable
	var args []string
	for _, name := range names {
		dir := filepath.Join(formsDir, name)
		if _, err := os.Stat(filepath.Join(dir, "_delta_log")); err != nil {
			t.Logf("forms readers: no table %s under %s: not checked", name, formsDir)
			continue
		}
		e := engineRows(t, name, dir)
		t.Logf("forms readers: %s version %d, %d rows in %d files (engine)", name, e.version, len(e.rows), e.files)
		tables = append(tables, e)
		args = append(args, name+"="+dir)
	}
	if len(tables) == 0 {
		t.Errorf("forms readers: none of %v under %s", names, formsDir)
		return
	}
	queries := filepath.Join(repoRoot(t), "docs", "queries.sql")
	for _, reader := range []string{"deltars", "duckdb", "spark"} {
		t.Run(reader, func(t *testing.T) {
			a := append([]string{"--reader", reader}, args...)
			if reader == "spark" {
				if _, err := exec.LookPath("java"); err != nil {
					requireIntegration(t, "java not found: Spark cannot run")
				}
				a = append([]string{"--queries", queries}, a...)
			}
			out, took := runReadForms(t, a)
			t.Logf("%s %v: started in %.1fs, whole run %s", reader, out.Versions, out.Startup, took.Round(100*time.Millisecond))
			for _, e := range tables {
				got := out.Tables[e.name]
				if got == nil {
					t.Errorf("%s: no result for %s", reader, e.name)
					continue
				}
				if got.Error != "" {
					t.Errorf("%s could not read %s: %s\n%s", reader, e.name, got.Error, got.Traceback)
					continue
				}
				checkFormsSchema(t, reader, e, got)
				checkFormsRows(t, reader, e, got)
			}
			if reader == "spark" {
				checkFormsQueries(t, out, tables, queries)
			}
		})
	}
}

// runReadForms runs read_forms.py in a fresh directory (Spark's warehouse
// and metastore land there) and decodes its document.
func runReadForms(t *testing.T, args []string) (*formsReaderOut, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	script := filepath.Join(repoRoot(t), "tests", "conformance", "read_forms.py")
	cmd := exec.CommandContext(ctx, conformancePython(t), append([]string{script}, args...)...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "CLAIMX_SPARK_JARS="+sparkJars(t), "TMPDIR="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("read_forms.py %s: %v\nstderr (tail):\n%s", strings.Join(args, " "), err, tail(stderr.String(), 4000))
	}
	// The JVM may print to stdout too: the result is the last line.
	lines := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
	doc := lines[len(lines)-1]
	if !bytes.HasPrefix(doc, []byte(`{"reader"`)) {
		t.Fatalf("read_forms.py printed no result document:\n%s", tail(string(raw), 2000))
	}
	var out formsReaderOut
	if err := decodeNumbers(doc, &out); err != nil {
		t.Fatalf("read_forms.py output: %v\n%s", err, tail(string(doc), 2000))
	}
	return &out, time.Since(start)
}

// checkFormsSchema: the reader's columns are the table's, in order, with
// the reader's names of their types.
func checkFormsSchema(t *testing.T, reader string, e *engineTable, got *formsReaderTable) {
	t.Helper()
	names := e.schema.Names()
	if len(got.Schema) != len(names) {
		t.Errorf("%s %s: %d columns, the table has %d", reader, e.name, len(got.Schema), len(names))
	}
	seen := map[string]int{}
	for i, n := range names {
		if i >= len(got.Schema) {
			break
		}
		c := got.Schema[i]
		typ := e.schema.Type(i).String()
		want, ok := formsReaderTypes[reader][typ]
		if !ok {
			t.Errorf("%s %s: column %s has type %s, which formsReaderTypes does not name", reader, e.name, n, typ)
			continue
		}
		if c.Name != n || c.Type != want {
			t.Errorf("%s %s: column %d is %s %s, want %s %s", reader, e.name, i, c.Name, c.Type, n, want)
		}
		// DuckDB's DESCRIBE says YES for every column.
		if reader != "duckdb" && c.Nullable != e.schema.Field(i).Nullable {
			t.Errorf("%s %s: column %s nullable %v, the table says %v", reader, e.name, n, c.Nullable, e.schema.Field(i).Nullable)
		}
		seen[want]++
		if reader == "deltars" && typ == "timestamp" && !strings.Contains(c.Arrow, "UTC") {
			t.Errorf("deltars %s: timestamp column %s reads as arrow %s, want UTC", e.name, n, c.Arrow)
		}
	}
	t.Logf("%s %s: %d columns, types %v", reader, e.name, len(got.Schema), seen)
}

// checkFormsRows: COUNT(*) and every row the reader returns, by key, value
// by value.
func checkFormsRows(t *testing.T, reader string, e *engineTable, got *formsReaderTable) {
	t.Helper()
	if n, err := got.Count.Int64(); err != nil || n != int64(len(e.rows)) {
		t.Errorf("%s %s: COUNT(*) %s, the engine reads %d rows", reader, e.name, got.Count, len(e.rows))
	}
	if len(got.Rows) != len(e.rows) {
		t.Errorf("%s %s: %d rows returned, the engine reads %d", reader, e.name, len(got.Rows), len(e.rows))
	}
	key := got.Key
	if e.schema.Index(key) < 0 {
		t.Errorf("%s %s: rows keyed by %q, not a column", reader, e.name, key)
		return
	}
	want := map[string]map[string]any{}
	for _, r := range e.rows {
		k := fmt.Sprint(r[key])
		if _, dup := want[k]; dup {
			t.Errorf("engine %s: %s %s twice", e.name, key, k)
		}
		want[k] = r
	}
	names := e.schema.Names()
	bad, values := 0, 0
	report := func(format string, a ...any) {
		bad++
		if bad <= 10 {
			t.Errorf(format, a...)
		}
	}
	seen := map[string]bool{}
	for _, r := range got.Rows {
		k, _ := r[key].(string)
		w, ok := want[k]
		if !ok {
			report("%s %s: row %s=%q the engine does not have", reader, e.name, key, k)
			continue
		}
		if seen[k] {
			report("%s %s: row %s=%q twice", reader, e.name, key, k)
		}
		seen[k] = true
		if len(r) != len(names) {
			report("%s %s %s: %d columns in the row, want %d", reader, e.name, k, len(r), len(names))
		}
		for i, n := range names {
			typ := e.schema.Type(i)
			wc, werr := formsCanon(typ, w[n])
			if werr != nil {
				t.Fatalf("engine %s %s column %s: %v", e.name, k, n, werr)
			}
			gv, present := r[n]
			gc, gerr := formsCanon(typ, gv)
			values++
			switch {
			case !present:
				report("%s %s %s: column %s missing", reader, e.name, k, n)
			case gerr != nil:
				report("%s %s %s column %s (%s): %v; engine %s", reader, e.name, k, n, typ, gerr, short(wc))
			case gc != wc:
				report("%s %s %s column %s (%s): %s, engine %s", reader, e.name, k, n, typ, short(gc), short(wc))
			}
		}
	}
	for k := range want {
		if !seen[k] {
			report("%s %s: row %s=%q not returned", reader, e.name, key, k)
		}
	}
	if bad > 10 {
		t.Errorf("%s %s: %d differences in all", reader, e.name, bad)
	}
	t.Logf("%s %s: %d rows, %d values compared, %d differences (%.1fs)", reader, e.name, len(got.Rows), values, bad, got.Seconds)
}

// formsCanon renders a value of type typ, from the engine (Go values, see
// delta.Row) or from a reader (JSON decoded with UseNumber), as one
// comparable string: doubles by their exact float64, integers exactly,
// timestamps as ISO-8601 UTC micros, arrays in order, maps sorted by key.
// A value that does not have the type's shape is an error.
func formsCanon(typ delta.DataType, v any) (string, error) {
	if v == nil {
		return "null", nil
	}
	switch typ.Kind {
	case delta.KindString:
		if s, ok := v.(string); ok {
			return strconv.Quote(s), nil
		}
	case delta.KindBoolean:
		if b, ok := v.(bool); ok {
			return strconv.FormatBool(b), nil
		}
	case delta.KindLong, delta.KindInteger:
		switch x := v.(type) {
		case int64:
			return strconv.FormatInt(x, 10), nil
		case int32:
			return strconv.FormatInt(int64(x), 10), nil
		case json.Number:
			i, err := strconv.ParseInt(x.String(), 10, 64)
			if err != nil {
				return "", fmt.Errorf("%s is not an integer", x)
			}
			return strconv.FormatInt(i, 10), nil
		}
	case delta.KindDouble:
		switch x := v.(type) {
		case float64:
			return "d:" + strconv.FormatFloat(x, 'g', -1, 64), nil
		case json.Number:
			f, err := strconv.ParseFloat(x.String(), 64)
			if err != nil {
				return "", fmt.Errorf("%s is not a double", x)
			}
			return "d:" + strconv.FormatFloat(f, 'g', -1, 64), nil
		}
	case delta.KindTimestamp:
		switch x := v.(type) {
		case time.Time:
			return isoMicros(x), nil
		case string:
			ts, err := time.Parse("2006-01-02T15:04:05.000000Z", x)
			if err != nil {
				return "", fmt.Errorf("timestamp %q is not ISO-8601 UTC with microseconds", x)
			}
			return isoMicros(ts), nil
		}
	case delta.KindArray:
		if a, ok := v.([]any); ok {
			parts := make([]string, len(a))
			for i, el := range a {
				c, err := formsCanon(*typ.Elem, el)
				if err != nil {
					return "", fmt.Errorf("[%d]: %w", i, err)
				}
				parts[i] = c
			}
			return "[" + strings.Join(parts, ",") + "]", nil
		}
	case delta.KindMap:
		var keys []string
		vals := map[string]string{}
		add := func(k, x any) error {
			kc, err := formsCanon(*typ.Key, k)
			if err != nil {
				return fmt.Errorf("key: %w", err)
			}
			vc, err := formsCanon(*typ.Value, x)
			if err != nil {
				return fmt.Errorf("[%s]: %w", kc, err)
			}
			if _, dup := vals[kc]; dup {
				return fmt.Errorf("key %s twice", kc)
			}
			keys = append(keys, kc)
			vals[kc] = vc
			return nil
		}
		switch x := v.(type) {
		case []delta.MapEntry:
			for _, me := range x {
				if err := add(me.Key, me.Value); err != nil {
					return "", err
				}
			}
		case map[string]any:
			for k, el := range x {
				if err := add(k, el); err != nil {
					return "", err
				}
			}
		default:
			return "", fmt.Errorf("%T is not a map", v)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ":" + vals[k]
		}
		return "{" + strings.Join(parts, ",") + "}", nil
	default:
		return "", fmt.Errorf("type %s is not one the forms tables use", typ)
	}
	return "", fmt.Errorf("%T %v is not a %s", v, v, typ)
}

// formsStatements are the statements of docs/queries.sql that name one of
// the forms tables, split as tests/docker/run_queries.py splits them
// (comment lines dropped, a line ending in ';' ends one).
func formsStatements(t *testing.T, path string, tables []string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range tables {
		names = append(names, regexp.QuoteMeta(n))
	}
	re := regexp.MustCompile(`(^|[^A-Za-z0-9_])(` + strings.Join(names, "|") + `)($|[^A-Za-z0-9_])`)
	var out, cur []string
	for _, line := range strings.Split(string(b), "\n") {
		s := strings.TrimSpace(line)
		if s == "" || strings.HasPrefix(s, "--") {
			continue
		}
		cur = append(cur, line)
		if strings.HasSuffix(s, ";") {
			st := strings.Join(cur, "\n")
			if re.MatchString(st) {
				out = append(out, st)
			}
			cur = nil
		}
	}
	return out
}

// checkFormsQueries: Spark ran every forms statement of docs/queries.sql
// (skipping only those naming an absent table), the data-quality ones found
// nothing, and two answers agree with the engine's rows.
func checkFormsQueries(t *testing.T, out *formsReaderOut, tables []*engineTable, path string) {
	t.Helper()
	byName := map[string]*engineTable{}
	var given []string
	for _, e := range tables {
		byName[e.name] = e
		given = append(given, e.name)
	}
	want := formsStatements(t, path, given)
	// Statements after the forms section that name only other tables (the
	// SLA table's) are skipped by the runner and are not forms statements.
	ran := 0
	for _, q := range out.Queries {
		other := q.Status == "skipped" && len(q.Missing) > 0
		for _, m := range q.Missing {
			if byName[m] != nil {
				other = false
			}
		}
		if !other {
			ran++
		}
	}
	if ran != len(want) || len(want) == 0 {
		t.Errorf("spark ran %d forms statements of docs/queries.sql, the file has %d", ran, len(want))
	}
	ok := 0
	for _, q := range out.Queries {
		switch q.Status {
		case "ok":
			ok++
			t.Logf("  ok    %2d %5d rows %5.2fs  %s", q.Index, deref(q.Rows), q.Seconds, short(q.SQL))
		case "skipped":
			for _, m := range q.Missing {
				if byName[m] != nil {
					t.Errorf("spark skipped statement %d for table %s, which was given: %s", q.Index, m, short(q.SQL))
				}
			}
			t.Logf("  skip  %2d (no %v)  %s", q.Index, q.Missing, short(q.SQL))
			continue
		default:
			t.Errorf("spark: docs/queries.sql statement %d %s: %s\n%s", q.Index, q.Status, q.Error, q.SQL)
			continue
		}
		if strings.Contains(q.SQL, "HAVING") && deref(q.Rows) != 0 {
			t.Errorf("spark: data-quality statement %d found %d rows, want none: %s", q.Index, deref(q.Rows), short(q.SQL))
		}
	}
	t.Logf("docs/queries.sql forms section on Spark: %d of %d statements ok in %.1fs", ok, len(out.Queries), out.QueriesSeconds)

	// Answers the engine's rows imply: the latest response per assignment
	// has one row per assignment; the not-accepted query one row per form
	// response without an accepted submission (the rejection joined on).
	fm, sub := byName["itel_cabinet_forms"], byName["itel_cabinet_submissions"]
	if fm == nil {
		return
	}
	assignments := map[string]bool{}
	for _, r := range fm.rows {
		assignments[fmt.Sprint(r["assignment_id"])] = true
	}
	expect := []struct {
		marker string // a text only that statement has
		rows   int
	}{{"COUNT(*) OVER (PARTITION BY assignment_id) AS responses", len(assignments)}}
	if sub != nil {
		accepted := map[string]bool{}
		for _, r := range sub.rows {
			if r["status"] == "accepted" {
				accepted[r["form_key"].(string)] = true
			}
		}
		n := 0
		for _, r := range fm.rows {
			if !accepted[r["form_key"].(string)] {
				n++
			}
		}
		expect = append(expect, struct {
			marker string
			rows   int
		}{"LEFT ANTI JOIN", n})
	}
	for _, x := range expect {
		found := false
		for _, q := range out.Queries {
			if !strings.Contains(q.SQL, x.marker) || q.Status != "ok" {
				continue
			}
			found = true
			if deref(q.Rows) != x.rows {
				t.Errorf("spark: statement %d (%s) returned %d rows, the engine's rows imply %d", q.Index, x.marker, deref(q.Rows), x.rows)
			} else {
				t.Logf("spark: statement %d (%s): %d rows, as the engine's rows imply", q.Index, x.marker, x.rows)
			}
		}
		if !found {
			t.Errorf("spark: no forms statement of docs/queries.sql with %q ran", x.marker)
		}
	}
}

// ------------------------------------------------------------ the tables ---

// TestFormsTablesReaders writes the three forms tables with the project's
// Delta engine from simulator forms, the way the forms stream fills them
// (pipelines/forms.yaml), in several commits with checkpoints, and checks
// that Spark, delta-rs and DuckDB read them as the engine does.
func TestFormsTablesReaders(t *testing.T) {
	conformancePython(t) // skip early without the readers
	began := time.Now()
	dir := t.TempDir()
	fm, att, sub := buildFormsTables(t, dir)
	t.Logf("wrote %d forms, %d attachments, %d submissions in %s", fm, att, sub, time.Since(began).Round(time.Millisecond))
	for name, n := range map[string]int{"itel_cabinet_forms": fm, "itel_cabinet_attachments": att, "itel_cabinet_submissions": sub} {
		if got := len(engineRows(t, name, filepath.Join(dir, name)).rows); got != n {
			t.Fatalf("%s: the engine reads %d rows, %d were written", name, got, n)
		}
	}
	checkFormsReaders(t, dir)
	t.Logf("timing: total %s", time.Since(began).Round(time.Second))
}

// formsTableProps are the forms stream's table properties, with checkpoints
// often so the readers start from one.
var formsTableProps = map[string]string{
	"delta.enableChangeDataFeed":     "true",
	"delta.autoOptimize.autoCompact": "true",
	"delta.checkpointInterval":       "3",
}

// buildFormsTables writes the three tables under dir and returns their row
// counts.
func buildFormsTables(t *testing.T, dir string) (nForms, nAttachments, nSubmissions int) {
	t.Helper()
	bodies := completedITelForms(t)
	mapping, err := forms.LoadMapping(filepath.Join(repoRoot(t), "pipelines", "forms", "itel_cabinet_form.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var formRows, attRows, subRows []map[string]any
	for i, body := range bodies {
		row, err := mapping.Apply(body)
		if err != nil {
			t.Fatalf("form %d (assignment %v): %v", i, body["assignmentId"], err)
		}
		f, a, s := streamRows(i, row)
		formRows = append(formRows, f)
		attRows = append(attRows, a...)
		if s != nil {
			subRows = append(subRows, s)
		}
	}
	// Several commits per table, of uneven sizes.
	writeFormsTable(t, dir, "itel_cabinet_forms", formRows, 7)
	writeFormsTable(t, dir, "itel_cabinet_attachments", attRows, 23)
	writeFormsTable(t, dir, "itel_cabinet_submissions", subRows, 11)
	return len(formRows), len(attRows), len(subRows)
}

// completedITelForms are the completed iTel Cabinet Repair Forms of a
// simulator, as the ClaimX API serves them, with: one form missing a group
// of cabinets (NULL answers), two with an unknown question (other_answers),
// awkward text answers, doubles that are not short decimals, and one form
// completed again later (same assignment, a second form response).
func completedITelForms(t *testing.T) []map[string]any {
	t.Helper()
	sim, err := claimxsim.New(claimxsim.Config{Seed: 16, Assignments: 240})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, a := range sim.Assignments() {
		if a.TaskID == claimxsim.ITelTemplateID && a.Status == claimxsim.StatusCompleted {
			ids = append(ids, a.AssignmentID)
		}
	}
	if len(ids) < 12 {
		t.Fatalf("the simulator seeds %d completed iTel forms, want at least 12", len(ids))
	}
	for i, d := range map[int]claimxsim.FormDefect{1: claimxsim.DefectMissingGroup, 2: claimxsim.DefectUnknownQuestion, 5: claimxsim.DefectUnknownQuestion} {
		if err := sim.DamageForm(ids[i], d); err != nil {
			t.Fatal(err)
		}
	}
	var out []map[string]any
	for i, id := range ids {
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, fmt.Sprintf("/customTasks/assignment/%d?full=true", id), nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("assignment %d: status %d: %s", id, rec.Code, rec.Body)
		}
		dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
		dec.UseNumber()
		var body map[string]any
		if err := dec.Decode(&body); err != nil {
			t.Fatalf("assignment %d: %v", id, err)
		}
		if i%4 == 0 {
			setAnswer(body, "Additional notes", map[string]any{"type": "text", "text": awkwardStrings[(i/4)%len(awkwardStrings)]})
		}
		if i%3 == 0 {
			v := []float64{0.1 + 0.2, 12345.678901234567, 1e-7, 2.5}[(i/3)%4]
			setAnswer(body, "Lower cabinets linear feet", map[string]any{"type": "number", "text": fmt.Sprint(v), "numberAnswer": map[string]any{"value": v}})
		}
		out = append(out, body)
	}
	// A re-completion: the same assignment answered again 30 hours later.
	again := cloneJSON(t, out[3])
	again["formResponseId"] = "recompleted" + fmt.Sprint(again["formResponseId"])
	done, err := time.Parse(time.RFC3339Nano, fmt.Sprint(again["dateCompleted"]))
	if err != nil {
		t.Fatalf("dateCompleted of assignment %v: %v", again["assignmentId"], err)
	}
	again["dateCompleted"] = done.Add(30 * time.Hour).Format("2006-01-02T15:04:05.000Z")
	setAnswer(again, "Countertop linear feet", map[string]any{"type": "number", "text": "17.75", "numberAnswer": map[string]any{"value": 17.75}})
	return append(out, again)
}

// setAnswer replaces the answer of the question with this text.
func setAnswer(body map[string]any, question string, answer map[string]any) {
	resp, _ := body["response"].(map[string]any)
	groups, _ := resp["groups"].([]any)
	for _, g := range groups {
		qas, _ := g.(map[string]any)["questionAndAnswers"].([]any)
		for _, q := range qas {
			if qm := q.(map[string]any); strings.EqualFold(fmt.Sprint(qm["questionText"]), question) {
				qm["responseAnswerExport"] = answer
			}
		}
	}
}

func cloneJSON(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// streamRows adds the forms stream's own columns to a form's row and builds
// its attachments rows (stored, already_stored and rejected photos) and its
// submission (accepted, replayed or rejected; none for every ninth form:
// not submitted yet).
func streamRows(i int, row map[string]any) (map[string]any, []map[string]any, map[string]any) {
	formKey := fmt.Sprintf("%v:%v", row["assignment_id"], row["form_response_id"])
	done, _ := row["date_completed"].(time.Time)
	processed := done.Add(time.Duration(1+i)*time.Second + time.Duration(i*7919)*time.Microsecond)
	row["form_key"] = formKey
	row["event_id"] = fmt.Sprintf("evt-%v-%d", row["assignment_id"], i)
	row["task_created_at"] = done.Add(-time.Duration(3+i%40)*time.Hour - time.Duration(i*104729)*time.Microsecond)
	row["processed_timestamp"] = processed
	var atts []map[string]any
	for _, col := range []string{"overview_photo_media_ids", "cabinet_damage_photo_media_ids", "countertop_photo_media_ids"} {
		ids, _ := row[col].([]any)
		for _, id := range ids {
			n := len(atts) + i
			mid := id.(int64)
			a := map[string]any{
				"attachment_key": fmt.Sprintf("%s:%d", formKey, mid), "form_key": formKey,
				"assignment_id": row["assignment_id"], "project_id": row["project_id"],
				"form_response_id": row["form_response_id"], "event_id": row["event_id"],
				"media_id": mid, "question_column": col,
				"file_name": fmt.Sprintf("IMG_%d.jpg", mid), "content_type": "image/jpeg",
				"link_refreshes": int32(n % 3), "download_ms": int64(40 + n*13),
				"processed_timestamp": processed,
			}
			switch {
			case n%7 == 3:
				a["status"], a["reason"], a["size_bytes"] = "rejected", "0-byte photo: ClaimX served an empty body", int64(0)
			case n%7 == 5:
				a["status"], a["reason"], a["size_bytes"], a["content_type"] = "rejected", "oversize: 3145728 bytes, max_size 2097152", int64(3145728), "image/png"
			default:
				a["status"] = "stored"
				if n%5 == 0 {
					a["status"] = "already_stored"
				}
				a["size_bytes"] = int64(50_000 + mid%97*1031)
				sum := sha256.Sum256([]byte(fmt.Sprint(mid)))
				a["sha256"] = hex.EncodeToString(sum[:])
				a["object_key"] = fmt.Sprintf("%v/%v/%d.jpg", row["project_id"], row["assignment_id"], mid)
				a["object_uri"] = "s3://claimx-attachments/" + a["object_key"].(string)
			}
			atts = append(atts, a)
		}
	}
	row["photo_count"] = int32(len(atts))
	if i%9 == 4 {
		return row, atts, nil
	}
	s := map[string]any{
		"form_key": formKey, "assignment_id": row["assignment_id"], "project_id": row["project_id"],
		"form_response_id": row["form_response_id"], "event_id": row["event_id"],
		"idempotency_key": fmt.Sprintf("%v-%v", row["assignment_id"], row["form_response_id"]),
		"payload_version": "1", "status": "accepted", "replayed": false, "http_status": int32(201),
		"itel_reference": fmt.Sprintf("ITL-%06d", 1000+i), "attempts": int32(1 + i%3),
		"photo_count":  int32(len(atts)),
		"submitted_at": processed.Add(time.Duration(250+i) * time.Millisecond),
	}
	switch i % 6 {
	case 2:
		s["replayed"], s["http_status"] = true, int32(200)
	case 5:
		s["status"], s["http_status"], s["itel_reference"] = "rejected", int32(422), nil
		s["error"] = `{"error":"invalid payload","field":"answers.lower_cabinets_linear_feet"}`
	}
	return row, atts, s
}

// writeFormsTable creates the table name under dir with its schema file and
// appends rows in commits of at most per rows.
func writeFormsTable(t *testing.T, dir, name string, rows []map[string]any, per int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "schemas", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := delta.ParseSchemaFile(b)
	if err != nil {
		t.Fatalf("schema of %s: %v", name, err)
	}
	tbl, err := delta.Create(t.Context(), openLocal(t, filepath.Join(dir, name)), delta.CreateOptions{
		Schema: sc, Properties: formsTableProps, Name: name, Description: "conformance: forms readers",
	})
	if err != nil {
		t.Fatalf("creating %s: %v", name, err)
	}
	for start, batch := 0, 0; start < len(rows); batch++ {
		end := min(start+per, len(rows))
		req := delta.AppendRequest{Operation: delta.OperationStreamingUpdate, Txns: []delta.Txn{{AppID: name, Version: int64(batch)}}}
		for _, r := range rows[start:end] {
			row, err := sc.RowFromJSON(r)
			if err != nil {
				t.Fatalf("%s row %v: %v", name, r[sc.Names()[0]], err)
			}
			req.Rows = append(req.Rows, row)
		}
		res, err := tbl.Append(t.Context(), req)
		if err != nil {
			t.Fatalf("appending to %s: %v", name, err)
		}
		if res.CheckpointErr != nil {
			t.Fatalf("checkpoint of %s version %d: %v", name, res.Version, res.CheckpointErr)
		}
		start = end
	}
}
