//go:build conformance

package conformance

// Fault tests of the hold (issue 12): a dependency that fails — the ClaimX
// API down, not listening, rate limiting, rejecting the credentials; the
// table's object storage stopped — holds the stream; it never sends a valid
// event to the errors topic. Each test is strict (harness.Options.Strict):
// any valid event on the errors topic fails it, and so does any event to
// track that is not in the table exactly once. The errors topic may hold
// the corpus's bad records only (malformed events, unknown assignments),
// each with its reason.
//
// The tests run in parallel (t.Parallel), each on topics, groups, a table
// and a simulator of its own; they log, for FAULTS.md, one FIGURES line:
// events to track, rows, records on the errors topic, the longest hold and
// the time from recovery to the first new row.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/claimxsim"
	"github.com/claimx/claimx-connect/tests/internal/harness"
)

// holdEnv is faultEnv, strict.
func holdEnv(t *testing.T, name string, opts harness.Options) *harness.Env {
	t.Helper()
	opts.Strict = true
	return faultEnv(t, name, opts)
}

// keepAlive waits d, failing the test as soon as a child exits by itself.
func keepAlive(e *harness.Env, d time.Duration) {
	e.T.Helper()
	for until := time.Now().Add(d); time.Now().Before(until); {
		e.CheckAlive()
		time.Sleep(min(250*time.Millisecond, time.Until(until)))
	}
}

