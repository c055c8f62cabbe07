package claimxsim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultITelPath is where the simulated iTel Cabinet API takes submissions.
const DefaultITelPath = "/itel/v1/submissions"

// maxITelBody bounds a submission body (photos go as links, not bytes, by
// default; bytes in base64 still fit).
const maxITelBody = 32 << 20

// ITelSubmission is one submission the simulated iTel API accepted.
type ITelSubmission struct {
	Reference      string          `json:"reference"`
	Status         string          `json:"status"`
	IdempotencyKey string          `json:"idempotency_key"`
	AssignmentID   string          `json:"assignment_id"`
	FormResponseID string          `json:"form_response_id"`
	ReceivedAt     time.Time       `json:"received_at"`
	Body           json.RawMessage `json:"body"`
	// Replays counts the later requests with the same key and body.
	Replays int `json:"replays"`
}

// ITelCounts counts what the simulated iTel API answered.
type ITelCounts struct {
	// Accepted is the number of submissions stored (201).
	Accepted int `json:"accepted"`
	// Replays is the number of idempotent replays (200, same key and body).
	Replays int `json:"replays"`
	// Conflicts is the number of 409s: a key reused with another body.
	Conflicts int `json:"conflicts"`
	// DuplicateForms is the number of accepted submissions whose assignment
	// id and form response id an earlier accepted submission already had
	// (under another key): what a client's idempotency must keep at 0.
	DuplicateForms int `json:"duplicate_forms"`
	// Rejected counts other 4xx answers (400, 401, 422, …); Unavailable the
	// 503s of an outage.
	Rejected    int `json:"rejected"`
	Unavailable int `json:"unavailable"`
}

// itelState is the simulated iTel API's store.
type itelState struct {
	byKey       map[string]*itelEntry
	byReference map[string]*itelEntry
	order       []*itelEntry
	forms       map[string]int
	counts      ITelCounts
	outageUntil time.Time
}

type itelEntry struct {
	sub  ITelSubmission
	hash string
}

func newITelState() *itelState {
	return &itelState{byKey: map[string]*itelEntry{}, byReference: map[string]*itelEntry{}, forms: map[string]int{}}
}

// itelPath is the configured submissions path without a trailing slash.
func (s *Server) itelPath() string {
	if s.cfg.ITelPath == "" {
		return DefaultITelPath
	}
	return "/" + strings.Trim(s.cfg.ITelPath, "/")
}

// itelRoute reports whether path is the iTel endpoint and returns the rest
// after it ("" for the collection, the reference for one submission).
func (s *Server) itelRoute(path string) (rest string, ok bool) {
	p := s.itelPath()
	if path == p || path == p+"/" {
		return "", true
	}
	if r, ok := strings.CutPrefix(path, p+"/"); ok && !strings.Contains(r, "/") {
		return r, true
	}
	return "", false
}

// applyITelFaultsLocked starts a timed iTel outage; s.mu is held.
func (s *Server) applyITelFaultsLocked(f *Faults, now time.Time) {
	s.itel.outageUntil = time.Time{}
	if f.ITelOutageFor > 0 {
		s.itel.outageUntil = now.Add(time.Duration(f.ITelOutageFor))
		f.ITelOutage = false
	}
}

// currentITelFaultsLocked reports a timed iTel outage; s.mu is held.
func (s *Server) currentITelFaultsLocked(f *Faults, now time.Time) {
	f.ITelOutage = s.faults.ITelOutage || now.Before(s.itel.outageUntil)
	f.ITelOutageFor = 0
	if f.ITelOutage && now.Before(s.itel.outageUntil) {
		f.ITelOutageFor = Duration(s.itel.outageUntil.Sub(now))
	}
}

// ITelSubmissions lists the accepted submissions in arrival order.
func (s *Server) ITelSubmissions() []ITelSubmission {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ITelSubmission, len(s.itel.order))
	for i, e := range s.itel.order {
		out[i] = e.sub
	}
	return out
}

// ITelCounts returns the iTel answer counters.
func (s *Server) ITelCounts() ITelCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.itel.counts
}

// ResetITel forgets every submission and counter (not the outage fault).
func (s *Server) ResetITel() {
	s.mu.Lock()
	defer s.mu.Unlock()
	until := s.itel.outageUntil
	s.itel = newITelState()
	s.itel.outageUntil = until
}

// itelReport is the /_sim/itel answer.
type itelReport struct {
	Counts      ITelCounts       `json:"counts"`
	Submissions []ITelSubmission `json:"submissions"`
}

func (s *Server) itelReport() itelReport {
	return itelReport{Counts: s.ITelCounts(), Submissions: s.ITelSubmissions()}
}

// serveITel answers the iTel endpoint and records the request.
func (s *Server) serveITel(rw http.ResponseWriter, r *http.Request, rest string) {
	w := &statusWriter{ResponseWriter: rw}
	code := s.itelAnswer(w, r, rest)
	s.mu.Lock()
	switch {
	case code == http.StatusServiceUnavailable:
		s.itel.counts.Unavailable++
	case code == http.StatusConflict:
		s.itel.counts.Conflicts++
	case code >= 400 && code < 500:
		s.itel.counts.Rejected++
	}
	s.mu.Unlock()
	s.record(r, "itel", strconv.Itoa(code))
}

