package processors

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/internal/deltasink"
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

Every message leaves with the metadata `+"`delta_write_status`"+` (`+"`written`"+`, `+"`replayed`"+` when a commit already recorded its Kafka offset, or `+"`duplicate`"+` when its dedupe key is already in the table) and `+"`delta_table_version`"+`, the version holding its row. A message that cannot be converted gets an error naming the column and the value; messages that arrive with an error are passed through untouched and not written. When the commit itself fails (storage unreachable, a conflict), it is retried with exponential backoff for `+"`retry_max_elapsed`"+`; after that every message of the batch gets the error, so the pipeline can route it to an error topic.

Place it last in the pipeline and acknowledge only after publishing the result: the Kafka offsets then commit only once the row and its result message are durable.`).
		Fields(deltasink.Fields()...).
		Fields(
			service.NewDurationField(dlpFieldRetryInitial).Description("First wait before retrying a failed commit.").Default("500ms").Advanced(),
			service.NewDurationField(dlpFieldRetryMax).Description("Longest wait between retries of a failed commit.").Default("10s").Advanced(),
			service.NewDurationField(dlpFieldRetryMaxTotal).Description("Give up retrying a failed commit after this long and fail the batch's messages; 0 retries until the stream stops.").Default("1m"),
		)
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
	return p, nil
}

type deltaLakeProcessor struct {
	w   *deltasink.Writer
	log *service.Logger
	uri string

	retryInitial, retryMax, retryTotal time.Duration
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
	op := func() error {
		attempt++
		if !p.w.Connected() {
			if err := p.w.Connect(ctx); err != nil {
				p.log.With("table", p.uri, "attempt", attempt, "error", err.Error()).Warn("opening Delta table failed; retrying")
				return err
			}
		}
		var err error
		results, err = p.w.Write(ctx, batch, func(i int) bool { return batch[i].GetError() != nil })
		if err != nil {
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
	return []service.MessageBatch{batch}, nil
}

func (p *deltaLakeProcessor) Close(context.Context) error {
	p.w.Close()
	return nil
}
