package quality

import (
	"context"
	"errors"
	"fmt"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
)

// ResultsTableName is the name recorded in the results table's metadata.
const ResultsTableName = "_quality_results"

// ResultsAppIDPrefix prefixes the txn appId of a run's commit: one appId per
// run, so the append of a run that is already in the table is refused
// whoever retries it.
const ResultsAppIDPrefix = "quality-run/"

// ResultsTxnRetention is the results table's
// delta.setTransactionRetentionDuration: how long a run's txn guards it
// against a second append before a checkpoint expires it.
const ResultsTxnRetention = "interval 30 days"

// resultsSchemaYAML is schemas/quality_results.yaml (a test keeps them equal).
const resultsSchemaYAML = `
- { name: result_id, type: string, nullable: false }
- { name: run_id, type: string, nullable: false }
- { name: expectation, type: string, nullable: false }
- { name: table_name, type: string, nullable: false }
- { name: kind, type: string, nullable: false }
- { name: severity, type: string, nullable: false }
- { name: status, type: string, nullable: false }
- { name: observed, type: double }
- { name: threshold, type: double }
- { name: message, type: string }
- { name: details, type: string }
- { name: files_considered, type: long, nullable: false }
- { name: files_pruned, type: long, nullable: false }
- { name: files_scanned, type: long, nullable: false }
- { name: rows_scanned, type: long, nullable: false }
- { name: table_version, type: long }
- { name: evaluated_at, type: timestamp, nullable: false }
- { name: duration_ms, type: long, nullable: false }
`

// ResultsSchema returns the columns of the results table.
func ResultsSchema() *delta.Schema {
	sc, err := delta.ParseSchemaFile([]byte(resultsSchemaYAML))
	if err != nil {
		panic(fmt.Sprintf("the results schema does not parse: %v", err))
	}
	return sc
}

// ResultRow is a result as a row of the results table.
func ResultRow(r Result) delta.Row {
	var observed, threshold, version any
	if r.Observed != nil {
		observed = *r.Observed
	}
	if r.Threshold != nil {
		threshold = *r.Threshold
	}
	if r.TableVersion != nil {
		version = *r.TableVersion
	}
	return delta.Row{
		r.ResultID, r.RunID, r.Expectation, r.Table, r.Kind, r.Severity, string(r.Status),
		observed, threshold, r.Message, r.Details,
		r.FilesConsidered, r.FilesPruned, r.FilesScanned, r.RowsScanned,
		version, r.EvaluatedAt.UTC(), r.DurationMs,
	}
}

// OpenResultsTable opens the results table in store, creating it (not
// partitioned: a few rows a run) when the location holds none.
func OpenResultsTable(ctx context.Context, store storage.Store) (*delta.Table, error) {
	t, err := delta.Open(ctx, store, delta.OpenOptions{})
	if err == nil {
		return t, nil
	}
	if !errors.Is(err, delta.ErrNotATable) {
		return nil, fmt.Errorf("opening results table %s: %w", store.URI(), err)
	}
	t, err = delta.Create(ctx, store, delta.CreateOptions{Schema: ResultsSchema(), Name: ResultsTableName,
		Description: "data quality results of claimx-connect (docs/QUALITY.md)",
		// Each run commits its own appId; a run is retried within minutes,
		// so checkpoints may drop its txn after a month.
		Properties: map[string]string{delta.TxnRetentionProperty: ResultsTxnRetention}})
	if errors.Is(err, delta.ErrTableExists) {
		// Another checker created it first.
		t, err = delta.Open(ctx, store, delta.OpenOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("creating results table %s: %w", store.URI(), err)
	}
	return t, nil
}

// AppendResults appends a run's results in one commit carrying the txn
// (quality-run/<run id>, 0). written is false when the run was already in
// the table: the retried append of a run adds nothing.
func AppendResults(ctx context.Context, t *delta.Table, run Run) (written bool, err error) {
	appID := ResultsAppIDPrefix + run.ID
	if t.TxnApplied(appID, 0) {
		return false, nil
	}
	rows := make([]delta.Row, len(run.Results))
	for i, r := range run.Results {
		rows[i] = ResultRow(r)
	}
	_, err = t.Append(ctx, delta.AppendRequest{
		Rows:                rows,
		Schema:              ResultsSchema(),
		Txns:                []delta.Txn{{AppID: appID, Version: 0}},
		OperationParameters: map[string]string{"quality_run_id": run.ID},
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, delta.ErrTxnAlreadyApplied):
		return false, nil
	case errors.Is(err, delta.ErrConflict):
		// A concurrent commit carried our appId: the same run, appended by
		// a retry that won.
		if rerr := t.Refresh(ctx); rerr == nil && t.TxnApplied(appID, 0) {
			return false, nil
		}
	}
	return false, fmt.Errorf("appending run %s to %s: %w", run.ID, t.Store().URI(), err)
}
