package reasons

import (
	"strings"
	"testing"
)

func TestClass(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"event is not JSON: unexpected end of input at offset 37", "event is not JSON: unexpected end of input at offset N"},
		{"event is not JSON: unexpected end of input at offset 112", "event is not JSON: unexpected end of input at offset N"},
		{`event evt_a4d578984f66: ingested_at "10/01/2026 22:30" is not an RFC 3339 timestamp`, `event evt_…: ingested_at "…" is not an RFC 3339 timestamp`},
		{`event evt_x: ingested_at "" is not an RFC 3339 timestamp`, `event evt_…: ingested_at "…" is not an RFC 3339 timestamp`},
		{"event evt_1f: assignment 5423514 is not known to the ClaimX API (404)", "event evt_…: assignment N is not known to the ClaimX API (404)"},
		{"claimx lookup GET /customTasks/assignment/5423374 failed after 3 attempts: transient: status 503: Service Unavailable", "claimx lookup GET /customTasks/assignment/N failed after N attempts: transient: status 503: Service Unavailable"},
		{"event is not valid UTF-8: invalid byte 0xff at offset 9", "event is not valid UTF-8: invalid byte N at offset N"},
		{"timed out after 2.5s", "timed out after Ns"},
		{`value "a \"quoted\" word" too long`, `value "…" too long`},
		{"event_id is missing or blank", "event_id is missing or blank"},
	} {
		if got := Class(c.in); got != c.want {
			t.Errorf("Class(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestClassCutsLongReasons(t *testing.T) {
	got := Class(strings.Repeat("é", 400))
	if n := len([]rune(got)); n != MaxLen+1 || !strings.HasSuffix(got, "…") {
		t.Fatalf("got %d runes ending %q, want %d and …", n, got[len(got)-4:], MaxLen+1)
	}
}
