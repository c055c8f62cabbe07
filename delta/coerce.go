package delta

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/claimx/claimx-connect/internal/jsontext"
)

// Row is one record in the column order of a Schema. Each value is nil (SQL
// NULL) or the Go type of its column:
//
//	string    string
//	long      int64
//	integer   int32
//	short     int16
//	byte      int8
//	float     float32
//	double    float64
//	boolean   bool
//	binary    []byte
//	date      time.Time (the UTC calendar day is used)
//	timestamp time.Time (microseconds are kept, anything finer is cut)
//	timestamp_ntz time.Time, the wall-clock reading in the UTC location
//	          (never converted between zones)
//	decimal   Decimal
//	struct    []any, one value per field in field order
//	array     []any
//	map       []MapEntry{Key, Value}, ordered
//
// Nested values follow the same rules at every level: nil is NULL, allowed
// only where the field, element (containsNull) or map value
// (valueContainsNull) is nullable; map keys are never NULL.
//
// Append checks every value against its column and reports a mismatch with
// the column's name; Schema.RowFromJSON builds rows from decoded JSON.
type Row []any

// Decimal is an exact decimal value: Unscaled × 10^-Scale.
type Decimal struct {
	Unscaled *big.Int
	Scale    int
}

// String returns the decimal in plain notation, e.g. "-12.50".
func (d Decimal) String() string {
	if d.Unscaled == nil {
		return "<nil>"
	}
	s := new(big.Int).Abs(d.Unscaled).String()
	neg := d.Unscaled.Sign() < 0
	if d.Scale > 0 {
		for len(s) <= d.Scale {
			s = "0" + s
		}
		s = s[:len(s)-d.Scale] + "." + s[len(s)-d.Scale:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// ParseDecimal parses a plain or exponent decimal literal into a Decimal
// with the given scale and at most precision digits. Digits beyond the scale
// must be zeros: a value is never rounded.
func ParseDecimal(s string, precision, scale int) (Decimal, error) {
	r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	if !ok {
		return Decimal{}, errors.New("not a decimal number")
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
	if !r.IsInt() {
		return Decimal{}, fmt.Errorf("has more than %d digits after the decimal point", scale)
	}
	u := new(big.Int).Set(r.Num())
	if decimalDigits(u) > precision {
		return Decimal{}, fmt.Errorf("has more than %d digits (decimal(%d,%d))", precision, precision, scale)
	}
	return Decimal{Unscaled: u, Scale: scale}, nil
}

func decimalDigits(u *big.Int) int {
	if u.Sign() == 0 {
		return 1
	}
	return len(new(big.Int).Abs(u).String())
}

// rescale returns d's unscaled value at scale, or an error if digits would
// be lost or precision exceeded.
func (d Decimal) rescale(precision, scale int) (*big.Int, error) {
	if d.Unscaled == nil {
		return nil, errors.New("decimal with nil unscaled value")
	}
	u := d.Unscaled
	switch {
	case d.Scale < scale:
		u = new(big.Int).Mul(u, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale-d.Scale)), nil))
	case d.Scale > scale:
		q, m := new(big.Int).QuoRem(u, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d.Scale-scale)), nil), new(big.Int))
		if m.Sign() != 0 {
			return nil, fmt.Errorf("%s has more than %d digits after the decimal point", d, scale)
		}
		u = q
	}
	if decimalDigits(u) > precision {
		return nil, fmt.Errorf("%s has more than %d digits", d, precision)
	}
	return u, nil
}

// maxValueInMessage bounds how much of a bad value an error message quotes,
// so a 1 MB JSON blob does not end up in a log line.
const maxValueInMessage = 64

func describeValue(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(truncate(x, maxValueInMessage))
	case json.Number:
		return truncate(string(x), maxValueInMessage) + " (number)"
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64) + " (number)"
	case bool:
		return strconv.FormatBool(x) + " (boolean)"
	case map[string]any:
		b, _ := json.Marshal(x)
		return truncate(string(b), maxValueInMessage) + " (object)"
	case []any:
		b, _ := json.Marshal(x)
		return truncate(string(b), maxValueInMessage) + " (array)"
	default:
		return truncate(fmt.Sprintf("%v", x), maxValueInMessage) + fmt.Sprintf(" (%T)", x)
	}
}