func (s *Server) itelAuthorized(r *http.Request) bool {
	if s.cfg.ITelToken == "" {
		return true
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && secureEq(tok, s.cfg.ITelToken)
}

// itelAnswer writes the answer and returns its status.
func (s *Server) itelAnswer(w http.ResponseWriter, r *http.Request, rest string) int {
	fail := func(code int, msg string) int {
		writeJSON(w, code, apiError(msg))
		return code
	}
	now := time.Now()
	s.mu.Lock()
	outage := s.faults.ITelOutage || now.Before(s.itel.outageUntil)
	left := s.itel.outageUntil.Sub(now)
	s.mu.Unlock()
	if outage {
		if left > 0 {
			// A timed outage knows its end, as a maintenance window would.
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(left.Seconds())))))
		}
		return fail(http.StatusServiceUnavailable, "iTel service unavailable (simulated outage)")
	}
	if !s.itelAuthorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="itel"`)
		return fail(http.StatusUnauthorized, "unauthorized")
	}
	switch {
	case rest != "" && r.Method == http.MethodGet:
		s.mu.Lock()
		e, ok := s.itel.byReference[rest]
		var sub ITelSubmission
		if ok {
			sub = e.sub
		}
		s.mu.Unlock()
		if !ok {
			return fail(http.StatusNotFound, "submission not found")
		}
		writeJSON(w, http.StatusOK, sub)
		return http.StatusOK
	case rest == "" && r.Method == http.MethodPost:
		return s.itelSubmit(w, r, now, fail)
	default:
		return fail(http.StatusMethodNotAllowed, "method not allowed")
	}
}

// itelSubmit stores a submission under its Idempotency-Key, Stripe style:
// the first request with a key is accepted (201), the same key with the same
// body replays the first answer (200), with another body is a 409.
func (s *Server) itelSubmit(w http.ResponseWriter, r *http.Request, now time.Time, fail func(int, string) int) int {
	key := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
	if key == "" {
		return fail(http.StatusBadRequest, "the Idempotency-Key header is required")
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxITelBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxITelBody))
		}
		return fail(http.StatusBadRequest, "reading the body: "+err.Error())
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var body map[string]any
	if err := dec.Decode(&body); err != nil || body == nil {
		return fail(http.StatusBadRequest, "the body must be a JSON object")
	}
	assignment, formResponse := idField(body["assignmentId"]), idField(body["formResponseId"])
	if assignment == "" || formResponse == "" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"error": "assignmentId and formResponseId are required", "fields": []string{"assignmentId", "formResponseId"},
		})
		return http.StatusUnprocessableEntity
	}
	// Same body means same JSON value: key order and spacing do not count.
	canon, _ := json.Marshal(body)
	sum := sha256.Sum256(canon)
	hash := hex.EncodeToString(sum[:])

	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.itel
	if e, ok := st.byKey[key]; ok {
		if e.hash != hash {
			writeJSON(w, http.StatusConflict, map[string]any{
				"error":     "the Idempotency-Key was used with a different body",
				"reference": e.sub.Reference,
			})
			return http.StatusConflict
		}
		e.sub.Replays++
		st.counts.Replays++
		w.Header().Set("Idempotent-Replayed", "true")
		writeJSON(w, http.StatusOK, itelAck(e.sub))
		return http.StatusOK
	}
	form := assignment + "/" + formResponse
	if st.forms[form] > 0 {
		st.counts.DuplicateForms++
	}
	st.forms[form]++
	e := &itelEntry{hash: hash, sub: ITelSubmission{
		Reference: fmt.Sprintf("ITL-%d", len(st.order)+1), Status: "accepted", IdempotencyKey: key,
		AssignmentID: assignment, FormResponseID: formResponse, ReceivedAt: now.UTC(), Body: canon,
	}}
	st.byKey[key], st.byReference[e.sub.Reference] = e, e
	st.order = append(st.order, e)
	st.counts.Accepted++
	w.Header().Set("Location", s.itelPath()+"/"+e.sub.Reference)
	writeJSON(w, http.StatusCreated, itelAck(e.sub))
	return http.StatusCreated
}

func itelAck(sub ITelSubmission) map[string]any {
	return map[string]any{
		"reference": sub.Reference, "status": sub.Status,
		"assignmentId": sub.AssignmentID, "formResponseId": sub.FormResponseID,
		"receivedAt": apiTime(sub.ReceivedAt),
	}
}

// idField reads a non-empty id given as a JSON string or number.
func idField(v any) string {
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x)
	case json.Number:
		return x.String()
	}
	return ""
}

// itelMatch reports whether r is for the iTel endpoint.
func (s *Server) itelMatch(r *http.Request) bool {
	_, ok := s.itelRoute(r.URL.Path)
	return ok
}
