package deltasink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
)

// Status is what happened to one message.
type Status int

// Statuses of a message after Write.
const (
	// Untouched: the message was not part of the write (it arrived errored).
	Untouched Status = iota
	// Written: the message is a row of the commit Version.
	Written
	// Replayed: a commit already recorded the message's Kafka offset.
	Replayed
	// Duplicate: a row with the message's dedupe key already exists.
	Duplicate
	// Rejected: the message could not be converted; Err says why.
	Rejected
	// Empty: the rows mapping gave the message no row; its offset is
	// recorded with the commit.
	Empty
)

func (s Status) String() string {
	switch s {
	case Written:
		return "written"
	case Replayed:
		return "replayed"
	case Duplicate:
		return "duplicate"
	case Rejected:
		return "rejected"
	case Empty:
		return "empty"
	}
	return "untouched"
}

// Result is the outcome of one message of a batch.
type Result struct {
	Status Status
	// Version is the table version that holds the message's row (written), or
	// the table version when it was found to be there already.
	Version int64
	// Err is the reason of a rejection, naming the message and the column.
	Err error
}

// Writer appends benthos batches to one Delta table.
type Writer struct {
	conf Config
	res  *service.Resources
	log  *service.Logger

	mRows      *service.MetricCounter
	mCommits   *service.MetricCounter
	mReplayed  *service.MetricCounter
	mDuplicate *service.MetricCounter
	mRejected  *service.MetricCounter
	mVersion   *service.MetricGauge
	mLatency   *service.MetricTimer

	mu    sync.Mutex // serialises Write and guards table, partitions, dedupe
	table *delta.Table
	// partitions tracks, per txn appId, which offsets are written, so a
	// batch that arrives after a later one of its partition (pipeline
	// threads run in parallel) or a rejected message's replay is written
	// rather than skipped as a replay.
	partitions map[string]*partitionState
	dedupe     *dedupeIndex
	// maint compacts and looks after the table off the write path; nil
	// when neither auto compaction nor a schedule can apply.
	maint *maintainer
}

// NewWriter returns a writer; Connect opens the table.
func NewWriter(conf Config, res *service.Resources) *Writer {
	m := res.Metrics()
	return &Writer{
		conf:       conf,
		res:        res,
		log:        res.Logger(),
		mRows:      m.NewCounter("delta_rows_written_total"),
		mCommits:   m.NewCounter("delta_commits_total"),
		mReplayed:  m.NewCounter("delta_rows_skipped_replayed_total"),
		mDuplicate: m.NewCounter("delta_rows_skipped_duplicate_total"),
		mRejected:  m.NewCounter("delta_rows_rejected_total"),
		mVersion:   m.NewGauge("delta_table_version"),
		mLatency:   m.NewTimer("delta_commit_latency_ns"),
		partitions: map[string]*partitionState{},
	}
}

// Connect opens the table, creating it when configured to. Two writers
// creating one table at once is safe: version 0 is put-if-absent, and the
// loser opens what the winner created.
func (w *Writer) Connect(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.table != nil {
		return nil
	}
	store, err := storage.Open(ctx, w.conf.TableURI, w.conf.Storage)
	if err != nil {
		return err
	}
	tbl, err := delta.Open(ctx, store, w.conf.Open)
	if errors.Is(err, delta.ErrNotATable) && w.conf.CreateIfMissing {
		tbl, err = delta.Create(ctx, store, delta.CreateOptions{
			Schema:           w.conf.Schema,
			PartitionColumns: w.conf.PartitionBy,
			Properties:       w.conf.Properties,
			Open:             w.conf.Open,
		})
		if errors.Is(err, delta.ErrTableExists) || errors.Is(err, storage.ErrExists) {
			tbl, err = delta.Open(ctx, store, w.conf.Open)
		} else if err == nil {
			w.log.With("table", store.URI()).Info("created Delta table")
		}
	}
	if err != nil {
		return fmt.Errorf("opening Delta table %s: %w", w.conf.TableURI, err)
	}
	if w.conf.Schema != nil && w.conf.Mode == delta.SchemaNone {
		if missing := missingColumns(tbl.Schema(), w.conf.Schema); len(missing) > 0 {
			return fmt.Errorf("opening Delta table %s: the configured schema has columns the table lacks %v (set schema_evolution: merge to add them)", w.conf.TableURI, missing)
		}
	}
	if w.conf.DedupeColumn != "" {
		if tbl.Schema().Index(w.conf.DedupeColumn) < 0 && (w.conf.Schema == nil || w.conf.Schema.Index(w.conf.DedupeColumn) < 0) {
			return fmt.Errorf("opening Delta table %s: dedupe column %q is not a column of the table", w.conf.TableURI, w.conf.DedupeColumn)
		}
		w.dedupe = newDedupeIndex(w.conf.DedupeColumn, defaultDedupePartitions)
	}
	if w.conf.AppID != "" && w.conf.DedupeColumn == "" {
		w.log.With("table", store.URI(), "app_id", w.conf.AppID).Warn("idempotency by Kafka offsets alone assumes each partition's batches are written in order: run with pipeline.threads: 1 (and max_in_flight: 1 on the output) or set idempotency.dedupe_column")
	}
	w.table = tbl
	if mc := w.conf.Maintenance; mc.AutoCompact != AutoCompactOff || mc.Schedule != "" {
		w.maint = newMaintainer(mc, w.res, tbl, store.URI(), w.compacted)
		if err := w.maint.start(); err != nil {
			w.table, w.maint = nil, nil
			return err
		}
	}
	w.mVersion.Set(tbl.Version())
	w.log.With("table", store.URI(), "version", tbl.Version()).Info("Delta table open")
	return nil
}