// ConversionError is returned when a value cannot be stored in a column.
type ConversionError struct {
	Column string
	Type   string
	Value  string // a truncated description of the value
	Reason string
}

// Error names the column, its type, the (truncated) value and the reason.
func (e *ConversionError) Error() string {
	return fmt.Sprintf("column %q (%s): cannot use %s: %s", e.Column, e.Type, e.Value, e.Reason)
}

// RowFromJSON converts one decoded JSON object (from encoding/json, with or
// without UseNumber) into a Row of this schema. Keys the schema lacks are
// ignored (see UnknownColumns); a missing or null key gives NULL, which is an
// error for a non-nullable column. Conversions: RFC 3339 strings (any offset,
// converted to UTC; no zone means UTC) or "YYYY-MM-DD" to timestamp;
// "YYYY-MM-DD" to date; numbers and numeric strings to the numeric types
// with range checks and no rounding; objects and arrays to their JSON text
// for string columns; base64 to binary; ISO 8601 strings WITHOUT offset to
// timestamp_ntz; objects to struct (fields by name, ignoring case; unknown
// keys ignored, see UnknownColumns) and to map (keys converted to the key
// type), arrays to array. The *ConversionError of a nested value names its
// full path, e.g. info.tags[2] or attrs["k"].
func (s *Schema) RowFromJSON(m map[string]any) (Row, error) {
	row := make(Row, len(s.fields))
	for i := range s.fields {
		f := &s.fields[i]
		raw, ok := m[f.Name]
		if !ok || raw == nil {
			if !f.Nullable {
				return nil, &ConversionError{Column: f.Name, Type: s.types[i].String(), Value: "null", Reason: "the column is not nullable and the value is missing or null"}
			}
			continue
		}
		if _, isTime := raw.(time.Time); !isTime || s.types[i].Kind != KindTimestampNTZ {
			raw = goValueAsJSON(raw)
		}
		v, err := convertAny(s.types[i], raw)
		if err != nil {
			return nil, conversionErrorAt(f.Name, s.types[i], raw, err)
		}
		row[i] = v
	}
	return row, nil
}

// UnknownColumns returns, sorted, the keys of m that are not columns of s,
// and, as dotted paths (e.g. "info.extra", "items[].note"), the keys of
// objects given for struct columns that the struct lacks.
func (s *Schema) UnknownColumns(m map[string]any) []string {
	var out []string
	for k, v := range m {
		i, ok := s.index[strings.ToLower(k)]
		if !ok {
			out = append(out, k)
			continue
		}
		if s.types[i].Kind.Nested() && v != nil {
			out = unknownNested(s.types[i], goValueAsJSON(v), s.fields[i].Name, out)
		}
	}
	sort.Strings(out)
	return out
}

