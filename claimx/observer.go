package claimx

import "time"

// Observer is told what the client does; the claimx_connection and
// claimx_lookup processors turn it into metrics and logs. Calls may come
// from many goroutines at once.
type Observer interface {
	// Attempted: an HTTP request went out and ended, answered or not, after
	// latency (body included).
	Attempted(latency time.Duration)
	// Failed: an attempt failed, or the open circuit refused a request
	// (status 0), as class. A request interrupted by its context, or that
	// could not get a token or its turn at the rate limit, is not counted.
	Failed(class Class, status int)
	// Retrying: attempt number attempt failed with err (its reason already
	// scrubbed) and the next one starts after wait.
	Retrying(attempt int, wait time.Duration, err *Error)
	// Answered: the API answered with an answer of its own (a success or the
	// record's failure; not a refusal of the circuit, not a dependency
	// failure): streams held on the API may probe now.
	Answered()
	// BreakerChanged: the circuit breaker went from one state to another
	// ("closed", "open", "half-open"). Only the client's observer (WithObserver)
	// is told, never a request's.
	BreakerChanged(from, to string)
}

// NopObserver ignores everything; embed it to implement part of Observer.
type NopObserver struct{}

// Attempted does nothing.
func (NopObserver) Attempted(time.Duration) {}

// Failed does nothing.
func (NopObserver) Failed(Class, int) {}

// Retrying does nothing.
func (NopObserver) Retrying(int, time.Duration, *Error) {}

// Answered does nothing.
func (NopObserver) Answered() {}

// BreakerChanged does nothing.
func (NopObserver) BreakerChanged(string, string) {}
