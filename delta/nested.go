package delta

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MapEntry is one entry of a map value. A map column's value is a
// []MapEntry, in the order the entries were given (JSON objects: sorted by
// key, so files are deterministic).
type MapEntry struct {
	Key   any
	Value any
}

// nestedPathError carries the path inside a nested value at which a
// conversion failed, so RowFromJSON can name e.g. info.tags[2].
type nestedPathError struct {
	path  string // relative to the column, e.g. ".tags[2]" or `["k"]`
	t     DataType
	value any
	err   error
}

func (e *nestedPathError) Error() string { return e.path + ": " + e.err.Error() }
func (e *nestedPathError) Unwrap() error { return e.err }

// convertNested converts a decoded JSON value to the Row representation of
// a struct, array or map type (see Row), enforcing nullability at every
// level.
func convertNested(t DataType, v any) (any, error) {
	v = goValueAsJSON(v)
	switch t.Kind {
	case KindStruct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("a JSON %s cannot be converted to a struct (want an object)", jsonKind(v))
		}
		out := make([]any, len(t.Fields))
		for i := range t.Fields {
			f := &t.Fields[i]
			raw, ok := lookupKey(m, f.Name)
			if !ok || raw == nil {
				if !f.Nullable {
					return nil, &nestedPathError{path: "." + f.Name, t: f.Type, value: nil, err: errors.New("the field is not nullable and the value is missing or null")}
				}
				continue
			}
			cv, err := convertAny(f.Type, raw)
			if err != nil {
				return nil, wrapPath("."+f.Name, f.Type, raw, err)
			}
			out[i] = cv
		}
		return out, nil
	case KindArray:
		a, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("a JSON %s cannot be converted to an array", jsonKind(v))
		}
		out := make([]any, len(a))
		for i, e := range a {
			p := "[" + strconv.Itoa(i) + "]"
			if e == nil {
				if !t.ContainsNull {
					return nil, &nestedPathError{path: p, t: *t.Elem, err: errors.New("the array does not contain nulls (containsNull=false)")}
				}
				continue
			}
			cv, err := convertAny(*t.Elem, e)
			if err != nil {
				return nil, wrapPath(p, *t.Elem, e, err)
			}
			out[i] = cv
		}
		return out, nil
	case KindMap:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("a JSON %s cannot be converted to a map (want an object)", jsonKind(v))
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([]MapEntry, 0, len(keys))
		for _, k := range keys {
			p := "[" + strconv.Quote(k) + "]"
			kv, err := convertAny(*t.Key, k)
			if err != nil {
				return nil, wrapPath(p, *t.Key, k, fmt.Errorf("key: %w", err))
			}
			raw := m[k]
			if raw == nil {
				if !t.ValueContainsNull {
					return nil, &nestedPathError{path: p, t: *t.Value, err: errors.New("the map does not contain null values (valueContainsNull=false)")}
				}
				out = append(out, MapEntry{Key: kv})
				continue
			}
			vv, err := convertAny(*t.Value, raw)
			if err != nil {
				return nil, wrapPath(p, *t.Value, raw, err)
			}
			out = append(out, MapEntry{Key: kv, Value: vv})
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s is not a nested type", t)
}

func convertAny(t DataType, v any) (any, error) {
	if t.Kind.Nested() {
		return convertNested(t, v)
	}
	return ConvertJSONValue(t, v)
}

// wrapPath prefixes the path of a nested error, or starts one.
func wrapPath(p string, t DataType, v any, err error) error {
	var pe *nestedPathError
	if errors.As(err, &pe) {
		return &nestedPathError{path: p + pe.path, t: pe.t, value: pe.value, err: pe.err}
	}
	return &nestedPathError{path: p, t: t, value: v, err: err}
}