// Connected reports whether Connect succeeded and Close was not called.
func (w *Writer) Connected() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.table != nil
}

// Close stops the table's maintenance and releases the table; every commit
// is already durable.
func (w *Writer) Close() {
	w.mu.Lock()
	w.table = nil
	w.dedupe = nil
	m := w.maint
	w.maint = nil
	w.mu.Unlock()
	// Outside mu: a compaction finishing now reports to w.compacted.
	if m != nil {
		m.stop()
	}
}

// compacted tells the de-duplication index that a compaction's new files
// hold the keys of the files it removed, so they are not read again.
func (w *Writer) compacted(res delta.OptimizeResult) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dedupe != nil {
		w.dedupe.compacted(res.Bins)
	}
}

func missingColumns(table, declared *delta.Schema) []string {
	var out []string
	for _, f := range declared.Fields() {
		if table.Index(f.Name) < 0 {
			out = append(out, f.Name)
		}
	}
	return out
}

// position is where a message came from, for offset tracking.
type position struct {
	appID  string
	offset int64
}

func (p position) String() string {
	if p.appID == "" {
		return ""
	}
	return fmt.Sprintf(" (%s offset %d)", p.appID, p.offset)
}

func (w *Writer) position(msg *service.Message) (position, error) {
	topic, ok := msg.MetaGet(MetaTopic)
	if !ok {
		return position{}, fmt.Errorf("idempotency needs the %s metadata of the kafka_franz input, and the message has none", MetaTopic)
	}
	part, ok := msg.MetaGet(MetaPartition)
	if !ok {
		return position{}, fmt.Errorf("idempotency needs the %s metadata, and the message has none", MetaPartition)
	}
	offStr, ok := msg.MetaGet(MetaOffset)
	if !ok {
		return position{}, fmt.Errorf("idempotency needs the %s metadata, and the message has none", MetaOffset)
	}
	off, err := strconv.ParseInt(offStr, 10, 64)
	if err != nil {
		return position{}, fmt.Errorf("metadata %s=%q is not an offset: %w", MetaOffset, offStr, err)
	}
	return position{appID: w.conf.AppID + "-" + topic + "-" + part, offset: off}, nil
}

// messageObject is the message as a JSON object. It reads the structured
// value benthos already holds (a mapping's result) instead of encoding it to
// JSON and parsing it back, which cost the worker a quarter of its CPU; raw
// bytes are parsed by benthos with numbers kept exact. The value is shared
// with the message: it is only read.
func messageObject(msg *service.Message) (map[string]any, error) {
	v, err := msg.AsStructured()
	if err != nil {
		return nil, fmt.Errorf("message is not a JSON object: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			return nil, errors.New("message is not a JSON object: null")
		}
		return nil, fmt.Errorf("message is not a JSON object: a JSON %s", jsonKindOf(v))
	}
	return m, nil
}

func jsonKindOf(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case []any:
		return "array"
	default:
		return "number"
	}
}

