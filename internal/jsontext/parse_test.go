package jsontext

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// sameAsUnmarshal checks Parse against json.Unmarshal on one input: the
// same value, or both an error; Parse alone refuses invalid UTF-8.
func sameAsUnmarshal(t *testing.T, in []byte) {
	t.Helper()
	var want any
	wantErr := json.Unmarshal(in, &want)
	got, err := Parse(in)
	switch {
	case err != nil && wantErr != nil:
	case err != nil && !utf8.Valid(in) && strings.Contains(err.Error(), "invalid UTF-8"):
	case err != nil || wantErr != nil:
		t.Fatalf("%q: Parse error %v, json.Unmarshal error %v", in, err, wantErr)
	case !reflect.DeepEqual(got, want):
		t.Fatalf("%q:\n Parse         %#v\n json.Unmarshal %#v", in, got, want)
	}
}

func TestParseMatchesUnmarshal(t *testing.T) {
	for _, in := range []string{
		`{}`, `[]`, ` {"a" : [1, -0, 0.5e-3, 1E+2, true, false, null, "x"]} `, `"\u00e9\ud83d\ude00\/\b\f\n\r\t\"\\"`,
		`"\ud800"`, `"\ud800\u0041"`, `"\udc00\ud800"`, `"\ud83d\ude00\ud83d"`, `{"a":1,"a":2}`, `1e400`, `-1e-400`,
		`{"a":1}x`, `{"a":1} {}`, `[1,]`, `{"a":1,}`, `{a:1}`, `01`, `1.`, `.5`, `-`, `+1`, `1e`, `"\x01"`, `"abc`,
		`"\u12"`, `"\q"`, `tru`, `nul`, `[`, `{"a"`, `{"a":`, "\"\xff\"", "\xff", `"é"`, "", " ", "[" + strings.Repeat("[", 20) + strings.Repeat("]", 21),
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	} {
		sameAsUnmarshal(t, []byte(in))
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		b, err := json.Marshal(randomJSONValue(rng, 5))
		if err != nil {
			continue // NaN or Inf
		}
		sameAsUnmarshal(t, b)
	}
}

func TestParseErrorsNameOffset(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":1}x`:           `unexpected 'x' after the JSON value at offset 7`,
		"{\"a\":\"b\xe9c\"}": `invalid UTF-8 byte 0xE9 inside a string at offset 7`,
		`{"a" 1}`:            `unexpected '1' after an object key at offset 5`,
		`[1,2`:               `unexpected end of input after an array element at offset 4`,
	} {
		_, err := Parse([]byte(in))
		if err == nil || err.Error() != want {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"x\u00e9"]}`, `"\ud83d\ude00"`, `[true,false,null]`, `-0.0e-0`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) { sameAsUnmarshal(t, in) })
}

// BenchmarkParse decodes a ~1 KB tracking message with json.Unmarshal, a
// json.Decoder (what Bloblang's parse_json uses) and Parse.
func BenchmarkParse(b *testing.B) {
	src := []byte(`{"event_id":"evt_0001","event_type":"CUSTOM_TASK_COMPLETED","timestamp":"2026-01-12T08:05:13.250Z",
	"task_id":32513,"assignment_id":5423723,"project_id":"4895140","task_status":"COMPLETED","task_name":"iTel Cabinet Repair Form",
	"task":{"task_id":32513,"assignment_id":5423723,"status":"COMPLETED","assignee_id":98765,"assignor_id":12345,
	"assignor":"adjuster@example.com","date_assigned":"2026-01-10T21:20:00Z","date_completed":"2026-01-12T08:05:13.250Z",
	"custom_task":{"name":"iTel Cabinet Repair Form","form_id":"5f1e2d3c4b5a69788796a5b4","form_name":"iTel Cabinet Repair Form"}},
	"project":{"project_id":"4895140","project_number":"CLM-2026-000123","status":"OPEN","type_of_loss":"Water",
	"address":{"street":"12 Elm St","city":"Springfield","state":"IL","zip":"62704"},
	"customer":{"first_name":"Ana","last_name":"Mu\u00f1oz","email":"ana@example.com","phone":"+1 555 0100"}},
	"ingested_at":"2026-01-12T08:05:14.001Z","source":"claimx_itel_plugin"}`)
	b.Run("json.Unmarshal", func(b *testing.B) {
		for b.Loop() {
			var v any
			if err := json.Unmarshal(src, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Decoder", func(b *testing.B) {
		for b.Loop() {
			var v any
			if err := json.NewDecoder(strings.NewReader(string(src))).Decode(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Parse", func(b *testing.B) {
		for b.Loop() {
			if _, err := Parse(src); err != nil {
				b.Fatal(err)
			}
		}
	})
}
