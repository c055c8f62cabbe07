package processors

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/internal/deltasink"
	"github.com/claimx/claimx-connect/internal/hold"
)

const (
	dlpFieldRetryInitial  = "retry_initial_interval"
	dlpFieldRetryMax      = "retry_max_interval"
	dlpFieldRetryMaxTotal = "retry_max_elapsed"

	// Metadata set on every message the processor wrote or recognised.
	dlpMetaStatus  = "delta_write_status"
	dlpMetaVersion = "delta_table_version"
)

func deltaLakeProcessorSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Integration").
		Summary("Appends each batch to a Delta Lake table, one commit per batch, and keeps the messages so the pipeline can publish a result per row.").
		Description(deltasink.ConversionDoc+`

Every message leaves with the metadata `+"`delta_write_status`"+` (`+"`written`"+`, `+"`replayed`"+` when a commit already recorded its Kafka offset, or `+"`duplicate`"+` when its dedupe key is already in the table) and `+"`delta_table_version`"+`, the version holding its row. A message that cannot be converted (a value the table cannot hold) gets an error naming the column and the value: that is the record's failure. Messages that arrive with an error are passed through untouched and not written.

A failure of the batch as a whole (object storage unavailable, throttled or timing out after the storage retries; the table unreadable; commit conflicts beyond `+"`max_commit_attempts`"+`) is not the records' fault. With `+"`on_unavailable: hold`"+` (the default) the batch then waits in the processor, unacknowledged, and the write is tried again after `+"`hold_initial_interval`"+`, doubling up to `+"`hold_max_interval`"+`, until it succeeds; nothing goes to an errors topic, and a SIGTERM meanwhile hands the batch back uncommitted. The gauge `+"`delta_storage_available`"+` is 0 while holding, `+"`delta_storage_records_held`"+` counts the records waiting, `+"`delta_storage_hold_seconds_total`"+` the seconds held and `+"`delta_storage_holds_total`"+` (label `+"`reason`"+`: `+"`storage`"+` or `+"`conflict`"+`) the holds entered; a warning is logged when a hold begins and an info line when it ends. With `+"`on_unavailable: error`"+` the write is retried with exponential backoff for `+"`retry_max_elapsed`"+`, and then every message of the batch gets the error, so the pipeline can route it to an error topic.

Place it last in the pipeline and acknowledge only after publishing the result: the Kafka offsets then commit only once the row and its result message are durable.`).
		Fields(deltasink.Fields()...).
		Fields(
			service.NewDurationField(dlpFieldRetryInitial).Description("With `on_unavailable: error`: first wait before retrying a failed commit.").Default("500ms").Advanced(),
			service.NewDurationField(dlpFieldRetryMax).Description("With `on_unavailable: error`: longest wait between retries of a failed commit.").Default("10s").Advanced(),
			service.NewDurationField(dlpFieldRetryMaxTotal).Description("With `on_unavailable: error`: give up retrying a failed commit after this long and fail the batch's messages; 0 retries until the stream stops.").Default("1m"),
		).
		Fields(holdFields("the table's storage")...)
}

func init() {
	service.MustRegisterBatchProcessor("delta_lake", deltaLakeProcessorSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchProcessor, error) {
			return newDeltaLakeProcessor(conf, mgr)
		})
}

func newDeltaLakeProcessor(conf *service.ParsedConfig, mgr *service.Resources) (*deltaLakeProcessor, error) {
	c, err := deltasink.ParseConfig(conf)
	if err != nil {
		return nil, err
	}
	p := &deltaLakeProcessor{w: deltasink.NewWriter(c, mgr), log: mgr.Logger(), uri: c.TableURI}
	if p.retryInitial, err = conf.FieldDuration(dlpFieldRetryInitial); err != nil {
		return nil, err
	}
	if p.retryMax, err = conf.FieldDuration(dlpFieldRetryMax); err != nil {
		return nil, err
	}
	if p.retryTotal, err = conf.FieldDuration(dlpFieldRetryMaxTotal); err != nil {
		return nil, err
	}
	if p.hold, err = parseHoldSettings(conf); err != nil {
		return nil, err
	}
	p.hold.cfg.Dependency = "delta " + c.TableURI
	p.gate = newHoldGate(mgr, p.hold, "Delta storage", "delta_storage")
	return p, nil
}

