// Package reasons folds error reasons into kinds, so that a summary counts
// "event is not JSON: unexpected end of input at offset N" once with its
// number of records instead of once per offset.
package reasons

import (
	"regexp"
	"strings"
)

// MaxLen is the longest kind Class returns; longer texts are cut with "…".
const MaxLen = 160

var (
	eventIDs = regexp.MustCompile(`\bevt_[A-Za-z0-9_]+`)
	quoted   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	// Numbers that name the kind, not the record: RFC numbers and HTTP
	// statuses, "(404)" or "status 503"; encodings.
	kept   = regexp.MustCompile(`\bRFC [0-9]+|\bUTF-(?:8|16|32)\b|\(\s*[1-5][0-9]{2}\s*\)|\bstatus [1-5][0-9]{2}\b`)
	digits = regexp.MustCompile(`\b0x[0-9a-fA-F]+\b|[0-9]+(?:\.[0-9]+)?`)
)

// Class returns the kind of an error reason: event ids become "evt_…",
// quoted values `"…"`, and every other number (ids, offsets, lines,
// durations) "N"; RFC numbers and HTTP statuses stay, since they tell kinds
// apart.
func Class(reason string) string {
	s := eventIDs.ReplaceAllString(reason, "evt_…")
	s = quoted.ReplaceAllString(s, `"…"`)
	var b strings.Builder
	last := 0
	for _, m := range kept.FindAllStringIndex(s, -1) {
		b.WriteString(digits.ReplaceAllString(s[last:m[0]], "N"))
		b.WriteString(s[m[0]:m[1]])
		last = m[1]
	}
	b.WriteString(digits.ReplaceAllString(s[last:], "N"))
	s = b.String()
	if r := []rune(s); len(r) > MaxLen {
		s = string(r[:MaxLen]) + "…"
	}
	return s
}