// WithJSONColumns returns s widened by a nullable column for every key of m
// it lacks (sorted by name), with a type inferred from the value: string for
// strings, objects and arrays, long for whole numbers, double for other
// numbers, boolean for booleans. Null values infer nothing. Unknown keys of
// an object given for an EXISTING struct column become new nullable fields
// of that struct (at any depth, same inference). It returns s itself when
// nothing is added; the result is what Append's SchemaMerge expects.
func (s *Schema) WithJSONColumns(m map[string]any) (*Schema, error) {
	var unknown []string
	for k := range m {
		if _, ok := s.index[strings.ToLower(k)]; !ok {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	fields := s.Fields()
	nestedChanged := false
	for i := range fields {
		if !s.types[i].Kind.Nested() {
			continue
		}
		raw, ok := lookupKey(m, fields[i].Name)
		if !ok || raw == nil {
			continue
		}
		if nt, c := widenNested(s.types[i], raw); c {
			fields[i].DataType = &nt
			nestedChanged = true
		}
	}
	if len(unknown) == 0 && !nestedChanged {
		return s, nil
	}
	for _, k := range unknown {
		t, ok := InferType(m[k])
		if !ok {
			continue
		}
		fields = append(fields, Field{Name: k, Type: t.String(), Nullable: true})
	}
	if len(fields) == len(s.fields) && !nestedChanged {
		return s, nil
	}
	ns, err := NewSchema(fields)
	if err != nil {
		return nil, fmt.Errorf("widening schema from JSON keys: %w", err)
	}
	return ns, nil
}

// InferType returns the Delta type a JSON value would get as a new column;
// false for null.
func InferType(v any) (DataType, bool) {
	switch x := goValueAsJSON(v).(type) {
	case nil:
		return DataType{}, false
	case bool:
		return DataType{Kind: KindBoolean}, true
	case json.Number:
		if _, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return DataType{Kind: KindLong}, true
		}
		return DataType{Kind: KindDouble}, true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return DataType{Kind: KindLong}, true
		}
		return DataType{Kind: KindDouble}, true
	default:
		return DataType{Kind: KindString}, true
	}
}

// ConvertJSONValue converts one non-null decoded JSON value to the Go type of
// t (see Row). The error says why, without naming the column.
func ConvertJSONValue(t DataType, v any) (any, error) {
	if x, ok := v.(time.Time); ok && t.Kind == KindTimestampNTZ {
		// A Go time carries its own wall clock: keep it, zone dropped.
		return time.Date(x.Year(), x.Month(), x.Day(), x.Hour(), x.Minute(), x.Second(), x.Nanosecond()/1000*1000, time.UTC), nil
	}
	v = goValueAsJSON(v)
	switch t.Kind {
	case KindString:
		switch x := v.(type) {
		case string:
			return x, nil
		case json.Number:
			return string(x), nil
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64), nil
		case bool:
			return strconv.FormatBool(x), nil
		case map[string]any, []any:
			s, err := jsontext.EncodeString(x, true)
			if err != nil {
				return nil, fmt.Errorf("encoding as JSON text: %w", err)
			}
			return s, nil
		}
	case KindLong, KindInteger, KindShort, KindByte:
		n, err := jsonInt(v)
		if err != nil {
			return nil, err
		}
		switch t.Kind {
		case KindLong:
			return n, nil
		case KindInteger:
			if n < math.MinInt32 || n > math.MaxInt32 {
				return nil, errors.New("out of range for integer (32-bit)")
			}
			return int32(n), nil
		case KindShort:
			if n < math.MinInt16 || n > math.MaxInt16 {
				return nil, errors.New("out of range for short (16-bit)")
			}
			return int16(n), nil
		default:
			if n < math.MinInt8 || n > math.MaxInt8 {
				return nil, errors.New("out of range for byte (8-bit)")
			}
			return int8(n), nil
		}
	case KindFloat, KindDouble:
		var f float64
		var err error
		switch x := v.(type) {
		case float64:
			f = x
		case json.Number:
			f, err = strconv.ParseFloat(string(x), 64)
		case string:
			f, err = strconv.ParseFloat(strings.TrimSpace(x), 64)
		default:
			return nil, errors.New("not a number")
		}
		if err != nil {
			return nil, errors.New("not a number")
		}
		if t.Kind == KindDouble {
			return f, nil
		}
		if !math.IsInf(f, 0) && !math.IsNaN(f) && math.Abs(f) > math.MaxFloat32 {
			return nil, errors.New("out of range for float (32-bit)")
		}
		return float32(f), nil
	case KindBoolean:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
			return nil, errors.New("not true or false")
		}
	case KindBinary:
		if x, ok := v.(string); ok {
			b, err := base64.StdEncoding.DecodeString(x)
			if err != nil {
				b, err = base64.RawStdEncoding.DecodeString(x)
			}
			if err != nil {
				return nil, errors.New("not base64")
			}
			return b, nil
		}
	case KindDate:
		if x, ok := v.(string); ok {
			d, err := ParseDate(x)
			if err != nil {
				return nil, err
			}
			return d, nil
		}
	case KindTimestamp:
		if x, ok := v.(string); ok {
			ts, err := ParseTimestamp(x)
			if err != nil {
				return nil, err
			}
			return ts, nil
		}
	case KindTimestampNTZ:
		if x, ok := v.(string); ok {
			ts, err := ParseTimestampNTZ(x)
			if err != nil {
				return nil, err
			}
			return ts, nil
		}
	case KindStruct, KindArray, KindMap:
		return convertNested(t, v)
	case KindVariant:
		// Any JSON value (JSON null is the column's null, not a variant
		// null: RowFromJSON never gets here with nil).
		return EncodeVariant(v)
	case KindDecimal:
		var s string
		switch x := v.(type) {
		case json.Number:
			s = string(x)
		case string:
			s = x
		case float64:
			s = strconv.FormatFloat(x, 'f', -1, 64)
		default:
			return nil, errors.New("not a decimal number")
		}
		d, err := ParseDecimal(s, t.Precision, t.Scale)
		if err != nil {
			return nil, err
		}
		return d, nil
	}
	return nil, fmt.Errorf("a JSON %s cannot be converted to %s", jsonKind(v), t)
}

