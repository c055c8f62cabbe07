// Package inputs holds the project's benthos inputs that are not Kafka's:
// thin adapters from an engine to a stream of messages.
package inputs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/robfig/cron/v3"

	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/quality"
)

const (
	qciFieldExpectations = "expectations"
	qciFieldSchedule     = "schedule"
	qciFieldRunAtStart   = "run_at_start"
	qciFieldOnly         = "only"
	qciFieldClaimsURI    = "claims_uri"
)

// Metadata the input sets on each message.
const (
	QualityMetaStatus      = "quality_status"
	QualityMetaExpectation = "quality_expectation"
	QualityMetaSeverity    = "quality_severity"
	QualityMetaTable       = "quality_table"
	QualityMetaKind        = "quality_kind"
	QualityMetaRunID       = "quality_run_id"
)

// qciMetricClaimedElsewhere counts scheduled runs this replica skipped
// because another replica claimed them.
const qciMetricClaimedElsewhere = "quality_runs_claimed_elsewhere_total"

// qciExample is the spec's example (a test builds it).
const qciExample = `
input:
  quality_check:
    expectations: ./pipelines/quality/expectations.yaml
    schedule: "*/15 * * * *"

output:
  broker:
    pattern: fan_out
    outputs:
      - delta_lake:
          table_uri: ${QUALITY_RESULTS_TABLE_URI:./data/_quality_results}
          create_if_missing: true
          schema_file: ./schemas/quality_results.yaml
          idempotency: { dedupe_column: result_id }
      - switch:
          cases:
            - check: '@quality_status == "fail" && @quality_severity == "critical"'
              output:
                http_client:
                  url: ${QUALITY_ALERT_WEBHOOK_URL:http://localhost:8080/alerts}
                  verb: POST
            - output:
                drop: {}
`

func qualityCheckInputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Utility").
		Summary("Evaluates data-quality expectations over Delta tables on a cron schedule and emits one message per expectation result.").
		Description(`
The expectations file is the one `+"`claimx-connect delta check`"+` reads (docs/QUALITY.md): tables by name, and
freshness, completeness, null_rate, unique, range, allowed_values and referential expectations. Each
run answers what it can from the Delta log (partition values, file statistics) and reads only the
needed columns of the other files. Table handles are kept between runs, so a run reads only the
commits made since the last.

Each tick produces one batch: a message per expectation, whose content is the result as JSON with the
columns of the results table (schemas/quality_results.yaml), so a `+"`delta_lake`"+` output can append
the messages as they are:

`+"```json"+`
{"result_id": "20260114T210000Z-3f9a1c2e/tracking_fresh", "run_id": "20260114T210000Z-3f9a1c2e",
 "expectation": "tracking_fresh", "table_name": "itel_cabinet_task_tracking", "kind": "freshness",
 "severity": "critical", "status": "fail", "observed": 7200, "threshold": 3600,
 "message": "stale: newest event_timestamp is 2026-01-14T19:00:00Z (2h0m0s old), more than max_age 1h0m0s",
 "details": "{\"column\":\"event_timestamp\", ...}", "files_considered": 16, "files_pruned": 15,
 "files_scanned": 0, "rows_scanned": 0, "table_version": 16,
 "evaluated_at": "2026-01-14T21:00:00.012Z", "duration_ms": 3}
`+"```"+`

`+"`status`"+` is pass, fail, skipped (freshness outside working hours) or error (the table, a column or Kafka
could not be read; the other expectations still run). `+"`observed`"+` and `+"`threshold`"+` are null on error.

### Metadata

`+"```text"+`
- `+QualityMetaStatus+` (pass, fail, skipped, error)
- `+QualityMetaExpectation+`
- `+QualityMetaSeverity+` (warning, critical)
- `+QualityMetaTable+`
- `+QualityMetaKind+`
- `+QualityMetaRunID+`
`+"```"+`

### Acknowledgement

A batch is acknowledged as a whole; a rejected batch is logged and not evaluated again (the next tick
evaluates afresh). Give the `+"`delta_lake`"+` output `+"`idempotency.dedupe_column: result_id`"+` so a
retried write adds no row.

### Metrics

`+"`"+quality.MetricStatus+"{expectation,table,kind}`"+` (1 pass, 0 fail, -1 skipped, -2 error),
`+"`"+quality.MetricObserved+"{expectation,table,kind}`"+`, `+"`"+quality.MetricChecks+"{expectation,status}`"+`,
`+"`"+quality.MetricFilesScanned+"{expectation,table}`"+` and `+"`"+quality.MetricLastRun+"`"+`: the names
`+"`delta check --metrics-addr`"+` serves.`).
		Fields(
			service.NewStringField(qciFieldExpectations).
				Description("The expectations file (YAML). `${VAR:default}` in it is the environment.").
				Example("./pipelines/quality/expectations.yaml"),
			service.NewStringField(qciFieldSchedule).
				Description("When to run: a cron expression (minute hour day-of-month month day-of-week, in local time unless prefixed with `CRON_TZ=America/Chicago `) or a descriptor such as `@hourly` or `@every 5m`.").
				Default("*/15 * * * *").
				Example("*/5 8-18 * * 1-5").
				Example("@every 10m"),
			service.NewBoolField(qciFieldRunAtStart).
				Description("Also run once when the input starts, before the first tick.").
				Default(true),
			service.NewStringField(qciFieldClaimsURI).
				Description("Where replicas claim runs (a directory or bucket prefix: `file://`, `s3://`, `abfss://`, `gs://`, with the expectations file's storage settings). Set, each scheduled tick runs in one replica only — the one that first creates the tick's claim object, atomically on every backend — and the run at start in one of the replicas started before the same tick; the others skip it (`"+qciMetricClaimedElsewhere+"`). Every replica computes the same ticks (`@every` ticks are aligned to multiples of their interval). Empty: every replica runs every tick. Give it a location of its own; claims older than 7 days are deleted there (only objects named like claims).").
				Example("s3://claimx-lake/_quality_claims").
				Default(""),
			service.NewStringListField(qciFieldOnly).
				Description("Evaluate only these expectations (by name); empty: all of them.").
				Advanced().
				Default([]any{}),
		).
		Example("Alerts and the results table", "Runs the checks every 15 minutes, appends every result to the results table and posts failed critical expectations to a webhook.", qciExample)
}

