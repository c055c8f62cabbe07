package hold

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is an Observer that remembers what it was told.
type recorder struct {
	mu       sync.Mutex
	entered  []string
	left     []int
	held     []int
	seconds  int64
	timedOut int
}

func (r *recorder) Entered(reason string, _ int, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entered = append(r.entered, reason)
}

func (r *recorder) Left(_ time.Duration, records int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.left = append(r.left, records)
}

func (r *recorder) RecordsHeld(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held = append(r.held, n)
}

func (r *recorder) HeldSeconds(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seconds += n
}

func (r *recorder) TimedOut(time.Duration, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timedOut++
}

var fast = Config{InitialInterval: 10 * time.Millisecond, MaxInterval: 40 * time.Millisecond}

// failing returns a try that fails as unavailable n times, then returns end.
func failing(n int, end error, calls *atomic.Int32, probes *atomic.Int32) func(context.Context, bool) error {
	return func(_ context.Context, probe bool) error {
		c := calls.Add(1)
		if probe {
			probes.Add(1)
		}
		if int(c) <= n {
			return Unavailable("503", 0, fmt.Errorf("attempt %d: 503 Service Unavailable", c))
		}
		return end
	}
}

func TestDo(t *testing.T) {
	recordErr := errors.New("assignment 7: 404")
	cases := []struct {
		name       string
		failures   int
		end        error
		wantErr    error
		wantCalls  int32
		wantProbes int32
		wantHold   bool
	}{
		{"success at once: no hold", 0, nil, nil, 1, 0, false},
		{"record error at once: returned, no hold", 0, recordErr, recordErr, 1, 0, false},
		{"unavailable twice, then success", 2, nil, nil, 3, 2, true},
		{"unavailable, then a record error: the hold ends with it", 1, recordErr, recordErr, 2, 1, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{}
			g := NewGate(fast, rec)
			var calls, probes atomic.Int32
			err := g.Do(t.Context(), 5, failing(c.failures, c.end, &calls, &probes))
			if !errors.Is(err, c.wantErr) || (c.wantErr == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, c.wantErr)
			}
			if calls.Load() != c.wantCalls || probes.Load() != c.wantProbes {
				t.Fatalf("calls %d probes %d, want %d and %d", calls.Load(), probes.Load(), c.wantCalls, c.wantProbes)
			}
			if held := len(rec.entered) == 1; held != c.wantHold {
				t.Fatalf("entered %v, want a hold: %v", rec.entered, c.wantHold)
			}
			if c.wantHold {
				if len(rec.left) != 1 || rec.left[0] != 5 || rec.held[0] != 5 || rec.held[len(rec.held)-1] != 0 {
					t.Fatalf("left %v, records held %v", rec.left, rec.held)
				}
			}
			if h, _ := g.Held(); h {
				t.Fatal("the gate still reads held")
			}
		})
	}
}

