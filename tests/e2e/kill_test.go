package e2e

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/claimxsim"
	"github.com/claimx/claimx-connect/tests/internal/harness"
)

const (
	numEvents    = 3000
	publishRate  = 80 // events per second: publishing lasts about 37 s, past the kills
	publishChunk = 30
	drainTimeout = 90 * time.Second
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
	return harness.Seed(t, "E2E_SEED", delta)
}

// TestWorkerSurvivesSIGKILL is the acceptance test of the exactly-once
// worker: the trigger and the worker run as separate processes, the worker
// is killed with SIGKILL at random moments while events flow, restarted each
// time, and every tracked event must end up in the table exactly once.
func TestWorkerSurvivesSIGKILL(t *testing.T) {
	harness.RequireBinary(t)
	began := time.Now()
	seed := testSeed(t, 0)
	e := harness.New(t)
	events := claimxsim.GenerateEvents(claimxsim.DefaultEventOptions(int64(seed), numEvents, e.Sim.Assignments()))
	x := harness.Expect(t, events)

	trigger := e.TriggerProc()
	trigger.Start()
	worker := e.WorkerProc()
	worker.Start()
	pub := e.Publish(events, publishRate, publishChunk)

	rng := rand.New(rand.NewPCG(seed, 0x5151))
	kills := e.KillRepeatedly(worker, numKills(t), rng, pub, e.Names.WorkerGroup, e.Names.Tracking, e.TopicsGrowth(e.Names.Success))
	killPhase := time.Since(began)
	pub.Wait(t)
	drained := e.WaitDrained(pub, 2*time.Second, drainTimeout)
	final, err := worker.Scrape(t.Context())
	if err != nil {
		t.Errorf("scraping the last worker life: %v", err)
	}

	o := e.Verify(x, pub, worker.Lives())
	e.LogKills("worker", kills)
	t.Logf("last worker life (not killed): %s", harness.FmtMetrics(final))
	e.Report(x, o)

	// Kills must have landed mid-stream: some replayed message was
	// recognised as already in the table.
	recognised := o.Statuses["duplicate"] + o.Statuses["replayed"]
	var restartsWithReplays int
	for i, c := range o.SuccessByLife {
		if i > 0 && c["duplicate"]+c["replayed"] > 0 {
			restartsWithReplays++
		}
	}
	t.Logf("%d of %d kills were followed by replays of rows already committed (killed between a Delta commit and the offset commit); %d rows were committed but their success message was not published before the kill",
		restartsWithReplays, len(kills), o.FirstDuplicate)
	if recognised == 0 {
		t.Errorf("no success message says duplicate or replayed: no kill landed between a Delta commit and its offset commit, so the test proved nothing about replays")
	}
	if len(x.Tracked) == 0 || o.Rows == 0 {
		t.Errorf("nothing was tracked (%d expected, %d rows)", len(x.Tracked), o.Rows)
	}
	t.Logf("timing: kill phase %s, drain %s, total %s", killPhase.Round(time.Millisecond), drained.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// TestTriggerSurvivesSIGKILL kills the trigger the same way: it is
// at-least-once, so every expected event must be on the tracking topic at
// least once, and the worker's dedupe on event_id must still leave exactly
// one row per event.
func TestTriggerSurvivesSIGKILL(t *testing.T) {
	harness.RequireBinary(t)
	began := time.Now()
	seed := testSeed(t, 1)
	e := harness.New(t)
	events := claimxsim.GenerateEvents(claimxsim.DefaultEventOptions(int64(seed), numEvents, e.Sim.Assignments()))
	x := harness.Expect(t, events)

	worker := e.WorkerProc()
	worker.Start()
	trigger := e.TriggerProc()
	trigger.Start()
	pub := e.Publish(events, publishRate, publishChunk)

	rng := rand.New(rand.NewPCG(seed, 0x7177))
	kills := e.KillRepeatedly(trigger, numKills(t), rng, pub, e.Names.TriggerGroup, e.Names.Events, e.TopicsGrowth(e.Names.Tracking, e.Names.Errors))
	killPhase := time.Since(began)
	pub.Wait(t)
	drained := e.WaitDrained(pub, 2*time.Second, drainTimeout)
	final, err := worker.Scrape(t.Context())
	if err != nil {
		t.Errorf("scraping the worker: %v", err)
	}

	o := e.Verify(x, pub, worker.Lives())
	e.LogKills("trigger", kills)
	t.Logf("worker (never killed): %s", harness.FmtMetrics(final))
	e.Report(x, o)
	t.Logf("the trigger republished %d tracking messages and %d error messages after its kills", o.TrackingMsgs-o.TrackingUnique, o.TriggerErrMsgs-o.TriggerErrors)
	if o.TrackingMsgs > o.TrackingUnique && o.Statuses["duplicate"] == 0 {
		t.Errorf("the tracking topic holds %d repeated events, and the worker reported none as duplicate", o.TrackingMsgs-o.TrackingUnique)
	}
	if o.TrackingMsgs == o.TrackingUnique {
		t.Errorf("no tracking message was republished: no kill landed between a publish and the trigger's offset commit, so the test proved nothing about the worker absorbing them")
	}
	t.Logf("timing: kill phase %s, drain %s, total %s", killPhase.Round(time.Millisecond), drained.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}
