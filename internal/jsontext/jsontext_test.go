package jsontext

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// encodingJSON is what encoding/json writes for v.
func encodingJSON(v any, escapeHTML bool) ([]byte, error) {
	if escapeHTML {
		return json.Marshal(v)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// TestAppendMatchesEncodingJSON checks Append byte for byte against
// encoding/json, with and without HTML escaping, on hand-picked edge cases
// and random nested values.
func TestAppendMatchesEncodingJSON(t *testing.T) {
	cases := []any{
		nil, true, false, "", "plain", "a\"b\\c\n\r\t\b\f\x01\x1f<>&\u2028\u2029é😀", "bad \xff\xfe utf8 \xe2\x82",
		0.0, math.Copysign(0, -1), 1.0, -1.5, 1e20, 1e21, 1e-6, 1e-7, 123456789.125, 5e-324, math.MaxFloat64, 0.1 + 0.2,
		int64(-9007199254740993), 42, int32(-7), uint64(math.MaxUint64),
		json.Number("12"), json.Number("-0.5e+10"), json.Number("1E5"),
		map[string]any{}, []any{}, map[string]any(nil), []any(nil),
		map[string]any{"b": 1.0, "a": []any{"x", nil, map[string]any{"<": ">"}}, "é": "ü", "A": true},
		[]any{map[string]any{"k": json.Number("3.25")}, []any{[]any{}}},
		struct{ X string }{"<&>"}, // not a decoded JSON value: left to encoding/json
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		cases = append(cases, randomJSONValue(rng, 4))
	}
	for _, escapeHTML := range []bool{true, false} {
		for i, v := range cases {
			want, wantErr := encodingJSON(v, escapeHTML)
			got, err := Append([]byte("prefix"), v, escapeHTML)
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("escapeHTML %v, case %d (%#v): error %v, encoding/json's %v", escapeHTML, i, v, err, wantErr)
			}
			if err == nil {
				enc, _ := Encode(v, escapeHTML)
				str, _ := EncodeString(v, escapeHTML)
				if string(enc) != string(want) || str != string(want) {
					t.Fatalf("escapeHTML %v, case %d (%#v): Encode %s, EncodeString %s, want %s", escapeHTML, i, v, enc, str, want)
				}
			}
			if err == nil && string(got) != "prefix"+string(want) {
				t.Fatalf("escapeHTML %v, case %d (%#v):\n got %s\nwant prefix%s", escapeHTML, i, v, got, want)
			}
		}
	}
	for _, bad := range []any{math.Inf(1), math.NaN(), json.Number("01"), json.Number("1."), json.Number("-"), map[string]any{"x": math.Inf(-1)}} {
		if _, err := Append(nil, bad, true); err == nil {
			t.Errorf("%#v: no error, json.Marshal refuses it", bad)
		}
	}
}

// FuzzAppendString compares string quoting with encoding/json's.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a<b>&c", "\xff", "\u2028", "\x00\x7f", "é\xe2\x82"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, escapeHTML := range []bool{true, false} {
			want, _ := encodingJSON(s, escapeHTML)
			if got := AppendString(nil, s, escapeHTML); string(got) != string(want) {
				t.Fatalf("%q (escapeHTML %v): got %s, want %s", s, escapeHTML, got, want)
			}
		}
	})
}

func randomJSONValue(rng *rand.Rand, depth int) any {
	k := rng.IntN(9)
	if depth == 0 && k >= 7 {
		k = rng.IntN(7)
	}
	switch k {
	case 0:
		return nil
	case 1:
		return rng.IntN(2) == 0
	case 2:
		return randomString(rng)
	case 3:
		return math.Float64frombits(rng.Uint64())
	case 4:
		return float64(rng.IntN(2000000)-1000000) / float64(int(1)<<rng.IntN(40))
	case 5:
		return rng.Int64() >> rng.IntN(64)
	case 6:
		return json.Number([]string{"0", "-1", "3.14", "2e-9", "1E+300", "-0.0e0"}[rng.IntN(6)])
	case 7:
		m := map[string]any{}
		for range rng.IntN(6) {
			m[randomString(rng)] = randomJSONValue(rng, depth-1)
		}
		return m
	default:
		a := make([]any, rng.IntN(5))
		for i := range a {
			a[i] = randomJSONValue(rng, depth-1)
		}
		return a
	}
}

func randomString(rng *rand.Rand) string {
	alphabet := []string{"a", "Z", " ", "\"", "\\", "\n", "\x00", "\x1f", "<", ">", "&", "é", "\u2028", "\u2029", "😀", "\xff", "\xe2\x82", "\x7f", "/"}
	var b strings.Builder
	for range rng.IntN(12) {
		b.WriteString(alphabet[rng.IntN(len(alphabet))])
	}
	return b.String()
}

// BenchmarkAppend encodes a decoded ~1 KB event object (the shape of a
// tracking message's task) with json.Marshal and with Append.
func BenchmarkAppend(b *testing.B) {
	var v any
	src := `{"task_id":32513,"assignment_id":5423723,"task_name":"iTel Cabinet Repair Form","status":"COMPLETED",
	"assignee_id":98765,"assignor_id":12345,"assignor":"adjuster@example.com","date_assigned":"2026-01-10T21:20:00Z",
	"date_completed":"2026-01-12T08:05:13.250Z","project":{"project_id":"4895140","project_number":"CLM-2026-000123",
	"status":"OPEN","type_of_loss":"Water","address":{"street":"12 Elm St <Unit 4>","city":"Springfield","state":"IL",
	"zip":"62704"},"customer":{"first_name":"Ana","last_name":"Muñoz","email":"ana@example.com","phone":"+1 555 0100"}},
	"answers":[{"q":"Lower cabinets damaged?","a":"Yes"},{"q":"Linear feet","a":12.5},{"q":"Counter type","a":"Granite & Tile"},
	{"q":"Photos","a":[101,102,103]},{"q":"Notes","a":"Swollen toe kicks; \"detached\" face frame\nsee photos"}]}`
	if err := json.Unmarshal([]byte(src), &v); err != nil {
		b.Fatal(err)
	}
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Append", func(b *testing.B) {
		for b.Loop() {
			if _, err := Append(nil, v, true); err != nil {
				b.Fatal(err)
			}
		}
	})
}
