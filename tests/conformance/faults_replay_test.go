//go:build conformance

package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/claimxsim"
	"github.com/claimx/claimx-connect/tests/internal/harness"
)

// replaySummary is the part of `errors replay --json` the test reads.
type replaySummary struct {
	Read       int            `json:"read"`
	Selected   int            `json:"selected"`
	Replayable int            `json:"replayable"`
	Replayed   int            `json:"replayed"`
	Failed     int            `json:"failed"`
	Inexact    int            `json:"inexact"`
	Skipped    int            `json:"skipped"`
	ByStage    map[string]int `json:"by_stage"`
	DryRun     bool           `json:"dry_run"`
}

// replayCmd runs `claimx-connect errors replay` with the test's errors
// topic and the given flags, and decodes its --json summary.
func replayCmd(t *testing.T, e *harness.Env, flags ...string) replaySummary {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	args := append([]string{"errors", "replay", "--brokers", strings.Join(e.Brokers, ","), "--topic", e.Names.Errors, "--json"}, flags...)
	cmd := exec.CommandContext(ctx, harness.BinPath, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("claimx-connect %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, stderr.String())
	}
	var s replaySummary
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("claimx-connect %s: output is not the JSON summary: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("claimx-connect %s: %s", strings.Join(args[2:], " "), bytes.TrimSpace(out))
	return s
}

// TestFaultReplayDiverted runs the pipelines with CLAIMX_ON_UNAVAILABLE=error
// (the dead-letter behaviour) through a 20 s API outage, so that valid
// events are diverted to the errors topic (trigger and worker lookups), then
// restarts them in hold mode (the default) as a user moving off it would.
// `claimx-connect errors replay --dry-run` must count exactly the diverted
// records on the topic; the replay proper must bring every diverted event
// into the table exactly once; a second replay must add no row.
func TestFaultReplayDiverted(t *testing.T) {
	t.Parallel()
	began := time.Now()
	seed := faultSeed(t, 15)
	e := faultEnv(t, "replay", harness.Options{ChildEnv: []string{"CLAIMX_ON_UNAVAILABLE=error", "CLAIMX_CACHE_TTL=1s"}})
	e.AllowTriggerError = lookupFailure
	e.AllowWorkerError = func(stage, reason string) bool { return stage == "lookup" && lookupFailure(reason) }
	e.AllowReplayed = true
	events, x := generate(t, e, seed, 400)
	ctx := t.Context()

	trigger, worker := e.TriggerProc(), e.WorkerProc()
	trigger.Start()
	pub := e.Publish(events, 20, 10) // 20 s
	// The worker starts with the outage, on the trigger's backlog, so that
	// its lookups fail too.
	waitUntil(e, "50 tracking messages before the outage", 60*time.Second, func() bool {
		n, err := e.TopicCount(ctx, e.Names.Tracking)
		return err == nil && n >= 50
	})
	if err := e.Sim.SetFaults(claimxsim.Faults{OutageFor: claimxsim.Duration(20 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	worker.Start()
	keepAlive(e, 20*time.Second)
	pub.Wait(t)
	drained := e.WaitDrained(pub, 3*time.Second, 3*time.Minute)

	// What the outage diverted.
	selectRE := `503|circuit`
	re := regexp.MustCompile(selectRE)
	onTopic := map[string]int{}
	var diverted, unselected int
	bad := map[int]bool{}
	for i := range x.TriggerErrors {
		bad[i] = true
	}
	for _, r := range e.ConsumeAll(e.Names.Errors) {
		var m harness.ErrorMsg
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatalf("error record %d/%d: %v", r.Partition, r.Offset, err)
		}
		if (m.Stage == "trigger" || m.Stage == "lookup") && re.MatchString(m.Error) {
			onTopic[m.Stage]++
			diverted++
		} else if lookupFailure(m.Error) {
			unselected++
			t.Errorf("a lookup failure the replay's selection misses (stage %s): %s", m.Stage, m.Error)
		}
	}
	t.Logf("after the outage (error mode): %d records diverted by the outage on the errors topic, by stage %v", diverted, onTopic)
	if onTopic["trigger"] == 0 || onTopic["lookup"] == 0 {
		t.Fatalf("the outage diverted %d trigger and %d worker lookups: the test needs both", onTopic["trigger"], onTopic["lookup"])
	}
	rowsBefore, _ := harness.ReadTable(t, e.TableDir)

	// The user then moves to the hold (the default) and replays: in error
	// mode a replayed burst right after an outage meets the breaker
	// half-open, and the lookups it does not let through are diverted
	// again (measured: 2 of 220 in one run, back on the errors topic with
	// "circuit breaker is half-open").
	for _, p := range []*harness.Proc{trigger, worker} {
		if _, err := p.Terminate(30 * time.Second); err != nil {
			t.Fatalf("stopping %s: %v", p.Name, err)
		}
		p.Setenv("CLAIMX_ON_UNAVAILABLE=hold")
		p.Start()
	}

	// 1. Dry run: its counts are what is on the topic.
	flags := []string{"--stage", "trigger,lookup", "--reason-regex", selectRE}
	dry := replayCmd(t, e, append(flags, "--dry-run")...)
	if !dry.DryRun || dry.Selected != diverted || dry.Replayable != diverted || dry.Inexact != 0 || dry.Skipped != 0 {
		t.Errorf("dry run: selected %d, replayable %d, inexact %d, skipped %d; the errors topic holds %d diverted records", dry.Selected, dry.Replayable, dry.Inexact, dry.Skipped, diverted)
	}
	for _, st := range []string{"trigger", "lookup"} {
		if dry.ByStage[st] != onTopic[st] {
			t.Errorf("dry run: %d records of stage %s, the errors topic holds %d", dry.ByStage[st], st, onTopic[st])
		}
	}
	if n, _ := e.TopicCount(ctx, e.Names.Events); n != int64(len(events)) {
		t.Errorf("the dry run published: the events topic holds %d records, %d were published", n, len(events))
	}

	// 2. The replay.
	replayAt := time.Now()
	var recs recoveries
	recs.start(e, "the replay")
	got := replayCmd(t, e, flags...)
	if got.Replayed != diverted || got.Failed != 0 || got.Inexact != 0 {
		t.Errorf("replay: %d replayed, %d failed, %d inexact; %d diverted", got.Replayed, got.Failed, got.Inexact, diverted)
	}
	drained2 := e.WaitDrained(pub, 3*time.Second, 3*time.Minute)
	e.CheckAlive()
	o := e.Verify(x, pub, worker.Lives())
	e.Report(x, o)
	t.Logf("events replayed and then in the table: %d; rows before the replay %d, after %d", o.Replayed, len(rowsBefore), o.Rows)
	if o.Rows != len(x.Tracked) || o.MissingFromTable != 0 {
		t.Errorf("after the replay: %d rows, %d events to track", o.Rows, len(x.Tracked))
	}

	// 3. A second replay adds no row.
	again := replayCmd(t, e, flags...)
	drained3 := e.WaitDrained(pub, 3*time.Second, 3*time.Minute)
	ids, version := harness.ReadTable(t, e.TableDir)
	seen := map[string]int{}
	var dups []string
	for _, id := range ids {
		if seen[id]++; seen[id] == 2 {
			dups = append(dups, id)
		}
	}
	sort.Strings(dups)
	t.Logf("second replay: %d records republished (%d selected: the first replay's failures, if any, are new records); table version %d, %d rows (before it %d)",
		again.Replayed, again.Selected, version, len(ids), o.Rows)
	if len(ids) != o.Rows || len(dups) > 0 {
		t.Errorf("the second replay changed the table: %d rows (was %d), %d event_ids twice, e.g. %v", len(ids), o.Rows, len(dups), harness.Head(dups))
	}
	errs, _ := e.TopicCount(ctx, e.Names.Errors)
	_, recText := recs.check(t, 30*time.Second)
	t.Logf("FIGURES %s: events to track %d, diverted %d (trigger %d, worker %d), rows %d after the replay and %d after the second, errors topic %d records, replay to first row %s",
		t.Name(), len(x.Tracked), diverted, onTopic["trigger"], onTopic["lookup"], o.Rows, len(ids), errs, recText)
	t.Logf("timing: drain after the outage %s, after the replay %s (replay began %s after the start), after the second %s; total %s",
		drained.Round(time.Millisecond), drained2.Round(time.Millisecond), replayAt.Sub(began).Round(time.Millisecond), drained3.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}
