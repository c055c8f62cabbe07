// Package jsonschema checks JSON values against the subset of JSON Schema
// draft 2020-12 that the project's schemas use (the iTel submission payload,
// schemas/itel_submission.v1.json). Compile refuses a schema with any other
// keyword, so none is silently ignored.
package jsonschema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Schema is a compiled schema.
type Schema struct{ root map[string]any }

// Compile parses a schema and checks that it uses only the keywords
// Validate checks.
func Compile(raw []byte) (*Schema, error) {
	root, ok := Decode(raw)
	if ok != nil {
		return nil, fmt.Errorf("parsing the JSON schema: %w", ok)
	}
	m, isObj := root.(map[string]any)
	if !isObj {
		return nil, fmt.Errorf("the JSON schema is a JSON %s, not an object", jsonType(root))
	}
	var bad []string
	walkSchemas("", m, func(path string, s map[string]any) {
		for k := range s {
			if !knownKeywords[k] {
				bad = append(bad, fmt.Sprintf("%s: %q", path, k))
			}
		}
	})
	if len(bad) > 0 {
		sort.Strings(bad)
		return nil, fmt.Errorf("the JSON schema uses keywords this validator does not check: %s", strings.Join(bad, ", "))
	}
	return &Schema{root: m}, nil
}

// Decode parses one JSON value with numbers kept exact (json.Number), as
// Validate expects them.
func Decode(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, err
	}
	return x, nil
}

// Validate returns one line per violation ("/photos/0/url: … is not an
// absolute URI"), nil when x conforms. x is a decoded JSON value with
// json.Number numbers (Decode).
func (s *Schema) Validate(x any) []string {
	v := &validator{}
	v.check("", s.root, x)
	return v.errs
}

// Keywords are the keywords Validate checks.
func Keywords() []string {
	out := make([]string, 0, len(knownKeywords))
	for k := range knownKeywords {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// validator checks a JSON value against the subset of JSON Schema draft
// 2020-12 that the submission schema uses (knownKeywords); the schema test
// fails on any other keyword, so none is silently ignored.
type validator struct{ errs []string }

var knownKeywords = map[string]bool{
	"$schema": true, "$id": true, "title": true, "description": true,
	"type": true, "const": true, "enum": true, "required": true, "properties": true,
	"additionalProperties": true, "items": true, "minimum": true, "minLength": true,
	"pattern": true, "format": true,
}

func (v *validator) fail(path, format string, args ...any) {
	if path == "" {
		path = "/"
	}
	v.errs = append(v.errs, path+": "+fmt.Sprintf(format, args...))
}

func jsonType(x any) string {
	switch t := x.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case json.Number:
		if _, ok := new(big.Int).SetString(t.String(), 10); ok {
			return "integer"
		}
		return "number"
	}
	return fmt.Sprintf("%T", x)
}

func typeMatches(want, got string) bool {
	return want == got || (want == "number" && got == "integer")
}

// equalJSON compares decoded JSON values (numbers by value).
func equalJSON(a, b any) bool {
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	return bytes.Equal(ab, bb)
}

func (v *validator) check(path string, schema map[string]any, x any) {
	if t, ok := schema["type"]; ok {
		var types []string
		switch tt := t.(type) {
		case string:
			types = []string{tt}
		case []any:
			for _, s := range tt {
				types = append(types, s.(string))
			}
		}
		got := jsonType(x)
		if !slices.ContainsFunc(types, func(w string) bool { return typeMatches(w, got) }) {
			v.fail(path, "is %s, want %s", got, strings.Join(types, " or "))
			return
		}
	}
	if c, ok := schema["const"]; ok && !equalJSON(c, x) {
		v.fail(path, "is %v, want %v", x, c)
	}
	if e, ok := schema["enum"].([]any); ok && !slices.ContainsFunc(e, func(w any) bool { return equalJSON(w, x) }) {
		v.fail(path, "%v is not one of %v", x, e)
	}
	switch t := x.(type) {
	case map[string]any:
		for _, r := range asList(schema["required"]) {
			if _, ok := t[r.(string)]; !ok {
				v.fail(path, "missing required %q", r)
			}
		}
		props, _ := schema["properties"].(map[string]any)
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if ps, ok := props[k].(map[string]any); ok {
				v.check(path+"/"+k, ps, t[k])
				continue
			}
			switch ap := schema["additionalProperties"].(type) {
			case bool:
				if !ap {
					v.fail(path, "unknown property %q", k)
				}
			case map[string]any:
				v.check(path+"/"+k, ap, t[k])
			}
		}
	case []any:
		if items, ok := schema["items"].(map[string]any); ok {
			for i, it := range t {
				v.check(fmt.Sprintf("%s/%d", path, i), items, it)
			}
		}
	case json.Number:
		if m, ok := schema["minimum"].(json.Number); ok {
			mf, _ := m.Float64()
			if f, _ := t.Float64(); f < mf {
				v.fail(path, "%v is below the minimum %v", t, m)
			}
		}
	case string:
		if m, ok := schema["minLength"].(json.Number); ok {
			if n, _ := m.Int64(); int64(len([]rune(t))) < n {
				v.fail(path, "%q is shorter than %d", t, n)
			}
		}
		if p, ok := schema["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(t) {
			v.fail(path, "%q does not match %s", t, p)
		}
		switch schema["format"] {
		case "date-time":
			if _, err := time.Parse(time.RFC3339Nano, t); err != nil {
				v.fail(path, "%q is not an RFC 3339 date-time", t)
			}
		case "uri":
			if u, err := url.Parse(t); err != nil || !u.IsAbs() {
				v.fail(path, "%q is not an absolute URI", t)
			}
		}
	}
}

func asList(x any) []any {
	l, _ := x.([]any)
	return l
}

// walkSchemas calls f for every subschema of s (s included) with its path.
func walkSchemas(path string, s map[string]any, f func(string, map[string]any)) {
	f(path, s)
	if props, ok := s["properties"].(map[string]any); ok {
		for k, p := range props {
			walkSchemas(path+"/properties/"+k, p.(map[string]any), f)
		}
	}
	for _, k := range []string{"items", "additionalProperties"} {
		if sub, ok := s[k].(map[string]any); ok {
			walkSchemas(path+"/"+k, sub, f)
		}
	}
}