func init() {
	service.MustRegisterBatchInput("quality_check", qualityCheckInputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
			return newQualityCheckInput(conf, mgr)
		})
}

func newQualityCheckInput(conf *service.ParsedConfig, mgr *service.Resources) (*qualityCheckInput, error) {
	path, err := conf.FieldString(qciFieldExpectations)
	if err != nil {
		return nil, err
	}
	spec, err := conf.FieldString(qciFieldSchedule)
	if err != nil {
		return nil, err
	}
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", qciFieldSchedule, spec, err)
	}
	if every, ok := sched.(cron.ConstantDelaySchedule); ok {
		// @every counts from when it is asked; aligned, every replica has
		// the same ticks, so claims and run ids match across replicas.
		sched = alignedEvery(every.Delay)
	}
	atStart, err := conf.FieldBool(qciFieldRunAtStart)
	if err != nil {
		return nil, err
	}
	only, err := conf.FieldStringList(qciFieldOnly)
	if err != nil {
		return nil, err
	}
	cfg, err := quality.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	exps, err := cfg.Select(only)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", qciFieldOnly, err)
	}
	claimsURI, err := conf.FieldString(qciFieldClaimsURI)
	if err != nil {
		return nil, err
	}
	ev := quality.NewEvaluator(cfg, quality.Options{})
	var claims *runClaims
	if claimsURI != "" {
		st, err := storage.Open(context.Background(), claimsURI, ev.StorageOptions())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", qciFieldClaimsURI, err)
		}
		claims = &runClaims{store: st}
	}
	m := mgr.Metrics()
	return &qualityCheckInput{
		ev:        ev,
		claims:    claims,
		selection: selectionHash(exps),
		mSkipped:  m.NewCounter(qciMetricClaimedElsewhere),
		exps:      exps,
		sched:     sched,
		startRun:  atStart,
		log:       mgr.Logger(),
		mStatus:   m.NewGauge(quality.MetricStatus, "expectation", "table", "kind"),
		mObs:      m.NewGauge(quality.MetricObserved, "expectation", "table", "kind"),
		mChecks:   m.NewCounter(quality.MetricChecks, "expectation", "status"),
		mFiles:    m.NewCounter(quality.MetricFilesScanned, "expectation", "table"),
		mLastRun:  m.NewGauge(quality.MetricLastRun),
	}, nil
}

