package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/claimxsim"
)

const (
	numEvents       = 3000
	publishRate     = 80 // events per second: publishing lasts about 37 s, past the kills
	publishChunk    = 30
	minKillDelay    = 300 * time.Millisecond
	maxKillDelay    = 1500 * time.Millisecond
	progressTimeout = 60 * time.Second
	drainTimeout    = 90 * time.Second
)

// numKills is how many times a test kills its stream (E2E_KILLS, default 5).
func numKills(t *testing.T) int {
	t.Helper()
	n := 5
	if s := os.Getenv("E2E_KILLS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			t.Fatalf("E2E_KILLS=%q: want a number of kills", s)
		}
		n = v
	}
	return n
}

// testSeed is the seed of the run (E2E_SEED or the default) plus delta, so
// that each test has its own events and kill schedule.
func testSeed(t *testing.T, delta uint64) uint64 {
	t.Helper()
	seed := uint64(20260129)
	if s := os.Getenv("E2E_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("E2E_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d+%d (set E2E_SEED to change)", seed, delta)
	return seed + delta
}

// killRecord is one kill: how long the life ran, and how long after its
// first visible progress the SIGKILL landed.
type killRecord struct {
	life          int
	ranFor        time.Duration
	afterProgress time.Duration
	metrics       map[string]float64
}

// killRepeatedly lets p make visible progress (progress() grows), then
// kills it with SIGKILL at a random moment 300–1500 ms later and restarts
// it, n times, or until the stream has nothing left for it (all events
// published and p's group has committed everything: a kill would no longer
// land mid-stream).
func (e *env) killRepeatedly(p *proc, n int, rng *rand.Rand, pub *publisher, group, topic string, progress func(context.Context) (int64, error)) []killRecord {
	e.t.Helper()
	ctx := e.t.Context()
	var kills []killRecord
	for k := range n {
		lifeStart := time.Now()
		base, err := progress(ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		for {
			e.checkAlive()
			cur, err := progress(ctx)
			if err != nil {
				e.t.Fatal(err)
			}
			if cur > base {
				break
			}
			if pub.finished() {
				if lag, err := e.groupLag(ctx, group, topic); err == nil && lag == 0 {
					e.t.Logf("the stream was drained before kill %d of %d: no more kills", k+1, n)
					return kills
				}
			}
			if time.Since(lifeStart) > progressTimeout {
				e.t.Fatalf("STUCK: %s life %d made no progress within %s of its start, with records of %s left to commit", p.name, k+1, progressTimeout, topic)
			}
			time.Sleep(50 * time.Millisecond)
		}
		progressAt := time.Now()
		delay := minKillDelay + time.Duration(rng.Int64N(int64(maxKillDelay-minKillDelay)+1))
		for until := progressAt.Add(delay); time.Now().Before(until); {
			e.checkAlive()
			// The last scrape before the kill is what this life counted.
			_, _ = p.scrape(ctx)
			time.Sleep(min(100*time.Millisecond, time.Until(until)))
		}
		p.kill()
		kills = append(kills, killRecord{life: k + 1, ranFor: time.Since(lifeStart), afterProgress: time.Since(progressAt), metrics: p.metricsOfLife()})
		p.start()
	}
	return kills
}

// topicsGrowth sums the records of the given topics.
func (e *env) topicsGrowth(topics ...string) func(context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		var n int64
		for _, t := range topics {
			c, err := e.topicCount(ctx, t)
			if err != nil {
				return 0, err
			}
			n += c
		}
		return n, nil
	}
}

func (e *env) logKills(name string, kills []killRecord) {
	e.t.Helper()
	for _, k := range kills {
		e.t.Logf("%s life %d: SIGKILL after %s (%s after its first visible progress); last scrape: %s",
			name, k.life, k.ranFor.Round(time.Millisecond), k.afterProgress.Round(time.Millisecond), fmtMetrics(k.metrics))
	}
}

var reportedMetrics = []string{
	"delta_commits_total", "delta_rows_written_total", "delta_rows_skipped_duplicate_total",
	"delta_rows_skipped_replayed_total", "itel_worker_messages_consumed_total",
	"itel_plugin_events_published_total",
}

func fmtMetrics(m map[string]float64) string {
	if m == nil {
		return "none"
	}
	var parts []string
	for _, name := range reportedMetrics {
		if v, ok := m[name]; ok {
			parts = append(parts, fmt.Sprintf("%s=%g", name, v))
		}
	}
	return strings.Join(parts, " ")
}

func fmtCounts(m map[string]int) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// report logs the measured figures of a run.
func (e *env) report(x expectation, o outcome) {
	e.t.Helper()
	e.t.Logf("expected from the generator: %d events, %d tracked, %d trigger errors, %d passed over", len(x.events), len(x.tracked), len(x.triggerErrors), x.dropped)
	e.t.Logf("tracking topic: %d messages, %d distinct events", o.trackingMsgs, o.trackingUnique)
	e.t.Logf("errors topic: %d trigger error messages for %d distinct events; %d worker errors", o.triggerErrMsgs, o.triggerErrors, o.workerErrors)
	e.t.Logf("table: version %d, %d rows; delta-rs: %s; %d txn actions; %d commits of a batch below its partition's recorded offset (written after a later batch)", o.version, o.rows, o.deltaRS, o.txn.txns, o.txn.belowOffset)
	e.t.Logf("success topic: %d messages, write_status %s; rows whose first success message is a duplicate: %d", o.successMsgs, fmtCounts(o.statuses), o.firstDuplicate)
	for i, c := range o.successByLife {
		e.t.Logf("  worker life %d published success: %s", i+1, fmtCounts(c))
	}
}

// TestWorkerSurvivesSIGKILL is the acceptance test of the exactly-once
// worker: the trigger and the worker run as separate processes, the worker
// is killed with SIGKILL at random moments while events flow, restarted each
// time, and every tracked event must end up in the table exactly once.
func TestWorkerSurvivesSIGKILL(t *testing.T) {
	requireBinary(t)
	began := time.Now()
	seed := testSeed(t, 0)
	e := newEnv(t)
	events := claimxsim.GenerateEvents(claimxsim.DefaultEventOptions(int64(seed), numEvents, e.sim.Assignments()))
	x := expect(t, events)

	trigger := e.triggerProc()
	trigger.start()
	worker := e.workerProc()
	worker.start()
	pub := e.publish(events, publishRate, publishChunk)

	rng := rand.New(rand.NewPCG(seed, 0x5151))
	kills := e.killRepeatedly(worker, numKills(t), rng, pub, workerGroup, trackingTopic, e.topicsGrowth(successTopic))
	killPhase := time.Since(began)
	pub.wait(t)
	drained := e.waitDrained(pub, 2*time.Second, drainTimeout)
	final, err := worker.scrape(t.Context())
	if err != nil {
		t.Errorf("scraping the last worker life: %v", err)
	}

	o := e.verify(x, pub, worker.lives())
	e.logKills("worker", kills)
	t.Logf("last worker life (not killed): %s", fmtMetrics(final))
	e.report(x, o)

	// Kills must have landed mid-stream: some replayed message was
	// recognised as already in the table.
	recognised := o.statuses["duplicate"] + o.statuses["replayed"]
	var restartsWithReplays int
	for i, c := range o.successByLife {
		if i > 0 && c["duplicate"]+c["replayed"] > 0 {
			restartsWithReplays++
		}
	}
	t.Logf("%d of %d kills were followed by replays of rows already committed (killed between a Delta commit and the offset commit); %d rows were committed but their success message was not published before the kill",
		restartsWithReplays, len(kills), o.firstDuplicate)
	if recognised == 0 {
		t.Errorf("no success message says duplicate or replayed: no kill landed between a Delta commit and its offset commit, so the test proved nothing about replays")
	}
	if len(x.tracked) == 0 || o.rows == 0 {
		t.Errorf("nothing was tracked (%d expected, %d rows)", len(x.tracked), o.rows)
	}
	t.Logf("timing: kill phase %s, drain %s, total %s", killPhase.Round(time.Millisecond), drained.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// TestTriggerSurvivesSIGKILL kills the trigger the same way: it is
// at-least-once, so every expected event must be on the tracking topic at
// least once, and the worker's dedupe on event_id must still leave exactly
// one row per event.
func TestTriggerSurvivesSIGKILL(t *testing.T) {
	requireBinary(t)
	began := time.Now()
	seed := testSeed(t, 1)
	e := newEnv(t)
	events := claimxsim.GenerateEvents(claimxsim.DefaultEventOptions(int64(seed), numEvents, e.sim.Assignments()))
	x := expect(t, events)

	worker := e.workerProc()
	worker.start()
	trigger := e.triggerProc()
	trigger.start()
	pub := e.publish(events, publishRate, publishChunk)

	rng := rand.New(rand.NewPCG(seed, 0x7177))
	kills := e.killRepeatedly(trigger, numKills(t), rng, pub, triggerGroup, eventsTopic, e.topicsGrowth(trackingTopic, errorsTopic))
	killPhase := time.Since(began)
	pub.wait(t)
	drained := e.waitDrained(pub, 2*time.Second, drainTimeout)
	final, err := worker.scrape(t.Context())
	if err != nil {
		t.Errorf("scraping the worker: %v", err)
	}

	o := e.verify(x, pub, worker.lives())
	e.logKills("trigger", kills)
	t.Logf("worker (never killed): %s", fmtMetrics(final))
	e.report(x, o)
	t.Logf("the trigger republished %d tracking messages and %d error messages after its kills", o.trackingMsgs-o.trackingUnique, o.triggerErrMsgs-o.triggerErrors)
	if o.trackingMsgs > o.trackingUnique && o.statuses["duplicate"] == 0 {
		t.Errorf("the tracking topic holds %d repeated events, and the worker reported none as duplicate", o.trackingMsgs-o.trackingUnique)
	}
	if o.trackingMsgs == o.trackingUnique {
		t.Errorf("no tracking message was republished: no kill landed between a publish and the trigger's offset commit, so the test proved nothing about the worker absorbing them")
	}
	t.Logf("timing: kill phase %s, drain %s, total %s", killPhase.Round(time.Millisecond), drained.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}