// Write converts the batch and appends its new rows in one commit, with the
// Kafka offsets they came from. skip[i] leaves message i out (it is already
// errored upstream). It returns one result per message; an error means
// nothing was committed and every message should be retried.
func (w *Writer) Write(ctx context.Context, batch service.MessageBatch, skip func(i int) bool) ([]Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	tbl := w.table
	if tbl == nil {
		return nil, service.ErrNotConnected
	}
	results := make([]Result, len(batch))
	version := tbl.Version()
	if w.dedupe != nil {
		// See rows other writers committed since our last commit.
		if err := tbl.Refresh(ctx); err != nil {
			return nil, fmt.Errorf("refreshing Delta table %s: %w", w.conf.TableURI, err)
		}
		version = tbl.Version()
	}

	schema := w.conf.Schema
	if schema == nil {
		schema = tbl.Schema()
	}
	reject := func(i int, pos position, err error) {
		results[i] = Result{Status: Rejected, Err: fmt.Errorf("message %d%s: %w", i, pos, err)}
		w.mRejected.Incr(1)
	}

	type candidate struct {
		i    int
		pos  position
		objs []map[string]any
	}
	cands := make([]candidate, 0, len(batch))
	for i, msg := range batch {
		if skip != nil && skip(i) {
			continue
		}
		var pos position
		if w.conf.AppID != "" {
			p, err := w.position(msg)
			if err != nil {
				reject(i, pos, err)
				continue
			}
			pos = p
			// With a dedupe column the key decides, not the offset.
			if w.dedupe == nil && w.partition(tbl, pos.appID).done(pos.offset) {
				results[i] = Result{Status: Replayed, Version: version}
				w.mReplayed.Incr(1)
				continue
			}
		}
		objs, err := w.messageRows(msg)
		if err != nil {
			reject(i, pos, err)
			continue
		}
		cands = append(cands, candidate{i: i, pos: pos, objs: objs})
	}

	// Under merge, keys no declared column names widen the batch schema.
	if w.conf.Mode == delta.SchemaMerge {
		for _, c := range cands {
			for _, obj := range c.objs {
				wider, err := schema.WithJSONColumns(obj)
				if err != nil {
					return nil, fmt.Errorf("inferring new columns for %s: %w", w.conf.TableURI, err)
				}
				schema = wider
			}
		}
	}

	var snap *delta.Snapshot
	if w.dedupe != nil {
		snap = tbl.Snapshot()
	}
	partCols := tbl.PartitionColumns()
	rows := make([]delta.Row, 0, len(cands))
	written := make([]int, 0, len(cands))
	var newKeys []dedupeKey
	batchKeys := map[dedupeKey]bool{}
	txns := map[string]int64{}
	for _, c := range cands {
		msgRows, err := w.convertRows(tbl, schema, c.objs)
		if err != nil {
			var ce *delta.ConstraintError
			var conv *rowError
			if !errors.As(err, &ce) && !errors.As(err, &conv) {
				return nil, err
			}
			reject(c.i, c.pos, err)
			continue
		}
		if c.pos.appID != "" {
			// Duplicates advance the offset too: their row is in the table.
			if cur, ok := txns[c.pos.appID]; !ok || c.pos.offset > cur {
				txns[c.pos.appID] = c.pos.offset
			}
		}
		if len(msgRows) == 0 {
			results[c.i] = Result{Status: Empty, Version: version}
			continue
		}
		fresh := 0
		for _, row := range msgRows {
			if w.dedupe != nil {
				k, err := w.dedupe.keyOf(ctx, tbl.Store(), snap, schema, row, partCols)
				if err != nil {
					return nil, fmt.Errorf("checking %s for duplicates in Delta table %s: %w", w.conf.DedupeColumn, w.conf.TableURI, err)
				}
				if k.hash != 0 && (batchKeys[k] || w.dedupe.contains(k)) {
					continue
				}
				if k.hash != 0 {
					batchKeys[k] = true
					newKeys = append(newKeys, k)
				}
			}
			rows = append(rows, row)
			fresh++
		}
		if fresh == 0 {
			results[c.i] = Result{Status: Duplicate, Version: version}
			w.mDuplicate.Incr(1)
			continue
		}
		written = append(written, c.i)
	}

	if len(rows) == 0 && len(txns) == 0 {
		return results, nil
	}
	req := delta.AppendRequest{
		Rows:                rows,
		Schema:              schema,
		Mode:                w.conf.Mode,
		Operation:           delta.OperationStreamingUpdate,
		OperationParameters: map[string]string{"outputMode": "Append"},
	}
	if w.conf.AppID != "" {
		req.OperationParameters["appId"] = w.conf.AppID
	}
	for app, v := range txns {
		// A replay (after a restart or a rebalance) can hold only offsets at
		// or below the recorded one: the record stays, it never goes back.
		if tbl.TxnApplied(app, v) {
			continue
		}
		req.Txns = append(req.Txns, delta.Txn{AppID: app, Version: v})
	}
	if len(rows) == 0 && len(req.Txns) == 0 {
		return results, nil
	}
	start := time.Now()
	res, err := tbl.Append(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("appending %d rows to Delta table %s: %w", len(rows), w.conf.TableURI, err)
	}
	w.mLatency.Timing(time.Since(start).Nanoseconds())
	if !res.NoOp {
		w.mCommits.Incr(1)
		w.mRows.Incr(res.Rows)
		w.mVersion.Set(res.Version)
	}
	if w.dedupe != nil {
		w.dedupe.committed(newKeys, res.Files)
	}
	if w.maint != nil {
		w.maint.touched(res.Files)
	}
	for _, i := range written {
		results[i] = Result{Status: Written, Version: res.Version}
	}
	if w.conf.AppID != "" {
		// Record our own txns first, so the table's value is not taken
		// for another writer's.
		for _, tx := range req.Txns {
			w.partitionState(tx.AppID).ourLast = tx.Version
		}
		for _, c := range cands {
			if st := results[c.i].Status; st == Written || st == Duplicate || st == Empty {
				w.partitionState(c.pos.appID).written.add(c.pos.offset)
			}
		}
	}
	if res.CheckpointErr != nil {
		w.log.With("table", w.conf.TableURI, "version", res.Version, "error", res.CheckpointErr.Error()).Warn("checkpoint failed after a successful commit; the next open makes it up")
	}
	if res.SchemaChanged {
		w.log.With("table", w.conf.TableURI, "version", res.Version, "schema", schema.String()).Info("table schema evolved")
	}
	w.log.With("table", w.conf.TableURI, "version", res.Version, "rows", res.Rows, "files", len(res.Files), "attempts", res.Attempts).Debug("committed to Delta table")
	return results, nil
}

