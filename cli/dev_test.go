package cli

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/claimxsim"
)

// Metric lines as the streams' prometheus exporter writes them (claimx_lookup
// resources have an empty stream label in streams mode).
const (
	devAPIUp       = `itel_worker_claimx_api_available{label="claimx_assignment",path="root.processor_resources",stream=""} 1`
	devAPIDown     = `itel_worker_claimx_api_available{label="claimx_assignment",path="root.processor_resources",stream=""} 0`
	devAPIJSONUp   = `itel_worker_claimx_api_available{label="claimx_assignment_json",path="root.processor_resources",stream=""} 1`
	devAPIJSONDown = `itel_worker_claimx_api_available{label="claimx_assignment_json",path="root.processor_resources",stream=""} 0`
	devDeltaUp     = `delta_storage_available{label="delta_append",path="root.pipeline.processors.6",stream="worker"} 1`
	devDeltaDown   = `delta_storage_available{label="delta_append",path="root.pipeline.processors.6",stream="worker"} 0`
)

func devAPIHolds(reason, n string) string {
	return `itel_worker_claimx_api_holds_total{label="claimx_assignment",path="root.processor_resources",reason="` + reason + `",stream=""} ` + n
}

func devDeltaHolds(reason, n string) string {
	return `delta_storage_holds_total{label="delta_append",path="root.pipeline.processors.6",reason="` + reason + `",stream="worker"} ` + n
}