type deltaLakeProcessor struct {
	w   *deltasink.Writer
	log *service.Logger
	uri string

	retryInitial, retryMax, retryTotal time.Duration
	hold                               holdSettings
	gate                               *hold.Gate
}

func (p *deltaLakeProcessor) backoff(ctx context.Context) backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = p.retryInitial
	b.MaxInterval = p.retryMax
	b.MaxElapsedTime = p.retryTotal
	return backoff.WithContext(b, ctx)
}

// ProcessBatch writes the batch; see the spec for the metadata and errors.
func (p *deltaLakeProcessor) ProcessBatch(ctx context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	var results []deltasink.Result
	attempt := 0
	if p.hold.mode == hold.ModeHold {
		records := 0
		for _, m := range batch {
			if m.GetError() == nil {
				records++
			}
		}
		err := p.gate.Do(ctx, records, func(ctx context.Context, _ bool) error {
			attempt++
			var err error
			if results, err = p.write(ctx, batch); err != nil {
				return hold.Unavailable(deltaHoldReason(err), 0, fmt.Errorf("writing %d messages to Delta table %s (attempt %d): %w", len(batch), p.uri, attempt, err))
			}
			p.gate.Answered()
			return nil
		})
		if err != nil {
			// Only the end of the stream interrupts a hold: the batch is
			// dropped with its context, unacknowledged, for the next process.
			return nil, err
		}
		return p.finish(batch, results), nil
	}
	op := func() error {
		attempt++
		var err error
		if results, err = p.write(ctx, batch); err != nil {
			p.log.With("table", p.uri, "attempt", attempt, "messages", len(batch), "error", err.Error()).Warn("Delta commit failed; retrying")
		}
		return err
	}
	if err := backoff.Retry(op, p.backoff(ctx)); err != nil {
		err = fmt.Errorf("writing %d messages to Delta table %s failed after %d attempts: %w", len(batch), p.uri, attempt, err)
		for _, m := range batch {
			if m.GetError() == nil {
				m.SetError(err)
			}
		}
		return []service.MessageBatch{batch}, nil
	}
	return p.finish(batch, results), nil
}

// write connects when needed and appends the batch's messages without an
// error, in one commit.
func (p *deltaLakeProcessor) write(ctx context.Context, batch service.MessageBatch) ([]deltasink.Result, error) {
	if !p.w.Connected() {
		if err := p.w.Connect(ctx); err != nil {
			return nil, err
		}
	}
	return p.w.Write(ctx, batch, func(i int) bool { return batch[i].GetError() != nil })
}

// deltaHoldReason is the metrics reason of a failed batch write.
func deltaHoldReason(err error) string {
	if errors.Is(err, delta.ErrConflict) || errors.Is(err, delta.ErrTooManyAttempts) {
		return "conflict"
	}
	return "storage"
}

// finish sets each message's outcome: its error when the table rejected it,
// else its write status and table version.
func (p *deltaLakeProcessor) finish(batch service.MessageBatch, results []deltasink.Result) []service.MessageBatch {
	for i, r := range results {
		m := batch[i]
		switch r.Status {
		case deltasink.Untouched:
			continue
		case deltasink.Rejected:
			m.SetError(r.Err)
			p.log.With("table", p.uri, "message", i, "error", r.Err.Error()).Error("message rejected by the Delta table")
			continue
		}
		m.MetaSetMut(dlpMetaStatus, r.Status.String())
		m.MetaSetMut(dlpMetaVersion, strconv.FormatInt(r.Version, 10))
	}
	return []service.MessageBatch{batch}
}

func (p *deltaLakeProcessor) Close(context.Context) error {
	p.w.Close()
	return nil
}
