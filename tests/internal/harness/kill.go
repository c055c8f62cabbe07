package harness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

const (
	minKillDelay    = 300 * time.Millisecond
	maxKillDelay    = 1500 * time.Millisecond
	progressTimeout = 60 * time.Second
)

// KillRecord is one kill: how long the life ran, and how long after its
// first visible progress the SIGKILL landed.
type KillRecord struct {
	Life          int
	RanFor        time.Duration
	AfterProgress time.Duration
	Metrics       map[string]float64
}

// killRepeatedly lets p make visible progress (progress() grows), then
// kills it with SIGKILL at a random moment 300–1500 ms later and restarts
// it, n times, or until the stream has nothing left for it (all events
// published and p's group has committed everything: a kill would no longer
// land mid-stream).
func (e *Env) KillRepeatedly(p *Proc, n int, rng *rand.Rand, pub *Publisher, group, topic string, progress func(context.Context) (int64, error)) []KillRecord {
	e.T.Helper()
	ctx := e.T.Context()
	var kills []KillRecord
	for k := range n {
		lifeStart := time.Now()
		base, err := progress(ctx)
		if err != nil {
			e.T.Fatal(err)
		}
		for {
			e.CheckAlive()
			cur, err := progress(ctx)
			if err != nil {
				e.T.Fatal(err)
			}
			if cur > base {
				break
			}
			if pub.Finished() {
				if lag, err := e.GroupLag(ctx, group, topic); err == nil && lag == 0 {
					e.T.Logf("the stream was drained before kill %d of %d: no more kills", k+1, n)
					return kills
				}
			}
			if time.Since(lifeStart) > progressTimeout {
				e.T.Fatalf("STUCK: %s life %d made no progress within %s of its start, with records of %s left to commit", p.Name, k+1, progressTimeout, topic)
			}
			time.Sleep(50 * time.Millisecond)
		}
		progressAt := time.Now()
		delay := minKillDelay + time.Duration(rng.Int64N(int64(maxKillDelay-minKillDelay)+1))
		for until := progressAt.Add(delay); time.Now().Before(until); {
			e.CheckAlive()
			// The last scrape before the kill is what this life counted.
			_, _ = p.Scrape(ctx)
			time.Sleep(min(100*time.Millisecond, time.Until(until)))
		}
		p.Kill()
		kills = append(kills, KillRecord{Life: k + 1, RanFor: time.Since(lifeStart), AfterProgress: time.Since(progressAt), Metrics: p.MetricsOfLife()})
		p.Start()
	}
	return kills
}

// topicsGrowth sums the records of the given topics.
func (e *Env) TopicsGrowth(topics ...string) func(context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		var n int64
		for _, t := range topics {
			c, err := e.TopicCount(ctx, t)
			if err != nil {
				return 0, err
			}
			n += c
		}
		return n, nil
	}
}

func (e *Env) LogKills(name string, kills []KillRecord) {
	e.T.Helper()
	for _, k := range kills {
		e.T.Logf("%s life %d: SIGKILL after %s (%s after its first visible progress); last scrape: %s",
			name, k.Life, k.RanFor.Round(time.Millisecond), k.AfterProgress.Round(time.Millisecond), FmtMetrics(k.Metrics))
	}
}

var reportedMetrics = []string{
	"delta_commits_total", "delta_rows_written_total", "delta_rows_skipped_duplicate_total",
	"delta_rows_skipped_replayed_total", "itel_worker_messages_consumed_total",
	"itel_plugin_events_published_total",
}

func FmtMetrics(m map[string]float64) string {
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

func FmtCounts(m map[string]int) string {
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
func (e *Env) Report(x Expectation, o Outcome) {
	e.T.Helper()
	e.T.Logf("expected from the generator: %d events, %d tracked, %d trigger errors, %d passed over", len(x.Events), len(x.Tracked), len(x.TriggerErrors), x.Dropped)
	e.T.Logf("tracking topic: %d messages, %d distinct events", o.TrackingMsgs, o.TrackingUnique)
	e.T.Logf("errors topic: %d trigger error messages for %d distinct events; %d worker errors", o.TriggerErrMsgs, o.TriggerErrors, o.WorkerErrors)
	e.T.Logf("table: version %d, %d rows; delta-rs: %s; %d txn actions; %d commits of a batch below its partition's recorded offset (written after a later batch)", o.Version, o.Rows, o.DeltaRS, o.Txn.Txns, o.Txn.BelowOffset)
	e.T.Logf("success topic: %d messages, write_status %s; rows whose first success message is a duplicate: %d", o.SuccessMsgs, FmtCounts(o.Statuses), o.FirstDuplicate)
	if len(o.ErrorsByStage) > 0 {
		e.T.Logf("errors topic by stage: %s", FmtCounts(o.ErrorsByStage))
		e.T.Logf("errors topic by stage and reason:")
		for _, r := range Keys(o.ErrorReasons) {
			e.T.Logf("  %5d  %s", o.ErrorReasons[r], r)
		}
	}
	if o.TriggerFailed > 0 || o.WorkerErrDups > 0 || o.TrackedAfterError > 0 {
		e.T.Logf("valid events the trigger put on the errors topic: %d (of which %d were tracked after all, on a replay); worker errors repeated for one event: %d", o.TriggerFailed, o.TrackedAfterError, o.WorkerErrDups)
	}
	for i, c := range o.SuccessByLife {
		e.T.Logf("  worker life %d published success: %s", i+1, FmtCounts(c))
	}
}
