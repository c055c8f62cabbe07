package delta

import (
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

func exprSchema(t *testing.T) *Schema {
	t.Helper()
	sc, err := NewSchema([]Field{
		{Name: "s", Type: "string", Nullable: true},
		{Name: "n", Type: "long", Nullable: true},
		{Name: "i", Type: "integer", Nullable: true},
		{Name: "d", Type: "double", Nullable: true},
		{Name: "b", Type: "boolean", Nullable: true},
		{Name: "ts", Type: "timestamp", Nullable: true},
		{Name: "dt", Type: "date", Nullable: true},
		{Name: "amt", Type: "decimal(10,2)", Nullable: true},
		{Name: "a_b", Type: "string", Nullable: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestExpressionEval(t *testing.T) {
	sc := exprSchema(t)
	ts := time.Date(2024, 3, 5, 14, 7, 9, 123000000, time.UTC)
	row := Row{"Hello World", int64(42), int32(7), 2.5, true, ts, time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC), Decimal{Unscaled: big.NewInt(1250), Scale: 2}, "x"}
	nulls := make(Row, len(row))
	cases := []struct {
		sql  string
		row  Row
		want any
	}{
		{"n > 0", row, true},
		{"n = 42L", row, true},
		{"n == 41 + 1", row, true},
		{"i <> 7", row, false},
		{"i != 8", row, true},
		{"n >= 42 AND i <= 7", row, true},
		{"n > 0", nulls, nil},
		{"n <=> NULL", nulls, true},
		{"n <=> 1", nulls, false},
		{"NULL <=> NULL", row, true},
		{"n IS NULL", nulls, true},
		{"n IS NOT NULL", row, true},
		// three-valued logic
		{"n > 0 AND FALSE", nulls, false},
		{"n > 0 AND TRUE", nulls, nil},
		{"n > 0 OR TRUE", nulls, true},
		{"n > 0 OR FALSE", nulls, nil},
		{"NOT (n > 0)", nulls, nil},
		{"NOT n > 100", row, true},
		{"i IN (1, 7, 9)", row, true},
		{"i NOT IN (1, 2)", row, true},
		{"i IN (1, NULL)", row, nil},
		{"i IN (7, NULL)", row, true},
		{"i BETWEEN 1 AND 7", row, true},
		{"i NOT BETWEEN 1 AND 7", row, false},
		{"s LIKE 'Hello%'", row, true},
		{"s LIKE 'H_llo W%d'", row, true},
		{"s NOT LIKE '%xyz%'", row, true},
		{"'50%' LIKE '50\\%'", row, true},
		{"n + i * 2", row, int64(56)},
		{"n - 50", row, int64(-8)},
		{"-i", row, int32(-7)},
		{"n % 5", row, int64(2)},
		{"n / 0", row, nil},
		{"n % 0", row, nil},
		{"i / 2", row, 3.5},
		{"d * 2", row, 5.0},
		{"amt * 2", row, Decimal{Unscaled: big.NewInt(2500), Scale: 2}},
		{"amt + 0.5", row, Decimal{Unscaled: big.NewInt(1300), Scale: 2}},
		{"amt > 12.49", row, true},
		{"CAST(ts AS DATE)", row, time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC)},
		{"cast(n AS STRING)", row, "42"},
		{"CAST('12' AS INT) + 1", row, int32(13)},
		{"CAST(d AS DECIMAL(5,1))", row, Decimal{Unscaled: big.NewInt(25), Scale: 1}},
		{"CAST(i AS double)", row, 7.0},
		{"CAST(d AS STRING)", row, "2.5"},
		{"CAST(ts AS STRING)", row, "2024-03-05 14:07:09.123"},
		{"CAST('true' AS BOOLEAN)", row, true},
		{"CASE WHEN n > 100 THEN 'big' WHEN n > 10 THEN 'mid' ELSE 'small' END", row, "mid"},
		{"CASE i WHEN 7 THEN 1 ELSE 0 END", row, int32(1)},
		{"CASE WHEN n > 100 THEN 'big' END", row, nil},
		{"length(s)", row, int32(11)},
		{"char_length('héllo')", row, int32(5)},
		{"UPPER(s)", row, "HELLO WORLD"},
		{"lower(s)", row, "hello world"},
		{"trim('  a b  ')", row, "a b"},
		{"substring(s, 1, 5)", row, "Hello"},
		{"substr(s, -5)", row, "World"},
		{"substring(s, 0, 2)", row, "He"},
		{"concat(s, '!', i)", row, "Hello World!7"},
		{"concat(s, NULL)", row, nil},
		{"s || '?'", row, "Hello World?"},
		{"coalesce(n, 0)", nulls, int64(0)},
		{"coalesce(NULL, i, 3)", row, int32(7)},
		{"abs(-i)", row, int32(7)},
		{"year(ts)", row, int32(2024)},
		{"month(dt)", row, int32(3)},
		{"day(ts)", row, int32(5)},
		{"dayofmonth(dt)", row, int32(5)},
		{"hour(ts)", row, int32(14)},
		{"to_date(ts)", row, time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC)},
		{"to_date('05/03/2024', 'dd/MM/yyyy')", row, time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC)},
		{"date_format(ts, 'yyyy-MM-dd HH:mm:ss')", row, "2024-03-05 14:07:09"},
		{"date_format(ts, 'yyyyMM')", row, "202403"},
		{"date_trunc('MONTH', ts)", row, time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)},
		{"date_trunc('hour', ts)", row, time.Date(2024, 3, 5, 14, 0, 0, 0, time.UTC)},
		{"date_trunc('YEAR', dt)", row, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"dt = DATE '2024-03-05'", row, true},
		{"ts > TIMESTAMP '2024-03-05 00:00:00'", row, true},
		{"dt < ts", row, true},
		{"`a_b` = 'x'", row, true},
		{"A_B = 'x'", row, true},
		{"b AND NOT false", row, true},
		{"'it\\'s'", row, "it's"},
		{"1.5e1 = 15", row, true},
		{"10Y + 1S", row, int16(11)},
	}
	for _, c := range cases {
		e, err := CompileExpression(c.sql, sc)
		if err != nil {
			t.Errorf("%s: compile: %v", c.sql, err)
			continue
		}
		got, err := e.Eval(c.row)
		if err != nil {
			t.Errorf("%s: eval: %v", c.sql, err)
			continue
		}
		if !sameValue(got, c.want) {
			t.Errorf("%s = %#v (%T), want %#v (%T)", c.sql, got, got, c.want, c.want)
		}
	}
}