func TestDevHoldWatch(t *testing.T) {
	type scrape struct {
		at    time.Duration // since the first scrape
		lines []string
		want  string
	}
	cases := []struct {
		name    string
		scrapes []scrape
	}{
		{"nothing held", []scrape{
			{0, []string{devAPIUp, devAPIJSONUp, devDeltaUp}, ""},
			{time.Second, []string{devAPIUp, devAPIJSONUp, devDeltaUp}, ""},
		}},
		{"no hold metrics at all (an older build)", []scrape{
			{0, []string{`input_received{label="claimx_events",path="root.input",stream="trigger"} 300`}, ""},
		}},
		{"ClaimX held: duration from the first scrape at 0, reason from the counter", []scrape{
			{0, []string{devAPIUp, devDeltaUp}, ""},
			{time.Second, []string{devAPIDown, devAPIHolds("503", "1"), devDeltaUp}, "held: ClaimX API unavailable (503) for 0 s"},
			{13*time.Second + 400*time.Millisecond, []string{devAPIDown, devAPIHolds("503", "1"), devDeltaUp}, "held: ClaimX API unavailable (503) for 12 s"},
			{14 * time.Second, []string{devAPIUp, devAPIHolds("503", "1"), devDeltaUp}, ""},
		}},
		{"one lookup of two at 0 is enough", []scrape{
			{0, []string{devAPIUp, devAPIJSONDown, `itel_worker_claimx_api_holds_total{label="claimx_assignment_json",reason="timeout"} 1`}, "held: ClaimX API unavailable (timeout) for 0 s"},
			{5 * time.Second, []string{devAPIDown, devAPIJSONDown, `itel_worker_claimx_api_holds_total{label="claimx_assignment_json",reason="timeout"} 1`}, "held: ClaimX API unavailable (timeout) for 5 s"},
		}},
		{"the reason is the one whose count last increased", []scrape{
			{0, []string{devAPIDown, devAPIHolds("503", "1")}, "held: ClaimX API unavailable (503) for 0 s"},
			{2 * time.Second, []string{devAPIUp, devAPIHolds("503", "1")}, ""},
			{3 * time.Second, []string{devAPIDown, devAPIHolds("503", "1"), devAPIHolds("429", "1")}, "held: ClaimX API unavailable (429) for 0 s"},
			{7 * time.Second, []string{devAPIDown, devAPIHolds("503", "2"), devAPIHolds("429", "1")}, "held: ClaimX API unavailable (503) for 4 s"},
		}},
		{"a new hold of an old reason: the duration starts again", []scrape{
			{0, []string{devAPIDown, devAPIHolds("401", "1")}, "held: ClaimX API unavailable (401) for 0 s"},
			{30 * time.Second, []string{devAPIDown, devAPIHolds("401", "1")}, "held: ClaimX API unavailable (401) for 30 s"},
			{31 * time.Second, []string{devAPIUp, devAPIHolds("401", "1")}, ""},
			{40 * time.Second, []string{devAPIDown, devAPIHolds("401", "2")}, "held: ClaimX API unavailable (401) for 0 s"},
			{44 * time.Second, []string{devAPIDown, devAPIHolds("401", "2")}, "held: ClaimX API unavailable (401) for 4 s"},
		}},
		{"held before the counter shows: no reason yet", []scrape{
			{0, []string{devAPIDown}, "held: ClaimX API unavailable for 0 s"},
			{time.Second, []string{devAPIDown, devAPIHolds("connection", "1")}, "held: ClaimX API unavailable (connection) for 1 s"},
		}},
		{"two reasons in one scrape: the larger increase", []scrape{
			{0, []string{devAPIDown, devAPIHolds("502", "1"), devAPIHolds("504", "3")}, "held: ClaimX API unavailable (504) for 0 s"},
		}},
		{"Delta storage held", []scrape{
			{0, []string{devAPIUp, devDeltaUp}, ""},
			{time.Second, []string{devAPIUp, devDeltaDown, devDeltaHolds("storage", "1")}, "held: Delta storage unavailable (storage) for 0 s"},
			{5 * time.Second, []string{devAPIUp, devDeltaDown, devDeltaHolds("storage", "1")}, "held: Delta storage unavailable (storage) for 4 s"},
		}},
		{"both held: ClaimX first, each with its own duration and reason", []scrape{
			{0, []string{devAPIDown, devAPIHolds("503", "1"), devDeltaUp}, "held: ClaimX API unavailable (503) for 0 s"},
			{8 * time.Second, []string{devAPIDown, devAPIHolds("503", "1"), devDeltaDown, devDeltaHolds("conflict", "1")}, "held: ClaimX API unavailable (503) for 8 s, Delta storage unavailable (conflict) for 0 s"},
			{12 * time.Second, []string{devAPIDown, devAPIHolds("503", "1"), devDeltaDown, devDeltaHolds("conflict", "1")}, "held: ClaimX API unavailable (503) for 12 s, Delta storage unavailable (conflict) for 4 s"},
		}},
		{"another metrics_prefix", []scrape{
			{0, []string{`claimx_api_available{label="lookup"} 0`, `claimx_api_holds_total{label="lookup",reason="invalid_response"} 1`}, "held: ClaimX API unavailable (invalid_response) for 0 s"},
		}},
		{"the streams restarted: a counter going down is no increase", []scrape{
			{0, []string{devAPIDown, devAPIHolds("503", "4")}, "held: ClaimX API unavailable (503) for 0 s"},
			{time.Second, []string{devAPIDown, devAPIHolds("503", "4"), devAPIHolds("timeout", "1")}, "held: ClaimX API unavailable (timeout) for 1 s"},
			{2 * time.Second, []string{devAPIDown, devAPIHolds("503", "1"), devAPIHolds("timeout", "1")}, "held: ClaimX API unavailable (timeout) for 2 s"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newHoldWatch()
			t0 := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
			for i, s := range tc.scrapes {
				text := "# HELP x\n# TYPE x gauge\n" + strings.Join(s.lines, "\n") + "\n"
				if got := w.observe(t0.Add(s.at), parseMetrics(text)); got != s.want {
					t.Errorf("scrape %d (at %v): got %q, want %q", i, s.at, got, s.want)
				}
			}
		})
	}
}

func TestDevParseMetrics(t *testing.T) {
	cases := []struct {
		line   string
		ok     bool
		name   string
		labels map[string]string
		value  float64
	}{
		{`delta_storage_available 1`, true, "delta_storage_available", map[string]string{}, 1},
		{`up{} 0`, true, "up", map[string]string{}, 0},
		{`x_total{reason="503",stream=""} 12`, true, "x_total", map[string]string{"reason": "503", "stream": ""}, 12},
		{`x{a="b,c}",d="say \"hi\"\\"} 1.5e+03 1733390000000`, true, "x", map[string]string{"a": "b,c}", "d": `say "hi"\`}, 1500},
		{`x{a="line\nbreak",} +Inf`, true, "x", map[string]string{"a": "line\nbreak"}, math.Inf(1)},
		{`x{a="unterminated} 1`, false, "", nil, 0},
		{`x{a=b} 1`, false, "", nil, 0},
		{`x{a="b"}`, false, "", nil, 0},
		{`x NaN`, false, "", nil, 0},
		{`x notanumber`, false, "", nil, 0},
	}
	for _, tc := range cases {
		s, ok := parseSample(tc.line)
		if ok != tc.ok {
			t.Errorf("%s: ok %v, want %v", tc.line, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		if s.name != tc.name || s.value != tc.value || len(s.labels) != len(tc.labels) {
			t.Errorf("%s: got %s %v %v, want %s %v %v", tc.line, s.name, s.labels, s.value, tc.name, tc.labels, tc.value)
			continue
		}
		for k, v := range tc.labels {
			if s.labels[k] != v {
				t.Errorf("%s: label %s = %q, want %q", tc.line, k, s.labels[k], v)
			}
		}
	}
	got := parseMetrics("# HELP a b\n# TYPE a gauge\n\na 1\n  \nbroken{\nb{x=\"y\"} 2\n")
	if len(got) != 2 || got[0].name != "a" || got[1].labels["x"] != "y" {
		t.Errorf("parseMetrics: got %+v", got)
	}
}

func TestDevSummaryGroupsReasonsByKind(t *testing.T) {
	s := &devSummary{ErrorsByReason: map[string]int{}, ErrorsByStage: map[string]int{}}
	var errs [][]byte
	for i, off := range []int{17, 37, 112} {
		errs = append(errs, []byte(fmt.Sprintf(`{"stage":"trigger","error":"event is not JSON: unexpected end of input at offset %d"}`, off)))
		errs = append(errs, []byte(fmt.Sprintf(`{"stage":"trigger","error":"event evt_%06x: assignment %d is not known to the ClaimX API (404)"}`, i, 5423000+i)))
	}
	errs = append(errs, []byte(`not json`))
	s.countErrors(errs)
	want := map[string]int{
		"trigger: event is not JSON: unexpected end of input at offset N":         3,
		"trigger: event evt_…: assignment N is not known to the ClaimX API (404)": 3,
		"?: (unreadable error message)":                                           1,
	}
	if !reflect.DeepEqual(s.ErrorsByReason, want) {
		t.Fatalf("reasons %v, want %v", s.ErrorsByReason, want)
	}
	var out strings.Builder
	s.print(&out, "table")
	if !strings.Contains(out.String(), "      3  trigger: event is not JSON: unexpected end of input at offset N\n") {
		t.Fatalf("summary does not print the kind once with its count:\n%s", out.String())
	}
}

// The forms summary fails a run for each broken promise, and only then.
func TestDevFormsSummaryProblems(t *testing.T) {
	ok := formsSummary{Rows: 5, FormKeys: 5, Submissions: 5, SubAccepted: 5, ITel: claimxsim.ITelCounts{Accepted: 5}}
	cases := []struct {
		name string
		edit func(*formsSummary)
		want string
	}{
		{"clean", func(*formsSummary) {}, ""},
		{"a form twice", func(s *formsSummary) { s.Rows = 6 }, "6 rows for 5 form responses"},
		{"a photo differs", func(s *formsSummary) { s.ObjectsBad = []string{"media 9: stored 1 bytes"} }, "1 stored photos differ"},
		{"iTel took a form twice", func(s *formsSummary) { s.ITel.DuplicateForms = 1 }, "accepted 1 form responses twice"},
		{"table and iTel disagree", func(s *formsSummary) { s.SubAccepted = 4; s.SubRejected = 1 }, "4 accepted submissions, iTel accepted 5"},
		{"a form not submitted", func(s *formsSummary) { s.Submissions, s.SubAccepted, s.ITel.Accepted = 4, 4, 4 }, "4 rows for 5 form responses"},
	}
	for _, c := range cases {
		s := ok
		c.edit(&s)
		got := s.problem()
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: problem %q, want %q", c.name, got, c.want)
		}
	}
}

func TestDevSLASummaryProblems(t *testing.T) {
	for _, c := range []struct {
		s    slaSummary
		want string
	}{
		{slaSummary{Rows: 10, Changes: 10, Breaches: 3, Open: 3, Alerted: 3}, ""},
		{slaSummary{Rows: 9, Changes: 10, Breaches: 3, Open: 3, Alerted: 3}, "the SLA table holds 9 rows for 10 status change records"},
		{slaSummary{Rows: 10, Changes: 10, Breaches: 2, Open: 3, Alerted: 2}, "2 SLA breaches for 3 assignments open past their target"},
		{slaSummary{Rows: 10, Changes: 10, Breaches: 3, Open: 3, Alerted: 4}, "4 sla_breach alerts for 3 breaches"},
	} {
		if got := c.s.problem(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.s, got, c.want)
		}
	}
	if q := quantile([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.9); q != 9 {
		t.Errorf("p90 of 1..10 = %v, want 9", q)
	}
}