// goValueAsJSON maps the Go values a structured message can hold besides
// decoded JSON (benthos mappings produce int64, float32, time.Time, …) to the
// decoded-JSON value they encode as, so that a structured message converts
// exactly like its JSON text would.
func goValueAsJSON(v any) any {
	switch x := v.(type) {
	case nil, string, json.Number, float64, bool, map[string]any, []any:
		return v
	case int, int8, int16, int32, int64:
		return json.Number(strconv.FormatInt(reflect.ValueOf(x).Int(), 10))
	case uint, uint8, uint16, uint32, uint64:
		return json.Number(strconv.FormatUint(reflect.ValueOf(x).Uint(), 10))
	case float32:
		// As encoding/json writes it: the shortest text that is this float32.
		return json.Number(strconv.FormatFloat(float64(x), 'g', -1, 32))
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case []byte:
		// encoding/json writes bytes as base64 text.
		return base64.StdEncoding.EncodeToString(x)
	}
	return v
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case json.Number, float64:
		return "number"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

// jsonInt converts a JSON number or numeric string to int64, refusing
// fractions and values out of the int64 range instead of truncating them.
func jsonInt(v any) (int64, error) {
	var s string
	switch x := v.(type) {
	case float64:
		if x != math.Trunc(x) || math.IsInf(x, 0) || math.IsNaN(x) {
			return 0, errors.New("not a whole number")
		}
		if x < -9.223372036854775808e18 || x >= 9.223372036854775808e18 {
			return 0, errors.New("out of range for long (64-bit)")
		}
		return int64(x), nil
	case json.Number:
		s = string(x)
	case string:
		s = strings.TrimSpace(x)
	default:
		return 0, errors.New("not a number")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	// "1e3" or "2.0": accept when exactly whole, refuse otherwise.
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, errors.New("not a number")
	}
	if !r.IsInt() {
		return 0, errors.New("not a whole number")
	}
	if !r.Num().IsInt64() {
		return 0, errors.New("out of range for long (64-bit)")
	}
	return r.Num().Int64(), nil
}

var timestampLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z0700",
}

var naiveTimestampLayouts = []string{
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02",
}

// ParseTimestamp parses an RFC 3339 / ISO 8601 timestamp. A timestamp with
// an offset is converted to UTC; one without a zone is taken as UTC.
func ParseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range timestampLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	for _, l := range naiveTimestampLayouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("not an RFC 3339 timestamp")
}

// ParseDate parses "YYYY-MM-DD" as a UTC calendar day.
func ParseDate(s string) (time.Time, error) {
	t, err := time.ParseInLocation("2006-01-02", strings.TrimSpace(s), time.UTC)
	if err != nil {
		return time.Time{}, errors.New("not a YYYY-MM-DD date")
	}
	return t, nil
}
