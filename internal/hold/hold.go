// Package hold makes a stream wait for a dependency that is unavailable
// instead of failing its records. A component classifies each failure: one
// that belongs to the record (bad input, a 404) is the record's error; one of
// the dependency (a 503, a timeout, storage down) is wrapped with Unavailable.
// Gate.Do then keeps the records where they are (not acknowledged, so their
// offsets do not advance), probes with capped exponential backoff and
// jitter, and returns once the dependency answers again.
//
// The package knows nothing of benthos: components give a Gate an Observer
// for metrics and logs.
package hold

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is what a component does when its dependency is unavailable.
type Mode string

const (
	// ModeHold pauses the stream until the dependency is back.
	ModeHold Mode = "hold"
	// ModeError fails the records, so that the pipeline routes them (to an
	// errors topic, say): the behaviour for users who want a dead-letter queue.
	ModeError Mode = "error"
)

// UnavailableError is a failure of a dependency, not of the record.
type UnavailableError struct {
	// Reason is a short class for metrics and the hold log: "503",
	// "timeout", "connection", "circuit_open", "storage".
	Reason string
	// RetryAfter is how long the dependency asked to be left alone (a
	// Retry-After header); zero when it did not say. The hold waits at
	// least this long even when the dependency answers other requests
	// meanwhile (a rate limit answers some and refuses others).
	RetryAfter time.Duration
	// ReopensIn is how long until this process may ask again on its own
	// account (the circuit breaker half-opens): the hold waits that long
	// unless the dependency is seen answering before.
	ReopensIn time.Duration
	// Err is the failure itself.
	Err error
}

func (e *UnavailableError) Error() string { return e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// Unavailable wraps err as a dependency failure.
func Unavailable(reason string, retryAfter time.Duration, err error) error {
	return &UnavailableError{Reason: reason, RetryAfter: retryAfter, Err: err}
}

// AsUnavailable returns the dependency failure in err's chain, if any.
func AsUnavailable(err error) (*UnavailableError, bool) {
	var u *UnavailableError
	if errors.As(err, &u) {
		return u, true
	}
	return nil, false
}

// ErrInterrupted is returned by Gate.Do when its context ends during a hold
// (the stream is stopping): the records were neither processed nor failed.
var ErrInterrupted = errors.New("interrupted while holding for an unavailable dependency")

// Config tunes the probing of a hold.
type Config struct {
	// InitialInterval is the wait before the first probe (default 1s).
	InitialInterval time.Duration
	// MaxInterval caps the wait between probes (default 30s). A
	// Retry-After from the dependency may ask for longer and is honoured.
	MaxInterval time.Duration
	// Timeout, when positive, ends a hold that lasts longer with a fatal
	// error (Gate.OnFatal); zero holds for as long as it takes.
	Timeout time.Duration
	// Dependency names the dependency across the process (a base URL, a
	// table URI): the gates of one dependency wake each other, so a lookup
	// that finds the API back frees every stream held on it at once instead
	// of at each one's next probe. Empty: the gate wakes only its own holders.
	Dependency string
}

func (c Config) withDefaults() Config {
	if c.InitialInterval <= 0 {
		c.InitialInterval = time.Second
	}
	if c.MaxInterval <= 0 {
		c.MaxInterval = 30 * time.Second
	}
	if c.InitialInterval > c.MaxInterval {
		c.InitialInterval = c.MaxInterval
	}
	return c
}

// Observer is told what a gate does; components turn it into metrics and
// structured logs. Calls are serialised by the gate.
type Observer interface {
	// Entered: the dependency became unavailable and records wait.
	Entered(reason string, records int, err error)
	// Left: the dependency answers again; heldFor is the length of the hold
	// and records how many records waited in it.
	Left(heldFor time.Duration, records int)
	// RecordsHeld is the number of records waiting now.
	RecordsHeld(n int)
	// HeldSeconds adds whole seconds of holding to a running total.
	HeldSeconds(n int64)
	// TimedOut: the hold outlasted Config.Timeout.
	TimedOut(heldFor time.Duration, err error)
}

// Gate is the hold state of one dependency, shared by every goroutine (every
// pipeline thread) that calls it.
type Gate struct {
	cfg Config
	obs Observer
	// OnFatal is called once when a hold outlasts Config.Timeout (the
	// process should stop with that error); the held records keep waiting
	// until the context of their Do ends.
	OnFatal func(error)

	mu       sync.Mutex
	holders  int       // calls of Do in a hold now
	records  int       // records waiting now
	waited   int       // records that waited in the current hold
	since    time.Time // start of the current hold
	accrued  time.Time // hold time counted up to here
	carry    time.Duration
	wake     *waker // fired when the dependency answers, to wake the holders
	fatalled bool
	now      func() time.Time
}

// NewGate returns a gate; obs may be nil.
func NewGate(cfg Config, obs Observer) *Gate {
	if obs == nil {
		obs = nopObserver{}
	}
	cfg = cfg.withDefaults()
	return &Gate{cfg: cfg, obs: obs, wake: wakerOf(cfg.Dependency), now: time.Now}
}

// Config returns the gate's probing configuration, defaults applied.
func (g *Gate) Config() Config { return g.cfg }

// Held reports whether some caller is holding now, and since when.
func (g *Gate) Held() (bool, time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.holders > 0, g.since
}

// Do calls try until it returns something other than an UnavailableError,
// and returns that. The first call has probe false; calls made while holding
// have probe true, so try can send a single request before the rest. records
// is the number of records that wait while Do holds.
//
// When ctx ends during a hold Do returns an error wrapping ErrInterrupted
// and the dependency failure.
func (g *Gate) Do(ctx context.Context, records int, try func(ctx context.Context, probe bool) error) error {
	err := try(ctx, false)
	u, ok := AsUnavailable(err)
	if !ok {
		return err
	}
	g.enter(records, u)
	start := g.now()
	interval := g.cfg.InitialInterval
	for {
		wait := jitter(interval)
		interval = min(interval*2, g.cfg.MaxInterval)
		wait = min(wait, g.cfg.MaxInterval)
		wait = max(wait, u.RetryAfter, u.ReopensIn)
		if g.cfg.Timeout > 0 {
			if left := g.cfg.Timeout - g.now().Sub(start); left <= 0 {
				g.timedOut(g.now().Sub(start), u)
			} else if wait > left {
				// Probe once more at the deadline rather than sleep past it.
				wait = left
			}
		}
		// A Retry-After is a floor no other answer may cut short: the
		// dependency answered other requests while it still asked this
		// one to wait (a rate limit), so the wake-up only shortens the
		// backoff beyond it.
		floor := min(u.RetryAfter, wait)
		ok := sleep(ctx, floor, nil)
		if ok {
			wake := g.wake.wait()
			ok = sleep(ctx, wait-floor, wake)
			g.wake.done()
		}
		if !ok {
			g.leave(records, false)
			return fmt.Errorf("%w: %w", ErrInterrupted, u)
		}
		g.accrue()
		err = try(ctx, true)
		if u, ok = AsUnavailable(err); !ok {
			if ctx.Err() != nil {
				g.leave(records, false)
				return fmt.Errorf("%w: %w", ErrInterrupted, ctx.Err())
			}
			g.leave(records, true)
			return err
		}
	}
}

// jitter spreads a wait over ±20% so that pipeline threads and replicas do
// not probe in step.
func jitter(d time.Duration) time.Duration {
	f := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * f)
}