func sameValue(a, b any) bool {
	if da, ok := a.(Decimal); ok {
		db, ok := b.(Decimal)
		return ok && da.Scale == db.Scale && da.Unscaled.Cmp(db.Unscaled) == 0
	}
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.Equal(tb)
	}
	return a == b
}

func TestExpressionEvalErrors(t *testing.T) {
	sc := exprSchema(t)
	row := Row{"abc", int64(9223372036854775807), int32(2147483647), nil, nil, nil, nil, nil, nil}
	for _, sql := range []string{"n + 1", "i * 2", "CAST(s AS INT)", "CAST(n AS INT)", "-CAST(-9223372036854775807L - 1 AS BIGINT)"} {
		e, err := CompileExpression(sql, sc)
		if err != nil {
			t.Errorf("%s: compile: %v", sql, err)
			continue
		}
		if v, err := e.Eval(row); err == nil {
			t.Errorf("%s: want an evaluation error, got %v", sql, v)
		}
	}
}

func TestExpressionCompileErrors(t *testing.T) {
	sc := exprSchema(t)
	cases := []struct {
		sql  string
		pos  int
		want string
	}{
		{"n >", 3, "unexpected end"},
		{"n > 0)", 5, "unexpected"},
		{"nope > 1", 0, "unknown column nope"},
		{"frobnicate(n)", 0, "unknown or unsupported function frobnicate"},
		{"n > current_date()", 4, "non-deterministic"},
		{"ts < current_timestamp", 5, "non-deterministic"},
		{"'abc", 0, "unterminated string"},
		{"n = 1 AND", 9, "unexpected end"},
		{"CAST(n AS wibble)", 10, "unsupported type"},
		{"s + b", 2, "needs numbers"},
		{"n = ts", 2, "cannot compare"},
		{"length()", 0, "takes 1 argument"},
		{"n # 1", 2, "unexpected character"},
		{"CASE END", 5, "unexpected keyword END"}, {"CASE n WHEN 1 ELSE 2 END", 14, "expected THEN"},
		{"date_trunc('fortnight', ts)", 11, "unsupported date_trunc unit"},
	}
	for _, c := range cases {
		_, err := CompileExpression(c.sql, sc)
		var ee *ExprError
		if !errors.As(err, &ee) {
			t.Errorf("%s: want *ExprError, got %v", c.sql, err)
			continue
		}
		if ee.Pos != c.pos || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.sql) {
			t.Errorf("%s: got %q (pos %d), want %q at %d", c.sql, err, ee.Pos, c.want, c.pos)
		}
	}
}