// waitUntil polls cond every 100 ms until it holds, failing the test after
// timeout.
func waitUntil(e *harness.Env, what string, timeout time.Duration, cond func() bool) time.Duration {
	e.T.Helper()
	start := time.Now()
	for !cond() {
		e.CheckAlive()
		if time.Since(start) > timeout {
			e.T.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// successAtLeast is a condition: the success topic holds n messages.
func successAtLeast(e *harness.Env, n int64) func() bool {
	return func() bool {
		c, err := e.TopicCount(e.T.Context(), e.Names.Success)
		return err == nil && c >= n
	}
}

// loggedHold is a condition: p has logged a hold of dependency.
func loggedHold(p *harness.Proc, dependency string) func() bool {
	return func() bool {
		for _, h := range p.Holds() {
			if h.Dependency == dependency {
				return true
			}
		}
		return false
	}
}

// recovery measures the time from a dependency's recovery (the call) to the
// first new row (success message).
type recovery struct {
	name  string
	watch func() (time.Duration, bool)
}

func (e *recoveries) start(env *harness.Env, name string) {
	*e = append(*e, recovery{name, env.FirstGrowth(env.Names.Success)})
}

// startOn measures to the first new record of topic instead (the trigger's
// first tracking message, when no worker runs).
func (e *recoveries) startOn(env *harness.Env, name, topic string) {
	*e = append(*e, recovery{name, env.FirstGrowth(topic)})
}

type recoveries []recovery

// check logs each recovery and fails one without a row or slower than
// limit; it returns the longest.
func (rs recoveries) check(t *testing.T, limit time.Duration) (time.Duration, string) {
	t.Helper()
	var longest time.Duration
	var parts []string
	for _, r := range rs {
		d, ok := r.watch()
		if !ok {
			t.Errorf("after %s: no new row at all", r.name)
			parts = append(parts, r.name+": none")
			continue
		}
		longest = max(longest, d)
		parts = append(parts, fmt.Sprintf("%s: %s", r.name, d.Round(100*time.Millisecond)))
		if d > limit {
			t.Errorf("after %s the first new row came %s later, more than %s (one probe interval and a batch)", r.name, d.Round(100*time.Millisecond), limit)
		}
	}
	return longest, strings.Join(parts, ", ")
}

// figures logs the closing-note line of a hold test and checks that the
// errors topic holds the corpus's bad records only.
func figures(t *testing.T, e *harness.Env, x harness.Expectation, o harness.Outcome, rec string, procs ...*harness.Proc) {
	t.Helper()
	errs, _ := e.TopicCount(t.Context(), e.Names.Errors)
	longest, holds := harness.LongestHold(procs...)
	t.Logf("holds: %s", holds)
	var ms []string
	for _, p := range procs {
		m := p.MetricsOfLife()
		if m == nil {
			continue
		}
		var parts []string
		for _, dep := range []string{"itel_worker_claimx_api", "delta_storage"} {
			if _, ok := m[dep+"_available"]; !ok {
				continue
			}
			parts = append(parts, fmt.Sprintf("%s hold_seconds_total %g holds_total %g available %g",
				dep, m[dep+"_hold_seconds_total"], m[dep+"_holds_total"], m[dep+"_available"]))
		}
		ms = append(ms, p.Name+": "+strings.Join(parts, ", "))
	}
	if len(ms) > 0 {
		t.Logf("hold metrics (last scrape of each process): %s", strings.Join(ms, "; "))
	}
	t.Logf("FIGURES %s: events to track %d, rows %d, errors topic %d records (%d bad events of the corpus, %d valid), longest hold %s, recovery to first row %s",
		t.Name(), len(x.Tracked), o.Rows, errs, o.TriggerErrors, o.TriggerFailed+o.WorkerErrors, longest.Round(100*time.Millisecond), rec)
	if o.TriggerFailed+o.WorkerErrors > 0 || o.Rows != len(x.Tracked) {
		t.Errorf("%d valid events on the errors topic, %d rows for %d events to track", o.TriggerFailed+o.WorkerErrors, o.Rows, len(x.Tracked))
	}
}

// settle waits for the publisher and for the pipelines to drain, scrapes
// both processes and checks the run (strict in the hold tests).
func settle(e *harness.Env, x harness.Expectation, pub *harness.Publisher, trigger, worker *harness.Proc) (harness.Outcome, time.Duration) {
	e.T.Helper()
	pub.Wait(e.T)
	drained := e.WaitDrained(pub, 3*time.Second, 3*time.Minute)
	scrapeAll(e.T.Context(), trigger, worker)
	e.CheckAlive()
	o := e.Verify(x, pub, worker.Lives())
	e.Report(x, o)
	return o, drained
}

// scrapeAll scrapes every process (keeping the last scrape of each life).
func scrapeAll(ctx context.Context, ps ...*harness.Proc) {
	for _, p := range ps {
		_, _ = p.Scrape(ctx)
	}
}

// TestFaultHoldAPIDown: the ClaimX API answers 503 for the first 60 s of the
// trigger, which starts on a backlog of 400 events, and again for 60 s
// mid-stream, while the rest are published at 10/s. The worker starts when
// the second outage does, on the backlog of what the trigger tracked
// between the outages (a worker running all along sits idle behind a held
// trigger and meets no outage: measured). Both streams hold and resume;
// every event to track is in the table exactly once and the errors topic
// holds the bad events only. The pipelines keep their default hold settings
// (hold_max_interval 30 s).
func TestFaultHoldAPIDown(t *testing.T) {
	t.Parallel()
	began := time.Now()
	seed := faultSeed(t, 10)
	// A short cache TTL, so that the mid-stream outage meets lookups
	// rather than cached answers.
	e := holdEnv(t, "hold-down", harness.Options{ChildEnv: []string{"CLAIMX_CACHE_TTL=2s"}})
	events, x := generate(t, e, seed, 800)
	ctx := t.Context()

	if err := e.Sim.SetFaults(claimxsim.Faults{Outage: true}); err != nil {
		t.Fatal(err)
	}
	backlog := 400
	pub := e.Publish(events[:backlog], 100, 50)
	pub.Wait(t)
	trigger, worker := e.TriggerProc(), e.WorkerProc()
	trigger.Start()
	keepAlive(e, 60*time.Second)
	scrapeAll(ctx, trigger, worker)
	before := e.Sim.Stats()
	var recs recoveries
	if err := e.Sim.SetFaults(claimxsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	recs.startOn(e, "the outage at startup (first tracking message; no worker yet)", e.Names.Tracking)
	t.Logf("outage 1: %d events published before the streams started, API down for their first 60 s: %s; holds %s",
		backlog, simDelta(claimxsim.Stats{ByStatus: map[string]int64{}}, before), func() string { _, s := harness.LongestHold(trigger, worker); return s }())
	if !loggedHold(trigger, "ClaimX API")() {
		t.Errorf("the trigger logged no hold during 60 s of 503")
	}

	// The second outage starts only once the trigger is through the first:
	// its probe may come up to hold_max_interval (30 s) after the API
	// returns, and an outage beginning before that would be counted as the
	// first one's recovery time (and leave the worker no backlog to meet it).
	waitUntil(e, "the trigger's first tracking message after the outage", 90*time.Second, func() bool {
		n, err := e.TopicCount(ctx, e.Names.Tracking)
		return err == nil && n > 0
	})
	// The rest of the events at 10/s; after 15 s of them, 60 s down again.
	rest := e.PublishFrom(events, backlog, 10, 10)
	keepAlive(e, 15*time.Second)
	rows1, _ := e.TopicCount(ctx, e.Names.Success)
	before = e.Sim.Stats()
	if err := e.Sim.SetFaults(claimxsim.Faults{Outage: true}); err != nil {
		t.Fatal(err)
	}
	workerBacklog, _ := e.TopicCount(ctx, e.Names.Tracking)
	worker.Start()
	keepAlive(e, 60*time.Second)
	scrapeAll(ctx, trigger, worker)
	if err := e.Sim.SetFaults(claimxsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	recs.start(e, "the outage mid-stream")
	rows2, _ := e.TopicCount(ctx, e.Names.Success)
	t.Logf("outage 2 (mid-stream; the worker started with it on %d tracking messages): success messages %d before, %d after; API answers %s", workerBacklog, rows1, rows2, simDelta(before, e.Sim.Stats()))
	if !loggedHold(worker, "ClaimX API")() {
		t.Errorf("the worker logged no hold: it did not meet the outage with its backlog")
	}

	rest.Wait(t)
	drained := e.WaitDrained(rest, 3*time.Second, 4*time.Minute)
	scrapeAll(ctx, trigger, worker)
	e.CheckAlive()
	all := harness.MergePublishers(pub, rest)
	o := e.Verify(x, all, worker.Lives())
	e.Report(x, o)
	st := e.Sim.Stats()
	t.Logf("simulator over the run: %d requests, by status %v", st.Total, st.ByStatus)
	if st.ByStatus["503"] == 0 {
		t.Errorf("the simulator answered no 503")
	}
	if n := len(trigger.Holds()) + len(worker.Holds()); n < 2 {
		t.Errorf("%d holds logged over two outages", n)
	}
	rec, recText := recs.check(t, 45*time.Second)
	_ = rec
	figures(t, e, x, o, recText, trigger, worker)
	t.Logf("timing: drain %s, total %s", drained.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// TestFaultHoldAPINotListening: the streams start 10 s before the ClaimX
// API listens at all (connection refused), on a backlog.
func TestFaultHoldAPINotListening(t *testing.T) {
	t.Parallel()
	began := time.Now()
	seed := faultSeed(t, 11)
	e := holdEnv(t, "hold-refused", harness.Options{SimNotListening: true})
	events, x := generate(t, e, seed, 400)
	pub := e.Publish(events, 40, 20) // 10 s
	trigger, worker := e.TriggerProc(), e.WorkerProc()
	trigger.Start()
	worker.Start()
	keepAlive(e, 10*time.Second)
	held := loggedHold(trigger, "ClaimX API")()
	rows, _ := e.TopicCount(t.Context(), e.Names.Success)
	if err := e.Sim.Resume(); err != nil {
		t.Fatal(err)
	}
	var recs recoveries
	recs.start(e, "the API listening")
	t.Logf("API listening from %s on; %d events published, %d rows before", time.Since(began).Round(time.Millisecond), pub.Sent(), rows)
	if !held {
		t.Errorf("the trigger logged no hold in 10 s of refused connections")
	}
	if rows != 0 {
		t.Errorf("%d rows before the API listened", rows)
	}
	o, drained := settle(e, x, pub, trigger, worker)
	var reasons []string
	for _, h := range trigger.Holds() {
		reasons = append(reasons, h.Reason)
	}
	t.Logf("trigger hold reasons: %v", reasons)
	_, recText := recs.check(t, 20*time.Second)
	figures(t, e, x, o, recText, trigger, worker)
	t.Logf("timing: drain %s, total %s", drained.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// TestFaultHoldUnauthorized: the API rejects the credentials (401) for 30 s
// mid-stream, then accepts them again (a token rotation the deployment
// catches up with).
func TestFaultHoldUnauthorized(t *testing.T) {
	t.Parallel()
	began := time.Now()
	seed := faultSeed(t, 12)
	e := holdEnv(t, "hold-401", harness.Options{ChildEnv: []string{"CLAIMX_CACHE_TTL=2s"}})
	events, x := generate(t, e, seed, 500)
	trigger, worker := e.TriggerProc(), e.WorkerProc()
	trigger.Start()
	worker.Start()
	pub := e.Publish(events, 12, 12) // about 40 s
	waitUntil(e, "20 rows before the 401s", 60*time.Second, successAtLeast(e, 20))
	before := e.Sim.Stats()
	if err := e.Sim.SetFaults(claimxsim.Faults{Unauthorized: true}); err != nil {
		t.Fatal(err)
	}
	at := time.Since(began)
	keepAlive(e, 30*time.Second)
	scrapeAll(t.Context(), trigger, worker)
	if err := e.Sim.SetFaults(claimxsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	var recs recoveries
	recs.start(e, "the credentials accepted again")
	during := simDelta(before, e.Sim.Stats())
	t.Logf("401 to every API request from %s for 30 s: API answers %s", at.Round(time.Millisecond), during)
	if !strings.Contains(during, "401=") {
		t.Errorf("no 401 answered during the rotation")
	}
	o, drained := settle(e, x, pub, trigger, worker)
	if len(trigger.Holds())+len(worker.Holds()) == 0 {
		t.Errorf("no hold logged during 30 s of 401")
	}
	_, recText := recs.check(t, 45*time.Second)
	figures(t, e, x, o, recText, trigger, worker)
	t.Logf("timing: drain %s, total %s", drained.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// TestFaultHoldSIGTERM: the API goes down mid-stream (the worker starts
// then, on a backlog); once both streams hold, both get SIGTERM and must exit within benthos's shutdown timeout
// (20 s) without committing or failing the held records; they are started
// again after the API is back, and every event ends in the table once.
func TestFaultHoldSIGTERM(t *testing.T) {
	t.Parallel()
	began := time.Now()
	seed := faultSeed(t, 13)
	e := holdEnv(t, "hold-sigterm", harness.Options{ChildEnv: []string{"CLAIMX_CACHE_TTL=1s"}})
	events, x := generate(t, e, seed, 400)
	// The worker starts with the outage, on the trigger's backlog: a worker
	// running all along would be idle behind a held trigger.
	trigger, worker := e.TriggerProc(), e.WorkerProc()
	trigger.Start()
	pub := e.Publish(events, 20, 10) // 20 s
	waitUntil(e, "40 tracking messages before the outage", 60*time.Second, func() bool {
		n, err := e.TopicCount(t.Context(), e.Names.Tracking)
		return err == nil && n >= 40
	})
	if err := e.Sim.SetFaults(claimxsim.Faults{Outage: true}); err != nil {
		t.Fatal(err)
	}
	downAt := time.Now()
	worker.Start()
	waitUntil(e, "both streams holding", 60*time.Second, func() bool {
		return loggedHold(trigger, "ClaimX API")() && loggedHold(worker, "ClaimX API")()
	})
	keepAlive(e, 3*time.Second)
	scrapeAll(t.Context(), trigger, worker)
	tm, wm := trigger.MetricsOfLife(), worker.MetricsOfLife()
	t.Logf("held %s after the outage began: trigger records held %g, worker records held %g; %d events published",
		time.Since(downAt).Round(time.Millisecond), tm["itel_worker_claimx_api_records_held"], wm["itel_worker_claimx_api_records_held"], pub.Sent())
	errsBefore, _ := e.TopicCount(t.Context(), e.Names.Errors)
	const shutdownTimeout = 20 * time.Second
	var exits []string
	for _, p := range []*harness.Proc{trigger, worker} {
		took, err := p.Terminate(shutdownTimeout + 10*time.Second)
		exits = append(exits, fmt.Sprintf("%s exited %s after SIGTERM (%v)", p.Name, took.Round(time.Millisecond), err))
		if err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
		if took > shutdownTimeout+2*time.Second {
			t.Errorf("%s took %s to exit after SIGTERM, more than the shutdown timeout %s", p.Name, took.Round(time.Millisecond), shutdownTimeout)
		}
	}
	errsAfter, _ := e.TopicCount(t.Context(), e.Names.Errors)
	t.Logf("%s; errors topic %d records before SIGTERM, %d after", strings.Join(exits, "; "), errsBefore, errsAfter)
	logTail := harness.TailFile(worker.LogPath, 15)
	t.Logf("worker log at its exit:\n%s", logTail)

	pub.Wait(t)
	if err := e.Sim.SetFaults(claimxsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	var recs recoveries
	recs.start(e, "the restart with the API back")
	trigger.Start()
	worker.Start()
	o, drained := settle(e, x, pub, trigger, worker)
	_, recText := recs.check(t, 30*time.Second)
	figures(t, e, x, o, recText+"; "+strings.Join(exits, "; "), trigger, worker)
	t.Logf("timing: drain %s, total %s", drained.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}