func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-wake:
		return true
	case <-ctx.Done():
		return false
	}
}

// Answered tells the gate that the dependency has just answered a request
// (not a cache, not a refusal by the circuit breaker): every holder of the
// dependency, in any gate, probes now. Cheap when nobody holds.
func (g *Gate) Answered() { g.wake.fire() }

// waker wakes the holders of one dependency when it answers again.
type waker struct {
	waiting atomic.Int32
	mu      sync.Mutex
	ch      chan struct{}
}

var (
	wakersMu sync.Mutex
	wakers   = map[string]*waker{}
)

// wakerOf returns the process-wide waker of a dependency, or a waker of
// its own for an unnamed one.
func wakerOf(dependency string) *waker {
	if dependency == "" {
		return &waker{ch: make(chan struct{})}
	}
	wakersMu.Lock()
	defer wakersMu.Unlock()
	w := wakers[dependency]
	if w == nil {
		w = &waker{ch: make(chan struct{})}
		wakers[dependency] = w
	}
	return w
}

// wait registers a holder and returns the channel closed at the next fire.
func (w *waker) wait() <-chan struct{} {
	w.waiting.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

func (w *waker) done() { w.waiting.Add(-1) }

// fire wakes every holder waiting now; cheap when none is.
func (w *waker) fire() {
	if w.waiting.Load() == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.ch)
	w.ch = make(chan struct{})
}

func (g *Gate) enter(records int, u *UnavailableError) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.holders == 0 {
		g.since = g.now()
		g.accrued = g.since
		g.waited = 0
		g.fatalled = false
		g.obs.Entered(u.Reason, records, u.Err)
	}
	g.holders++
	g.records += records
	g.waited += records
	g.obs.RecordsHeld(g.records)
}

func (g *Gate) leave(records int, recovered bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.accrueLocked()
	g.holders--
	g.records -= records
	g.obs.RecordsHeld(g.records)
	if recovered {
		// The dependency answers: the others probe now instead of at the
		// end of their wait.
		g.wake.fire()
	}
	if g.holders == 0 && recovered {
		g.obs.Left(g.now().Sub(g.since), g.waited)
	}
}

func (g *Gate) accrue() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.accrueLocked()
}

// accrueLocked adds the hold time since the last call to the seconds total,
// in whole seconds, carrying the rest.
func (g *Gate) accrueLocked() {
	if g.holders == 0 {
		return
	}
	now := g.now()
	g.carry += now.Sub(g.accrued)
	g.accrued = now
	if s := int64(g.carry / time.Second); s > 0 {
		g.obs.HeldSeconds(s)
		g.carry -= time.Duration(s) * time.Second
	}
}

func (g *Gate) timedOut(heldFor time.Duration, u *UnavailableError) {
	g.mu.Lock()
	if g.fatalled {
		g.mu.Unlock()
		return
	}
	g.fatalled = true
	g.mu.Unlock()
	err := fmt.Errorf("dependency unavailable for %v, longer than hold_timeout %v: %w",
		heldFor.Round(time.Second), g.cfg.Timeout, u)
	g.obs.TimedOut(heldFor, err)
	if g.OnFatal != nil {
		g.OnFatal(err)
	}
}

type nopObserver struct{}

func (nopObserver) Entered(string, int, error)    {}
func (nopObserver) Left(time.Duration, int)       {}
func (nopObserver) RecordsHeld(int)               {}
func (nopObserver) HeldSeconds(int64)             {}
func (nopObserver) TimedOut(time.Duration, error) {}
