package outputs

import (
	"context"
	"errors"
	"fmt"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/internal/deltasink"
)

const dloFieldBatching = "batching"

func deltaLakeOutputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Services").
		Summary("Appends JSON messages as rows of a Delta Lake table, one commit per batch.").
		Description(deltasink.ConversionDoc+`

A message that cannot be converted is rejected (nacked) with its reason. Route such failures to an error topic with a `+"`fallback`"+` or `+"`switch`"+` output so they are not retried forever. To publish a result per row (the table version, for example), use the `+"`delta_lake`"+` processor instead, which writes the same way and keeps the messages.`).
		Fields(deltasink.Fields()...).
		Fields(
			service.NewBatchPolicyField(dloFieldBatching),
			service.NewOutputMaxInFlightField().Default(1),
		).
		Example("Tracking table with exactly-once rows", "Appends rows partitioned by day, skipping replayed Kafka offsets.", `
output:
  delta_lake:
    table_uri: ${DELTA_TABLE_URI:./data/itel_cabinet_task_tracking}
    create_if_missing: true
    schema:
      - { name: event_id, type: string, nullable: false }
      - { name: event_timestamp, type: timestamp, nullable: false }
      - { name: task_id, type: integer, nullable: false }
      - { name: year, type: integer }
      - { name: month, type: integer }
      - { name: day, type: integer }
    partition_by: [ year, month, day ]
    idempotency: { app_id: itel_cabinet_tracking_worker }
    batching: { count: 500, period: 5s }
`)
}

func init() {
	service.MustRegisterBatchOutput("delta_lake", deltaLakeOutputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			var pol service.BatchPolicy
			maxInFlight, err := conf.FieldMaxInFlight()
			if err != nil {
				return nil, pol, 0, err
			}
			if pol, err = conf.FieldBatchPolicy(dloFieldBatching); err != nil {
				return nil, pol, 0, err
			}
			c, err := deltasink.ParseConfig(conf)
			if err != nil {
				return nil, pol, 0, err
			}
			return &deltaLakeOutput{w: deltasink.NewWriter(c, mgr), log: mgr.Logger(), uri: c.TableURI}, pol, maxInFlight, nil
		})
}

// deltaLakeOutput nacks rejected messages individually and the whole batch
// when the commit fails.
type deltaLakeOutput struct {
	w   *deltasink.Writer
	log *service.Logger
	uri string
}

func (d *deltaLakeOutput) Connect(ctx context.Context) error { return d.w.Connect(ctx) }

func (d *deltaLakeOutput) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	results, err := d.w.Write(ctx, batch, nil)
	if err != nil {
		return err
	}
	n, summary := deltasink.Summary(results)
	if n == 0 {
		return nil
	}
	// The headline is what benthos logs and what a producer sees: it names
	// every rejected message and its reason.
	berr := service.NewBatchError(batch, errors.New(fmt.Sprintf("%d of %d messages not written to Delta table %s: %s", n, len(batch), d.uri, summary)))
	for i, r := range results {
		if r.Status == deltasink.Rejected {
			berr.Failed(i, r.Err)
			d.log.With("table", d.uri, "message", i, "error", r.Err.Error()).Error("message rejected by the Delta table output")
		}
	}
	return berr
}

func (d *deltaLakeOutput) Close(context.Context) error {
	d.w.Close()
	return nil
}