// lookupKey finds name in m: exact match first, then ignoring case, like
// top-level columns.
func lookupKey(m map[string]any, name string) (any, bool) {
	if v, ok := m[name]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// conversionErrorAt turns an error converting column col (of type t, raw
// value raw) into a *ConversionError whose Column is the full path of the
// failing value.
func conversionErrorAt(col string, t DataType, raw any, err error) *ConversionError {
	var pe *nestedPathError
	if errors.As(err, &pe) {
		val := "null"
		if pe.value != nil {
			val = describeValue(goValueAsJSON(pe.value))
		}
		return &ConversionError{Column: col + pe.path, Type: pe.t.String(), Value: val, Reason: pe.err.Error()}
	}
	return &ConversionError{Column: col, Type: t.String(), Value: describeValue(raw), Reason: err.Error()}
}

// unknownNested appends to out, as paths, the keys of the JSON value v that
// the struct fields of t (at any depth) lack.
func unknownNested(t DataType, v any, path string, out []string) []string {
	switch t.Kind {
	case KindStruct:
		m, ok := v.(map[string]any)
		if !ok {
			return out
		}
		for k, sub := range m {
			j := t.FieldIndex(k)
			if j < 0 {
				out = append(out, joinPath(path, k))
				continue
			}
			out = unknownNested(t.Fields[j].Type, sub, joinPath(path, t.Fields[j].Name), out)
		}
	case KindArray:
		if a, ok := v.([]any); ok {
			for _, e := range a {
				out = unknownNested(*t.Elem, e, path+"[]", out)
			}
		}
	case KindMap:
		if m, ok := v.(map[string]any); ok {
			for _, e := range m {
				out = unknownNested(*t.Value, e, path+".value", out)
			}
		}
	}
	return out
}

// widenNested returns t with a nullable field (type inferred) for every
// unknown key of the JSON value v, at any depth of existing structs, and
// whether anything was added. Top-level rules apply to the new fields:
// objects and arrays become string.
func widenNested(t DataType, v any) (DataType, bool) {
	v = goValueAsJSON(v)
	switch t.Kind {
	case KindStruct:
		m, ok := v.(map[string]any)
		if !ok {
			return t, false
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := t
		changed := false
		for _, k := range keys {
			j := out.FieldIndex(k)
			if j < 0 {
				it, ok := InferType(m[k])
				if !ok {
					continue
				}
				if !changed {
					out = t.clone()
					changed = true
				}
				out.Fields = append(out.Fields, StructField{Name: k, Type: it, Nullable: true})
				continue
			}
			nt, c := widenNested(out.Fields[j].Type, m[k])
			if c {
				if !changed {
					out = t.clone()
					changed = true
				}
				out.Fields[j].Type = nt
			}
		}
		return out, changed
	case KindArray:
		a, ok := v.([]any)
		if !ok {
			return t, false
		}
		elem := *t.Elem
		changed := false
		for _, e := range a {
			if ne, c := widenNested(elem, e); c {
				elem, changed = ne, true
			}
		}
		if !changed {
			return t, false
		}
		out := t.clone()
		out.Elem = &elem
		return out, true
	case KindMap:
		m, ok := v.(map[string]any)
		if !ok {
			return t, false
		}
		val := *t.Value
		changed := false
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if nv, c := widenNested(val, m[k]); c {
				val, changed = nv, true
			}
		}
		if !changed {
			return t, false
		}
		out := t.clone()
		out.Value = &val
		return out, true
	}
	return t, false
}

// reshapeValue rebuilds a nested value of type from as a value of type to,
// where to has the fields of from plus fields schema evolution added (found
// by name; the added ones are NULL).
func reshapeValue(from, to DataType, v any) any {
	if v == nil {
		return nil
	}
	switch to.Kind {
	case KindStruct:
		src, ok := v.([]any)
		if !ok || from.Kind != KindStruct {
			return v
		}
		out := make([]any, len(to.Fields))
		for i, f := range to.Fields {
			j := from.FieldIndex(f.Name)
			if j >= 0 && j < len(src) {
				out[i] = reshapeValue(from.Fields[j].Type, f.Type, src[j])
			}
		}
		return out
	case KindArray:
		src, ok := v.([]any)
		if !ok || from.Kind != KindArray {
			return v
		}
		out := make([]any, len(src))
		for i, e := range src {
			out[i] = reshapeValue(*from.Elem, *to.Elem, e)
		}
		return out
	case KindMap:
		src, ok := v.([]MapEntry)
		if !ok || from.Kind != KindMap {
			return v
		}
		out := make([]MapEntry, len(src))
		for i, e := range src {
			out[i] = MapEntry{Key: e.Key, Value: reshapeValue(*from.Value, *to.Value, e.Value)}
		}
		return out
	}
	return v
}

// ParseTimestampNTZ parses a timestamp without time zone: an ISO 8601
// date-time or date with NO offset, kept as the wall-clock reading in the
// UTC location. A string with an offset or "Z" is refused, because
// converting it would silently pick a zone.
func ParseTimestampNTZ(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range naiveTimestampLayouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t, nil
		}
	}
	for _, l := range timestampLayouts {
		if _, err := time.Parse(l, s); err == nil {
			return time.Time{}, errors.New("has a time zone offset, which a timestamp_ntz (without time zone) cannot hold")
		}
	}
	return time.Time{}, errors.New("not an ISO 8601 timestamp without time zone")
}
