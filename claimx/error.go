package claimx

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/claimx/claimx-connect/internal/hold"
)

// Class is the kind of a failed request: the value of the claimx_lookup_error
// metadata and the reason label of the errors counter.
type Class string

// Failure classes.
const (
	// ClassAuth: the API refused the credentials (401), or no token could
	// be had from the token endpoint.
	ClassAuth Class = "auth"
	// ClassNotFound: 404, the API does not know the object.
	ClassNotFound Class = "not_found"
	// ClassClient: another 4xx, or a request that could not be built.
	ClassClient Class = "client"
	// ClassTransient: 5xx, 429, timeouts, connection failures.
	ClassTransient Class = "transient"
	// ClassCircuitOpen: the circuit breaker refused the request without
	// calling the API.
	ClassCircuitOpen Class = "circuit_open"
	// ClassInvalidResponse: a 200 whose body is not JSON, too large, or a
	// status the API does not use (a redirect).
	ClassInvalidResponse Class = "invalid_response"
)

// Error is a failed request. Its text names the class, the status, the URL
// path (never the host, the query or a credential) and the reason, with
// every credential the client knows scrubbed.
type Error struct {
	Class Class
	// Status is the HTTP status of the last attempt; 0 when the API did not
	// answer.
	Status int
	// Method is the request's method when it is not a GET ("POST"); empty
	// for a GET.
	Method string
	// Path is the escaped URL path of the request.
	Path     string
	Attempts int
	Reason   string
	// RetryAfter is how long the API asked to be left alone (Retry-After)
	// or, for ClassCircuitOpen, how long until the circuit half-opens.
	RetryAfter time.Duration
	// Cause is, for ClassCircuitOpen, the hold reason of the failures that
	// opened the circuit (a "503").
	Cause string
}

// Unavailable classifies the failure (docs/FAILURES.md): nil when it
// belongs to the record (it would fail again however long we waited: a 404,
// a 400 or 422 naming the request built from it, an answer too big to hold),
// else the dependency failure that a held stream waits out. An open circuit
// sets ReopensIn (a real answer from the API may end the wait sooner); a
// Retry-After from the API sets RetryAfter (a floor nothing cuts short).
func (e *Error) Unavailable() *hold.UnavailableError {
	reason := ""
	switch e.Class {
	case ClassNotFound:
		return nil
	case ClassClient:
		switch e.Status {
		case 0, http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusGone,
			http.StatusRequestEntityTooLarge, http.StatusRequestURITooLong, http.StatusUnprocessableEntity:
			return nil
		}
		reason = strconv.Itoa(e.Status)
	case ClassInvalidResponse:
		if e.TooBig() {
			return nil
		}
		reason = string(ClassInvalidResponse)
	case ClassCircuitOpen:
		reason = string(ClassCircuitOpen)
		if e.Cause != "" {
			reason = e.Cause
		}
	case ClassAuth, ClassTransient:
		switch {
		case e.Status != 0:
			reason = strconv.Itoa(e.Status)
		case e.Class == ClassAuth:
			reason = string(ClassAuth)
		case strings.HasPrefix(e.Reason, "timed out"):
			reason = "timeout"
		default:
			reason = "connection"
		}
	default:
		reason = string(e.Class)
	}
	u := &hold.UnavailableError{Reason: reason, Err: e}
	if e.Class == ClassCircuitOpen {
		u.ReopensIn = e.RetryAfter
	} else {
		u.RetryAfter = e.RetryAfter
	}
	return u
}

// tooBigReason starts the reason of an answer over MaxResponseBytes.
const tooBigReason = "body larger than max_response_bytes"

// TooBig reports an answer over Config.MaxResponseBytes: the record's
// answer, which no wait makes smaller.
func (e *Error) TooBig() bool {
	return e.Class == ClassInvalidResponse && strings.HasPrefix(e.Reason, tooBigReason)
}

// Error reads "claimx lookup GET <path> failed[ after N attempts]: <class>[:
// status N]: <reason>", the text the errors topic has always carried; a POST
// reads "claimx client POST <path> failed…".
func (e *Error) Error() string {
	var b strings.Builder
	if e.Method == "" || e.Method == http.MethodGet {
		fmt.Fprintf(&b, "claimx lookup GET %s", e.Path)
	} else {
		fmt.Fprintf(&b, "claimx client %s %s", e.Method, e.Path)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " failed after %d attempts", e.Attempts)
	} else {
		b.WriteString(" failed")
	}
	fmt.Fprintf(&b, ": %s", e.Class)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": status %d", e.Status)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, ": %s", e.Reason)
	}
	return b.String()
}