// messageRows is what a message holds to write: itself, or what the rows
// mapping makes of it.
func (w *Writer) messageRows(msg *service.Message) ([]map[string]any, error) {
	if w.conf.Rows == nil {
		m, err := messageObject(msg)
		if err != nil {
			return nil, err
		}
		return []map[string]any{m}, nil
	}
	res, err := msg.BloblangQuery(w.conf.Rows)
	if err != nil {
		return nil, fmt.Errorf("mapping the message to rows: %w", err)
	}
	if res == nil {
		return nil, nil
	}
	v, err := res.AsStructured()
	if err != nil {
		return nil, fmt.Errorf("mapping the message to rows: %w", err)
	}
	switch x := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return []map[string]any{x}, nil
	case []any:
		objs := make([]map[string]any, 0, len(x))
		for i, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("row %d of the rows mapping is a JSON %s, not an object", i, jsonKindOf(e))
			}
			objs = append(objs, m)
		}
		return objs, nil
	default:
		return nil, fmt.Errorf("the rows mapping gave a JSON %s, not an object or an array of objects", jsonKindOf(v))
	}
}

// rowError is a row of a message the table cannot hold.
type rowError struct {
	index, of int
	err       error
}

func (e *rowError) Error() string {
	if e.of == 1 {
		return e.err.Error()
	}
	return fmt.Sprintf("row %d of %d: %v", e.index, e.of, e.err)
}

func (e *rowError) Unwrap() error { return e.err }

// convertRows converts and checks a message's rows: one that fails rejects
// the message whole (a *rowError or *delta.ConstraintError); another error
// is the table's.
func (w *Writer) convertRows(tbl *delta.Table, schema *delta.Schema, objs []map[string]any) ([]delta.Row, error) {
	rows := make([]delta.Row, 0, len(objs))
	for i, obj := range objs {
		row, err := schema.RowFromJSON(obj)
		if err != nil {
			return nil, &rowError{index: i, of: len(objs), err: err}
		}
		// Invariants, CHECK constraints and generated columns: a violation
		// rejects this record only.
		if err := tbl.CheckRow(schema, row); err != nil {
			var ce *delta.ConstraintError
			if !errors.As(err, &ce) {
				return nil, fmt.Errorf("checking the constraints of Delta table %s: %w", w.conf.TableURI, err)
			}
			return nil, &rowError{index: i, of: len(objs), err: err}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// partition returns what this process knows of a partition, folding in the
// table's recorded offset.
func (w *Writer) partition(tbl *delta.Table, appID string) *partitionState {
	p := w.partitionState(appID)
	p.observe(tbl.TxnVersion(appID))
	return p
}

func (w *Writer) partitionState(appID string) *partitionState {
	p := w.partitions[appID]
	if p == nil {
		p = &partitionState{baseline: -1, ourLast: -1}
		w.partitions[appID] = p
	}
	return p
}

// Summary joins the reasons of rejected messages into one line for logs and
// batch errors, truncated so a huge batch cannot flood a log line.
func Summary(results []Result) (int, string) {
	var reasons []string
	for _, r := range results {
		if r.Status == Rejected {
			reasons = append(reasons, r.Err.Error())
		}
	}
	s := strings.Join(reasons, "; ")
	if len(s) > 2000 {
		s = s[:2000] + "…"
	}
	return len(reasons), s
}