func TestDoBacksOffUpToMaxInterval(t *testing.T) {
	g := NewGate(Config{InitialInterval: 10 * time.Millisecond, MaxInterval: 40 * time.Millisecond}, nil)
	var times []time.Time
	err := g.Do(t.Context(), 1, func(context.Context, bool) error {
		times = append(times, time.Now())
		if len(times) < 7 {
			return Unavailable("timeout", 0, errors.New("timed out"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(times); i++ {
		gap := times[i].Sub(times[i-1])
		// Never a hot loop, never longer than the cap (plus scheduling).
		if gap < 8*time.Millisecond || gap > 40*time.Millisecond+30*time.Millisecond {
			t.Errorf("wait %d was %v, want within [8ms, 70ms]", i, gap)
		}
	}
	if last := times[6].Sub(times[5]); last < 30*time.Millisecond {
		t.Errorf("the waits did not grow to the cap: the last was %v", last)
	}
}

func TestDoHonoursRetryAfter(t *testing.T) {
	g := NewGate(fast, nil)
	start := time.Now()
	n := 0
	err := g.Do(t.Context(), 1, func(context.Context, bool) error {
		n++
		if n == 1 {
			return Unavailable("429", 150*time.Millisecond, errors.New("429 Too Many Requests"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("probed after %v, before the Retry-After of 150ms", d)
	}
}

func TestDoInterrupted(t *testing.T) {
	rec := &recorder{}
	g := NewGate(fast, rec)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Millisecond)
	defer cancel()
	err := g.Do(ctx, 3, func(context.Context, bool) error {
		return Unavailable("connection", 0, errors.New("connection refused"))
	})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err %v, want ErrInterrupted", err)
	}
	if len(rec.left) != 0 {
		t.Fatal("an interrupted hold must not read as the dependency being back")
	}
	if rec.held[len(rec.held)-1] != 0 {
		t.Fatalf("records held %v, want back to 0", rec.held)
	}
}

func TestDoTimeoutIsFatalOnceAndKeepsHolding(t *testing.T) {
	rec := &recorder{}
	g := NewGate(Config{InitialInterval: 10 * time.Millisecond, MaxInterval: 20 * time.Millisecond, Timeout: 50 * time.Millisecond}, rec)
	var fatal atomic.Int32
	g.OnFatal = func(error) { fatal.Add(1) }
	ctx, cancel := context.WithTimeout(t.Context(), 250*time.Millisecond)
	defer cancel()
	err := g.Do(ctx, 1, func(context.Context, bool) error {
		return Unavailable("503", 0, errors.New("503"))
	})
	// The records are never released as failed: only the end of the
	// stream ends the hold.
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err %v, want ErrInterrupted", err)
	}
	if fatal.Load() != 1 || rec.timedOut != 1 {
		t.Fatalf("OnFatal called %d times, TimedOut %d, want once each", fatal.Load(), rec.timedOut)
	}
}

func TestGateSharedByHolders(t *testing.T) {
	rec := &recorder{}
	g := NewGate(fast, rec)
	var up atomic.Bool
	quick := func(context.Context, bool) error {
		if up.Load() {
			return nil
		}
		return Unavailable("503", 0, errors.New("503"))
	}
	// The second holder's circuit reopens in 10 s: only the first one's
	// recovery can free it early.
	patient := func(_ context.Context, probe bool) error {
		if !probe {
			return &UnavailableError{Reason: "circuit_open", ReopensIn: 10 * time.Second, Err: errors.New("circuit open")}
		}
		return nil
	}
	var wg sync.WaitGroup
	wg.Add(2)
	done := make(chan time.Duration, 2)
	start := time.Now()
	go func() { defer wg.Done(); _ = g.Do(t.Context(), 2, quick); done <- time.Since(start) }()
	time.Sleep(30 * time.Millisecond)
	go func() { defer wg.Done(); _ = g.Do(t.Context(), 3, patient); done <- time.Since(start) }()
	time.Sleep(50 * time.Millisecond)
	up.Store(true)
	wg.Wait()
	a, b := <-done, <-done
	if max(a, b) > 2*time.Second {
		t.Fatalf("holders ended after %v and %v: the recovery did not wake the other holder", a, b)
	}
	if len(rec.entered) != 1 || len(rec.left) != 1 || rec.left[0] != 5 {
		t.Fatalf("one hold of 5 records expected across both holders, got entered %v left %v", rec.entered, rec.left)
	}
}

func TestHeldSecondsAccrue(t *testing.T) {
	rec := &recorder{}
	g := NewGate(fast, rec)
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	g.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	n := 0
	err := g.Do(t.Context(), 1, func(context.Context, bool) error {
		n++
		advance(700 * time.Millisecond)
		if n < 5 {
			return Unavailable("503", 0, errors.New("503"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Entered after the first try; four probes of 700 ms each follow.
	if rec.seconds != 2 {
		t.Fatalf("hold seconds %d, want 2 (2.8 s held, whole seconds counted)", rec.seconds)
	}
}

func TestGatesOfOneDependencyWakeEachOther(t *testing.T) {
	dep := "claimx http://api.example/" + t.Name()
	held := NewGate(Config{InitialInterval: 10 * time.Millisecond, MaxInterval: 5 * time.Second, Dependency: dep}, nil)
	other := NewGate(Config{Dependency: dep}, nil)
	stranger := NewGate(Config{Dependency: dep + "/elsewhere"}, nil)
	var up atomic.Bool
	done := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		_ = held.Do(t.Context(), 1, func(_ context.Context, probe bool) error {
			if up.Load() {
				return nil
			}
			// The circuit reopens in 10 s: only a wake-up frees it early.
			return &UnavailableError{Reason: "circuit_open", ReopensIn: 10 * time.Second, Err: errors.New("circuit open")}
		})
		done <- time.Since(start)
	}()
	time.Sleep(50 * time.Millisecond)
	up.Store(true)
	stranger.Answered() // another dependency: must not wake it
	select {
	case d := <-done:
		t.Fatalf("woken by another dependency's answer after %v", d)
	case <-time.After(100 * time.Millisecond):
	}
	other.Answered()
	select {
	case d := <-done:
		if d > 2*time.Second {
			t.Fatalf("the holder probed after %v", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("another gate's answer from the same dependency did not wake the holder")
	}
}

// A rate-limited API answers some requests and refuses others: another
// request's answer must not send the refused one back before its
// Retry-After (the conformance 429 storm caught a probe 928 ms after a
// "Retry-After: 1").
func TestWakeUpKeepsTheRetryAfter(t *testing.T) {
	dep := "claimx http://api.example/" + t.Name()
	held := NewGate(Config{InitialInterval: 10 * time.Millisecond, MaxInterval: 5 * time.Second, Dependency: dep}, nil)
	other := NewGate(Config{Dependency: dep}, nil)
	const retryAfter = 300 * time.Millisecond
	done := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		n := 0
		_ = held.Do(t.Context(), 1, func(context.Context, bool) error {
			n++
			if n == 1 {
				return Unavailable("429", retryAfter, errors.New("429 Too Many Requests"))
			}
			return nil
		})
		done <- time.Since(start)
	}()
	time.Sleep(50 * time.Millisecond)
	for range 5 {
		other.Answered()
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case d := <-done:
		if d < retryAfter {
			t.Fatalf("probed after %v, before the Retry-After of %v", d, retryAfter)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the holder never probed")
	}
}