// qualityCheckInput evaluates the expectations at each tick; ReadBatch is
// called by one goroutine, so the fields need no lock.
type qualityCheckInput struct {
	ev       *quality.Evaluator
	exps     []*quality.Expectation
	sched    cron.Schedule
	startRun bool
	// claims is nil when every replica runs every tick.
	claims    *runClaims
	selection string
	mSkipped  *service.MetricCounter
	log       *service.Logger

	mStatus, mObs, mLastRun *service.MetricGauge
	mChecks, mFiles         *service.MetricCounter
}

func (q *qualityCheckInput) Connect(context.Context) error { return nil }

// ReadBatch waits for the next tick (or runs at once the first time, with
// run_at_start), evaluates and returns a message per result.
func (q *qualityCheckInput) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	var runID string
	for runID == "" {
		var err error
		if runID, err = q.nextRun(ctx); err != nil {
			return nil, nil, err
		}
	}
	run := q.ev.Run(ctx, runID, q.exps)
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	batch := make(service.MessageBatch, 0, len(run.Results))
	failed := 0
	for _, r := range run.Results {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, nil, fmt.Errorf("encoding result of %s: %w", r.Expectation, err)
		}
		msg := service.NewMessage(b)
		msg.MetaSetMut(QualityMetaStatus, string(r.Status))
		msg.MetaSetMut(QualityMetaExpectation, r.Expectation)
		msg.MetaSetMut(QualityMetaSeverity, r.Severity)
		msg.MetaSetMut(QualityMetaTable, r.Table)
		msg.MetaSetMut(QualityMetaKind, r.Kind)
		msg.MetaSetMut(QualityMetaRunID, r.RunID)
		batch = append(batch, msg)

		q.mStatus.SetFloat64(quality.StatusValue(r.Status), r.Expectation, r.Table, r.Kind)
		if r.Observed != nil {
			q.mObs.SetFloat64(*r.Observed, r.Expectation, r.Table, r.Kind)
		}
		q.mChecks.Incr(1, r.Expectation, string(r.Status))
		q.mFiles.Incr(r.FilesScanned, r.Expectation, r.Table)
		if r.Status == quality.StatusFail || r.Status == quality.StatusError {
			failed++
		}
	}
	q.mLastRun.Set(time.Now().Unix())
	q.log.With("run_id", run.ID, "results", len(run.Results), "failed_or_error", failed).Debug("quality run evaluated")
	return batch, func(_ context.Context, err error) error {
		if err != nil {
			q.log.With("run_id", runID, "error", err.Error()).Warn("quality results were not delivered; the next run evaluates afresh")
		}
		return nil
	}, nil
}

// nextRun waits for the next run (at once the first time, with
// run_at_start) and returns its id, or "" when another replica claimed it.
func (q *qualityCheckInput) nextRun(ctx context.Context) (string, error) {
	var runID, claim string
	if q.startRun {
		q.startRun = false
		runID = quality.NewRunID(time.Now())
		// Replicas started before the same tick share one run at start.
		claim = "start-" + tickRunID(q.sched.Next(time.Now()), q.selection)
	} else {
		tick := q.sched.Next(time.Now())
		timer := time.NewTimer(time.Until(tick))
		select {
		case <-ctx.Done():
			timer.Stop()
			return "", ctx.Err()
		case <-timer.C:
		}
		runID = tickRunID(tick, q.selection)
		claim = runID
	}
	if q.claims == nil {
		return runID, nil
	}
	now := time.Now()
	won, err := q.claims.claim(ctx, claim, now)
	switch {
	case err == nil && !won:
		q.mSkipped.Incr(1)
		q.log.With("run_id", runID, "claim", claim).Debug("quality run claimed by another replica; skipped here")
		return "", nil
	case err != nil:
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		// Better a run twice than no run: results are de-duplicated by
		// result_id downstream, a missed check is not noticed.
		q.log.With("run_id", runID, "error", err.Error()).Warn("could not claim the quality run; running it here")
	}
	if err := q.claims.sweep(ctx, now); err != nil && !errors.Is(err, context.Canceled) {
		q.log.With("error", err.Error()).Warn("could not delete old quality run claims")
	}
	return runID, nil
}

func (q *qualityCheckInput) Close(context.Context) error { return nil }
