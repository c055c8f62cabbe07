package delta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/google/uuid"
)

// EngineInfo is written as commitInfo.engineInfo.
const EngineInfo = "claimx-connect"

// Errors callers may test with errors.Is.
var (
	// ErrTableExists: Create found a table and DropExisting was not set.
	ErrTableExists = errors.New("a Delta table already exists at this location")
	// ErrConflict: a concurrent commit changed what this commit relied on
	// (protocol, metaData, a txn of one of our appIds, or a file we remove).
	// Nothing was committed and nothing is retried.
	ErrConflict = errors.New("concurrent commit conflict")
	// ErrTooManyAttempts: every attempt lost the race for the next version.
	ErrTooManyAttempts = errors.New("commit attempts exhausted")
	// ErrTxnAlreadyApplied: an append carried a txn whose version is not
	// above the one the table holds for its appId (a replay). Nothing was
	// written.
	ErrTxnAlreadyApplied = errors.New("txn version already applied")
	// ErrSchemaMismatch: the batch's schema is not compatible with the
	// table under the requested SchemaMode. Nothing was written.
	ErrSchemaMismatch = errors.New("batch schema does not match the table")
)

// OpenOptions tune a Table handle.
type OpenOptions struct {
	// CheckpointInterval writes a checkpoint every N versions. 0 means the
	// table property delta.checkpointInterval, or 10.
	CheckpointInterval int
	// MaxCommitAttempts bounds the retries of a commit that loses the race
	// for its version. Default 20.
	MaxCommitAttempts int
	// RetryBaseDelay and RetryMaxDelay shape the exponential backoff (with
	// full jitter) between attempts. Defaults 10 ms and 1 s.
	RetryBaseDelay, RetryMaxDelay time.Duration
	// Writer tunes the data files written.
	Writer WriterOptions
	// ReadOnly opens without writing anything (no make-up checkpoint).
	ReadOnly bool
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

func (o OpenOptions) withDefaults() OpenOptions {
	if o.MaxCommitAttempts <= 0 {
		o.MaxCommitAttempts = 20
	}
	if o.RetryBaseDelay <= 0 {
		o.RetryBaseDelay = 10 * time.Millisecond
	}
	if o.RetryMaxDelay <= 0 {
		o.RetryMaxDelay = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Writer = o.Writer.withDefaults()
	return o
}

// Table is a handle on one Delta table for a long-running writer: it keeps
// the snapshot in memory and applies its own commits and the commits of
// concurrent writers incrementally, never re-reading the whole log. Its
// methods are safe for concurrent use; writes through one handle are
// serialised.
type Table struct {
	store storage.Store
	opts  OpenOptions

	mu   sync.Mutex
	snap *Snapshot
	// optMu runs Optimize calls one at a time: they work outside mu.
	optMu sync.Mutex
	cons  *tableConstraints // compiled for snap.schema; see constraints.go
}

// Open loads the newest snapshot of the table in store. Unless
// opts.ReadOnly, it also writes a checkpoint a crash skipped: when the
// newest checkpoint is older than the last checkpoint-interval boundary, a
// checkpoint of the current version is written (failure to write it is not
// an error for Open; the next boundary tries again).
func Open(ctx context.Context, store storage.Store, opts OpenOptions) (*Table, error) {
	opts = opts.withDefaults()
	if _, _, err := opts.Writer.codec(); err != nil {
		return nil, fmt.Errorf("opening %s: %w", store.URI(), err)
	}
	snap, err := loadSnapshot(ctx, store)
	if err != nil {
		return nil, err
	}
	t := &Table{store: store, opts: opts, snap: snap}
	if !opts.ReadOnly && checkWritable(snap.protocol, snap.metadata, snap.schema) == nil {
		if iv := t.checkpointInterval(); iv > 0 {
			boundary := (snap.version / int64(iv)) * int64(iv)
			if boundary > 0 && snap.checkpointVersion < boundary {
				if err := writeCheckpoint(ctx, store, snap, opts.Now()); err == nil {
					snap.checkpointVersion = snap.version
				}
			}
		}
	}
	return t, nil
}

// Store returns the storage the table lives in.
func (t *Table) Store() storage.Store { return t.store }

// Snapshot returns a private copy of the current snapshot (O(files)).
func (t *Table) Snapshot() *Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.snap.clone()
}

// Version returns the current table version.
func (t *Table) Version() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.snap.version
}

// Schema returns the current table schema.
func (t *Table) Schema() *Schema {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.snap.schema
}

// PartitionColumns returns the partition columns.
func (t *Table) PartitionColumns() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.snap.PartitionColumns()
}

// TxnVersion returns the last version committed for appID by any writer
// whose commits this handle has seen, and whether there was one.
func (t *Table) TxnVersion(appID string) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.snap.TxnVersion(appID)
}

// TxnApplied reports whether a batch carrying (appID, version) is already
// in the table and must be skipped: true when the table holds a txn for
// appID at version or above. This is the exactly-once rule of
// kafka-delta-ingest (version = Kafka offset) and Spark's streaming sink
// (version = batch id).
func TxnApplied(stored int64, found bool, version int64) bool {
	return found && version <= stored
}

// TxnApplied reports whether (appID, version) is already committed; see the
// package function TxnApplied.
func (t *Table) TxnApplied(appID string, version int64) bool {
	v, ok := t.TxnVersion(appID)
	return TxnApplied(v, ok, version)
}

// Refresh applies commits made by other writers since the handle's
// version.
func (t *Table) Refresh(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, err := t.catchUp(ctx)
	return err
}

// catchUp applies every commit after the snapshot's version and returns
// them by version.
func (t *Table) catchUp(ctx context.Context) (map[int64][]Action, error) {
	out := map[int64][]Action{}
	for {
		v := t.snap.version + 1
		acts, err := readCommit(ctx, t.store, v)
		if errors.Is(err, storage.ErrNotFound) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if err := t.snap.apply(v, acts); err != nil {
			return out, err
		}
		out[v] = acts
	}
}

func (t *Table) checkpointInterval() int {
	if t.opts.CheckpointInterval > 0 {
		return t.opts.CheckpointInterval
	}
	if v, ok := t.snap.metadata.Configuration["delta.checkpointInterval"]; ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
			return n
		}
	}
	return 10
}

// SchemaMode says what Append does with a batch schema that differs from
// the table's.
type SchemaMode int

const (
	// SchemaNone refuses columns the table does not have.
	SchemaNone SchemaMode = iota
	// SchemaMerge adds columns the table lacks as nullable columns at the
	// end, in a new metaData committed with the data. Type changes, and
	// anything else but adding columns, are still refused.
	SchemaMerge
)

// ParseSchemaMode parses "none" or "merge".
func ParseSchemaMode(s string) (SchemaMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none":
		return SchemaNone, nil
	case "merge":
		return SchemaMerge, nil
	}
	return 0, fmt.Errorf("unknown schema evolution mode %q (want none or merge)", s)
}

// Operations for commitInfo.operation.
const (
	OperationWrite           = "WRITE"
	OperationStreamingUpdate = "STREAMING UPDATE"
)

// AppendRequest is one batch to append in one commit.
type AppendRequest struct {
	// Rows are in the column order of Schema (or the table schema when
	// Schema is nil).
	Rows []Row
	// Schema is the batch's schema; nil means the table schema. Table
	// columns it lacks must be nullable (they are written as null).
	Schema *Schema
	// Mode decides what happens to columns of Schema the table lacks.
	Mode SchemaMode
	// Txns are committed with the data (at most one per appId). An append
	// whose txn version is not above the table's fails with
	// ErrTxnAlreadyApplied before writing anything.
	Txns []Txn
	// Operation is commitInfo.operation: OperationWrite (default) or
	// OperationStreamingUpdate.
	Operation string
	// OperationParameters go to commitInfo.operationParameters.
	OperationParameters map[string]string
}

// CommitResult describes a successful commit.
type CommitResult struct {
	// Version is the committed version (the current version for a no-op).
	Version int64
	// NoOp: nothing to commit (no rows, no txns, no schema change).
	NoOp bool
	// Files are the add actions committed.
	Files []AddFile
	// Rows and Bytes written.
	Rows, Bytes int64
	// Attempts is 1 when the first try won its version.
	Attempts int
	// SchemaChanged: a new metaData (merged schema) was committed.
	SchemaChanged bool
	// Checkpointed: a checkpoint of Version was written.
	Checkpointed bool
	// CheckpointErr is a failed checkpoint after a successful commit: the
	// commit stands; the next open makes the checkpoint up.
	CheckpointErr error
}

// Append writes the rows as new data files and commits them, with the txns
// and (under SchemaMerge) a widened schema, in one commit. Schema and txn
// checks run before anything is written. Data files are uploaded first
// under unique names; a crash before the commit, a conflict, or a row that
// fails its column's type check after earlier files of the batch were
// uploaded leaves unreferenced files that Vacuum removes.
func (t *Table) Append(ctx context.Context, req AppendRequest) (CommitResult, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	snap := t.snap
	if err := checkWritable(snap.protocol, snap.metadata, snap.schema); err != nil {
		return CommitResult{}, fmt.Errorf("appending to %s: %w", t.store.URI(), err)
	}
	now := t.opts.Now()

	// Txns: validate before any file is written.
	seen := map[string]bool{}
	txns := make([]Txn, 0, len(req.Txns))
	for _, tx := range req.Txns {
		if tx.AppID == "" {
			return CommitResult{}, fmt.Errorf("appending to %s: txn with an empty appId", t.store.URI())
		}
		if seen[tx.AppID] {
			return CommitResult{}, fmt.Errorf("appending to %s: two txns for appId %q in one commit", t.store.URI(), tx.AppID)
		}
		seen[tx.AppID] = true
		if v, ok := snap.TxnVersion(tx.AppID); TxnApplied(v, ok, tx.Version) {
			return CommitResult{}, fmt.Errorf("appending to %s: appId %q version %d (table has %d): %w", t.store.URI(), tx.AppID, tx.Version, v, ErrTxnAlreadyApplied)
		}
		if tx.LastUpdated == nil {
			tx.LastUpdated = ptr(now.UnixMilli())
		}
		txns = append(txns, tx)
	}

	target, rows, newMeta, err := t.prepareRows(req)
	if err != nil {
		return CommitResult{}, fmt.Errorf("appending to %s: %w", t.store.URI(), err)
	}
	schemaChanged := newMeta != nil
	// Generated columns are filled (before partitioning), constraints
	// checked and identity values allocated; a new high-water mark comes
	// back as a new metaData.
	if rows, newMeta, err = t.enforceConstraints(rows, newMeta); err != nil {
		return CommitResult{}, fmt.Errorf("appending to %s: %w", t.store.URI(), err)
	}
	if len(rows) == 0 && len(txns) == 0 && newMeta == nil {
		return CommitResult{Version: snap.version, NoOp: true}, nil
	}
	layout, err := newDataLayout(target, snap.metadata.PartitionColumns, snap.metadata.Configuration)
	if err != nil {
		return CommitResult{}, fmt.Errorf("appending to %s: %w", t.store.URI(), err)
	}
	var files []writtenFile
	if len(rows) > 0 {
		files, err = writeDataFiles(ctx, t.store, layout, rows, t.opts.Writer, t.opts.Now)
		if err != nil {
			return CommitResult{}, fmt.Errorf("appending to %s: writing data files: %w", t.store.URI(), err)
		}
	}

	op := req.Operation
	if op == "" {
		op = OperationWrite
	}
	params := map[string]any{}
	if op == OperationWrite {
		pc, _ := json.Marshal(snap.metadata.PartitionColumns)
		params["mode"] = "Append"
		params["partitionBy"] = string(pc)
	}
	for k, v := range req.OperationParameters {
		params[k] = v
	}
	res := CommitResult{SchemaChanged: schemaChanged}
	var acts []Action
	if newMeta != nil {
		acts = append(acts, Action{MetaData: newMeta})
	}
	for i := range txns {
		acts = append(acts, Action{Txn: &txns[i]})
	}
	for i := range files {
		f := files[i].add
		acts = append(acts, Action{Add: &f})
		res.Files = append(res.Files, f)
		res.Rows += files[i].rows
		res.Bytes += f.Size
	}
	metrics := map[string]any{
		"numFiles":       strconv.Itoa(len(files)),
		"numOutputRows":  strconv.FormatInt(res.Rows, 10),
		"numOutputBytes": strconv.FormatInt(res.Bytes, 10),
	}
	ci := map[string]any{
		"operation":           op,
		"operationParameters": params,
		"operationMetrics":    metrics,
		"isBlindAppend":       newMeta == nil,
	}
	version, attempts, err := t.commit(ctx, acts, ci, newMeta != nil)
	res.Attempts = attempts
	if err != nil {
		return res, fmt.Errorf("appending to %s: %w", t.store.URI(), err)
	}
	res.Version = version
	// Report the adds as committed (row tracking fills fields per attempt).
	for i := range res.Files {
		if f, ok := t.snap.files[pathKey(res.Files[i].Path)]; ok {
			res.Files[i] = *f
		}
	}
	res.Checkpointed, res.CheckpointErr = t.maybeCheckpoint(ctx)
	return res, nil
}

// prepareRows maps the batch onto the table schema (widened under merge)
// and returns the schema to write, the rows in its order, and the new
// metaData if the schema grew.
func (t *Table) prepareRows(req AppendRequest) (*Schema, []Row, *Metadata, error) {
	table := t.snap.schema
	in := req.Schema
	if in == nil || in == table || in.Equal(table) {
		for i, r := range req.Rows {
			if len(r) != len(table.fields) {
				return nil, nil, nil, fmt.Errorf("row %d has %d values, the table has %d columns", i, len(r), len(table.fields))
			}
		}
		return table, req.Rows, nil, nil
	}
	target := table
	var newMeta *Metadata
	switch req.Mode {
	case SchemaMerge:
		merged, added, err := mergeSchemas(table, in)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w: %w", ErrSchemaMismatch, err)
		}
		if added {
			md := t.snap.metadata
			// Under column mapping new fields get the next ids and
			// col-<uuid> physical names; maxColumnId moves with them.
			cm, maxID, assigned, err := AssignColumnMapping(merged, md.Configuration)
			if err != nil {
				return nil, nil, nil, err
			}
			if assigned {
				merged = cm
				md.Configuration = maps.Clone(md.Configuration)
				md.Configuration[ColumnMappingMaxIDKey] = strconv.FormatInt(maxID, 10)
			}
			target = merged
			md.SchemaString = merged.SchemaString()
			newMeta = &md
		}
	default:
		for i, f := range in.fields {
			j := table.Index(f.Name)
			if j < 0 {
				return nil, nil, nil, fmt.Errorf("%w: column %q is not in the table (schema evolution mode is none)", ErrSchemaMismatch, f.Name)
			}
			if !table.types[j].Equal(in.types[i]) {
				return nil, nil, nil, fmt.Errorf("%w: column %q has type %s in the batch but %s in the table", ErrSchemaMismatch, f.Name, in.types[i], table.types[j])
			}
		}
	}
	// Map batch columns onto target positions.
	src := make([]int, len(target.fields))
	// reshape marks nested columns whose batch type differs from the
	// target's (schema evolution added nested fields): their values are
	// rebuilt in the target's field order.
	reshape := make([]bool, len(target.fields))
	identity := len(in.fields) == len(target.fields)
	for i, f := range target.fields {
		src[i] = in.Index(f.Name)
		if src[i] < 0 && !f.Nullable {
			return nil, nil, nil, fmt.Errorf("%w: the batch lacks non-nullable column %q", ErrSchemaMismatch, f.Name)
		}
		if src[i] != i {
			identity = false
		}
		if src[i] >= 0 && target.types[i].Kind.Nested() && !target.types[i].Equal(in.types[src[i]]) {
			reshape[i] = true
			identity = false
		}
	}
	if identity {
		return target, req.Rows, newMeta, nil
	}
	rows := make([]Row, len(req.Rows))
	for ri, r := range req.Rows {
		if len(r) != len(in.fields) {
			return nil, nil, nil, fmt.Errorf("row %d has %d values, the batch schema has %d columns", ri, len(r), len(in.fields))
		}
		nr := make(Row, len(target.fields))
		for i, s := range src {
			if s >= 0 {
				nr[i] = r[s]
				if reshape[i] {
					nr[i] = reshapeValue(in.types[s], target.types[i], nr[i])
				}
			}
		}
		rows[ri] = nr
	}
	return target, rows, newMeta, nil
}

// commit writes actions (plus commitInfo, always the first action) as the
// next version with put-if-absent. On losing the race it reads the
// winners, fails with ErrConflict if they touched what this commit relies
// on, and otherwise retries at the next version with backoff. What depends
// on the version or on the winners is recomputed on every attempt: row ids
// and default row commit versions (row tracking) and the inCommitTimestamp.
// On success the actions are applied to the in-memory snapshot.
func (t *Table) commit(ctx context.Context, acts []Action, ci map[string]any, changesMeta bool) (int64, int, error) {
	return t.commitWith(ctx, acts, ci, commitOptions{changesMeta: changesMeta})
}

// commitOptions tune one commit.
type commitOptions struct {
	// changesMeta: the commit carries a metaData derived from the current
	// one.
	changesMeta bool
	// maxAttempts bounds the attempts (0: OpenOptions.MaxCommitAttempts).
	maxAttempts int
	// rewriteOf: the commit only rearranges data in files written under
	// this metaData (compaction); a winner's metaData under which those
	// files stay valid (columns added) is not a conflict.
	rewriteOf *Metadata
}

// commitWith is commit with options.
func (t *Table) commitWith(ctx context.Context, acts []Action, ci map[string]any, co commitOptions) (int64, int, error) {
	changesMeta, maxAttempts := co.changesMeta, co.maxAttempts
	if maxAttempts <= 0 {
		maxAttempts = t.opts.MaxCommitAttempts
	}
	ourApps := map[string]bool{}
	ourRemoves := map[string]bool{}
	ourDomains := map[string]bool{}
	for _, a := range acts {
		if a.Txn != nil {
			ourApps[a.Txn.AppID] = true
		}
		if a.Remove != nil {
			ourRemoves[pathKey(a.Remove.Path)] = true
		}
		if a.DomainMetadata != nil {
			ourDomains[a.DomainMetadata.Domain] = true
		}
	}
	readVersion := t.snap.version
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		version := t.snap.version + 1
		now := t.opts.Now()
		info := map[string]any{"timestamp": now.UnixMilli()}
		if t.snap.inCommitTimestamps() {
			info["inCommitTimestamp"] = nextInCommitTimestamp(t.snap, now)
		}
		for k, v := range ci {
			info[k] = v
		}
		info["engineInfo"] = EngineInfo
		info["clientVersion"] = EngineInfo
		if readVersion >= 0 {
			info["readVersion"] = readVersion
		}
		body := acts
		if t.snap.rowTrackingAssigns() {
			var err error
			if body, err = assignRowTracking(t.snap, acts, version); err != nil {
				return 0, attempt, fmt.Errorf("committing version %d: %w", version, err)
			}
		}
		all := make([]Action, 0, len(body)+1)
		all = append(all, Action{CommitInfo: info})
		all = append(all, body...)
		data, err := EncodeCommit(all)
		if err != nil {
			return 0, attempt, err
		}
		err = t.store.PutIfAbsent(ctx, commitPath(version), data)
		if err == nil {
			if err := t.snap.apply(version, all); err != nil {
				return version, attempt, err
			}
			return version, attempt, nil
		}
		if !errors.Is(err, storage.ErrExists) {
			return 0, attempt, fmt.Errorf("committing version %d: %w", version, err)
		}
		winners, err := t.catchUp(ctx)
		if err != nil {
			return 0, attempt, fmt.Errorf("reading the commits that won version %d: %w", version, err)
		}
		for v, wa := range winners {
			if err := conflictWith(v, wa, ourApps, ourRemoves, ourDomains, changesMeta, co.rewriteOf); err != nil {
				return 0, attempt, err
			}
		}
		if attempt < maxAttempts {
			if err := sleepCtx(ctx, backoffDelay(attempt, t.opts.RetryBaseDelay, t.opts.RetryMaxDelay)); err != nil {
				return 0, attempt, err
			}
		}
	}
	return 0, maxAttempts, fmt.Errorf("%d attempts lost the race for the next version (now %d): %w", maxAttempts, t.snap.version, ErrTooManyAttempts)
}

// conflictWith decides whether a winning commit invalidates ours.
// The delta.rowTracking domain is never a conflict: our row ids are rebased
// on the winner's high-water mark at the next attempt.
func conflictWith(v int64, winner []Action, ourApps, ourRemoves, ourDomains map[string]bool, changesMeta bool, rewriteOf *Metadata) error {
	for _, a := range winner {
		switch {
		case a.Protocol != nil:
			return fmt.Errorf("version %d changed the protocol: %w", v, ErrConflict)
		case a.MetaData != nil && rewriteOf != nil && rewriteCompatible(*rewriteOf, *a.MetaData):
			// Our rewritten files stay valid under the new metaData.
		case a.MetaData != nil:
			return fmt.Errorf("version %d changed the table metadata: %w", v, ErrConflict)
		case a.Txn != nil && ourApps[a.Txn.AppID]:
			return fmt.Errorf("version %d committed txn %q version %d concurrently: %w", v, a.Txn.AppID, a.Txn.Version, ErrConflict)
		case a.Remove != nil && ourRemoves[pathKey(a.Remove.Path)]:
			return fmt.Errorf("version %d removed %s, which this commit also removes: %w", v, a.Remove.Path, ErrConflict)
		case a.DomainMetadata != nil && a.DomainMetadata.Domain != DomainRowTracking && ourDomains[a.DomainMetadata.Domain]:
			return fmt.Errorf("version %d changed metadata domain %q, which this commit also changes: %w", v, a.DomainMetadata.Domain, ErrConflict)
		case a.Add != nil && changesMeta:
			// Our new metaData was derived from the old schema; a file
			// written concurrently under it stays valid (columns are only
			// added), so appends do not conflict with our schema change.
		}
	}
	return nil
}

// rewriteCompatible reports whether data files written under metaData old
// stay valid under nw: the same partitioning, column mapping mode and row
// tracking columns, and every column of old still there with the same
// type (schema evolution only added columns, which read as null).
func rewriteCompatible(old, nw Metadata) bool {
	if !slices.Equal(old.PartitionColumns, nw.PartitionColumns) {
		return false
	}
	for _, k := range []string{ColumnMappingModeKey, "delta.rowTracking.materializedRowIdColumnName", "delta.rowTracking.materializedRowCommitVersionColumnName"} {
		if old.Configuration[k] != nw.Configuration[k] {
			return false
		}
	}
	if old.SchemaString == nw.SchemaString {
		return true
	}
	os, err1 := ParseSchemaString(old.SchemaString)
	ns, err2 := ParseSchemaString(nw.SchemaString)
	if err1 != nil || err2 != nil {
		return false
	}
	return schemaKeeps(os, ns)
}

// schemaKeeps reports whether every column of old is in nw with the same
// type, nullability and physical name.
func schemaKeeps(old, nw *Schema) bool {
	for i, f := range old.fields {
		j := nw.Index(f.Name)
		if j < 0 || !nw.types[j].Equal(old.types[i]) || nw.fields[j].Nullable != f.Nullable ||
			PhysicalName(f.Name, f.Metadata) != PhysicalName(nw.fields[j].Name, nw.fields[j].Metadata) {
			return false
		}
	}
	return true
}

// backoffDelay is exponential backoff with full jitter.
func backoffDelay(attempt int, base, max time.Duration) time.Duration {
	d := base << min(attempt-1, 20)
	if d > max || d <= 0 {
		d = max
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// maybeCheckpoint writes a checkpoint when the version is on the interval.
func (t *Table) maybeCheckpoint(ctx context.Context) (bool, error) {
	iv := int64(t.checkpointInterval())
	if iv <= 0 || t.snap.version <= 0 || t.snap.version%iv != 0 {
		return false, nil
	}
	if err := writeCheckpoint(ctx, t.store, t.snap, t.opts.Now()); err != nil {
		return false, err
	}
	t.snap.checkpointVersion = t.snap.version
	return true, nil
}

// Checkpoint writes a checkpoint of the current version now.
func (t *Table) Checkpoint(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := checkWritable(t.snap.protocol, t.snap.metadata, t.snap.schema); err != nil {
		return fmt.Errorf("checkpointing %s: %w", t.store.URI(), err)
	}
	if err := writeCheckpoint(ctx, t.store, t.snap, t.opts.Now()); err != nil {
		return err
	}
	t.snap.checkpointVersion = t.snap.version
	return nil
}

// CreateOptions describe a new table.
type CreateOptions struct {
	Schema           *Schema
	PartitionColumns []string
	// Properties are the table configuration (delta.* and user keys).
	Properties  map[string]string
	Name        string
	Description string
	// DropExisting deletes an existing table's log and data files first.
	DropExisting bool
	// Open tunes the returned handle.
	Open OpenOptions
}

// createProtocol is the protocol of a new table: legacy (1,2) or (1,4) for
// change data feed, or reader 3 / writer 7 with the table features that
// delta.enableDeletionVectors, delta.enableRowTracking,
// delta.enableInCommitTimestamps and delta.checkpointPolicy=v2 need.
func createProtocol(conf map[string]string, sc *Schema) Protocol {
	proto := Protocol{MinReaderVersion: 1, MinWriterVersion: 2}
	cdf := propertyTrue(conf, "delta.enableChangeDataFeed")
	if cdf {
		proto.MinWriterVersion = 4
	}
	var readerF, writerF []string
	// Features the schema itself needs: its types and its column metadata.
	kinds, keys := map[Kind]bool{}, map[string]bool{}
	for _, f := range sc.Fields() {
		schemaNeeds(*f.DataType, f.Metadata, kinds, keys)
	}
	if ColumnMappingMode(conf) != "" {
		readerF = append(readerF, FeatureColumnMapping)
		writerF = append(writerF, FeatureColumnMapping)
	}
	if kinds[KindTimestampNTZ] {
		readerF = append(readerF, FeatureTimestampNtz)
		writerF = append(writerF, FeatureTimestampNtz)
	}
	if kinds[KindVariant] {
		readerF = append(readerF, FeatureVariantType)
		writerF = append(writerF, FeatureVariantType)
	}
	if keys["delta.generationExpression"] {
		writerF = append(writerF, FeatureGeneratedColumns)
	}
	if keys["delta.identity.start"] {
		writerF = append(writerF, FeatureIdentityColumns)
	}
	for k := range conf {
		if strings.HasPrefix(k, "delta.constraints.") {
			writerF = append(writerF, FeatureCheckConstraints)
			break
		}
	}
	if propertyTrue(conf, "delta.enableDeletionVectors") {
		readerF = append(readerF, FeatureDeletionVectors)
		writerF = append(writerF, FeatureDeletionVectors)
	}
	if strings.EqualFold(strings.TrimSpace(conf["delta.checkpointPolicy"]), "v2") {
		readerF = append(readerF, FeatureV2Checkpoint)
		writerF = append(writerF, FeatureV2Checkpoint)
	}
	if propertyTrue(conf, "delta.enableRowTracking") {
		writerF = append(writerF, FeatureDomainMetadata, FeatureRowTracking)
	}
	if propertyTrue(conf, "delta.enableInCommitTimestamps") {
		writerF = append(writerF, FeatureInCommitTimestamp)
	}
	if len(writerF) == 0 {
		return proto
	}
	// Writer 7 lists every feature, those legacy versions implied too.
	legacy := []string{FeatureAppendOnly, FeatureInvariants}
	if cdf {
		legacy = append(legacy, FeatureChangeDataFeed)
	}
	proto = Protocol{MinReaderVersion: 1, MinWriterVersion: 7, WriterFeatures: append(legacy, writerF...)}
	if len(readerF) > 0 {
		proto.MinReaderVersion = 3
		proto.ReaderFeatures = readerF
	}
	return proto
}

// schemaNeeds records the kinds and column metadata keys under t.
func schemaNeeds(t DataType, md map[string]any, kinds map[Kind]bool, keys map[string]bool) {
	kinds[t.Kind] = true
	for k := range md {
		keys[k] = true
	}
	for _, f := range t.Fields {
		schemaNeeds(f.Type, f.Metadata, kinds, keys)
	}
	for _, c := range []*DataType{t.Elem, t.Key, t.Value} {
		if c != nil {
			schemaNeeds(*c, nil, kinds, keys)
		}
	}
}

// CreatePlan is what Create would do, for a dry run.
type CreatePlan struct {
	// Exists: a table is already there (Create fails unless DropExisting).
	Exists bool
	// ExistingVersion is the version of the existing table, or -1.
	ExistingVersion int64
	// Delete lists the objects DropExisting would delete.
	Delete []string
	// Actions are the actions of version 0 (commitInfo first).
	Actions []Action
	// Commit is version 0 as it would be written.
	Commit []byte
}

// String is a human-readable summary of the plan.
func (p *CreatePlan) String() string {
	var b strings.Builder
	if p.Exists {
		fmt.Fprintf(&b, "existing table at version %d; drop would delete %d objects\n", p.ExistingVersion, len(p.Delete))
	}
	for _, a := range p.Actions {
		switch {
		case a.Protocol != nil:
			fmt.Fprintf(&b, "protocol: minReaderVersion=%d minWriterVersion=%d\n", a.Protocol.MinReaderVersion, a.Protocol.MinWriterVersion)
		case a.MetaData != nil:
			sc, _ := ParseSchemaString(a.MetaData.SchemaString)
			fmt.Fprintf(&b, "metaData: id=%s\n  schema: %s\n  partitionColumns: %v\n  configuration: %v\n", a.MetaData.ID, sc, a.MetaData.PartitionColumns, a.MetaData.Configuration)
		}
	}
	return b.String()
}

// PlanCreate validates opts and returns what Create would write and
// delete, without writing anything.
func PlanCreate(ctx context.Context, store storage.Store, opts CreateOptions) (*CreatePlan, error) {
	if opts.Schema == nil {
		return nil, errors.New("creating table: no schema")
	}
	now := time.Now
	if opts.Open.Now != nil {
		now = opts.Open.Now
	}
	seen := map[string]bool{}
	pcols := make([]string, 0, len(opts.PartitionColumns))
	for _, pc := range opts.PartitionColumns {
		i := opts.Schema.Index(pc)
		if i < 0 {
			return nil, fmt.Errorf("creating table: partition column %q is not in the schema", pc)
		}
		name := opts.Schema.fields[i].Name
		if seen[strings.ToLower(name)] {
			return nil, fmt.Errorf("creating table: partition column %q listed twice", pc)
		}
		seen[strings.ToLower(name)] = true
		pcols = append(pcols, name)
	}
	conf := map[string]string{}
	for k, v := range opts.Properties {
		conf[k] = v
	}
	if _, err := newDataLayout(opts.Schema, pcols, conf); err != nil {
		return nil, fmt.Errorf("creating table: %w", err)
	}
	for _, k := range []string{"delta.logRetentionDuration", "delta.deletedFileRetentionDuration", TxnRetentionProperty} {
		if _, err := durationProperty(conf, k, 0); err != nil {
			return nil, fmt.Errorf("creating table: %w", err)
		}
	}
	if ColumnMappingMode(conf) != "" {
		// Every field gets its id and physical name now: a column-mapping
		// table without them is unreadable.
		mapped, maxID, _, err := AssignColumnMapping(opts.Schema, conf)
		if err != nil {
			return nil, fmt.Errorf("creating table: %w", err)
		}
		opts.Schema = mapped
		conf[ColumnMappingMaxIDKey] = strconv.FormatInt(maxID, 10)
	}
	proto := createProtocol(conf, opts.Schema)
	if propertyTrue(conf, "delta.enableRowTracking") {
		// Spark's names for the hidden materialized columns.
		if conf["delta.rowTracking.materializedRowIdColumnName"] == "" {
			conf["delta.rowTracking.materializedRowIdColumnName"] = "_row-id-col-" + uuid.NewString()
		}
		if conf["delta.rowTracking.materializedRowCommitVersionColumnName"] == "" {
			conf["delta.rowTracking.materializedRowCommitVersionColumnName"] = "_row-commit-version-col-" + uuid.NewString()
		}
	}
	md := Metadata{
		ID:               uuid.NewString(),
		Name:             opts.Name,
		Description:      opts.Description,
		Format:           Format{Provider: "parquet", Options: map[string]string{}},
		SchemaString:     opts.Schema.SchemaString(),
		PartitionColumns: pcols,
		Configuration:    conf,
		CreatedTime:      ptr(now().UnixMilli()),
	}
	if err := checkWritable(proto, md, opts.Schema); err != nil {
		return nil, fmt.Errorf("creating table: %w", err)
	}
	pc, _ := json.Marshal(pcols)
	props, _ := json.Marshal(conf)
	ci := map[string]any{
		"timestamp": now().UnixMilli(),
		"operation": "CREATE TABLE",
		"operationParameters": map[string]any{
			"isManaged":      "false",
			"description":    opts.Description,
			"partitionBy":    string(pc),
			"properties":     string(props),
			"protocolChange": "true",
		},
		"isBlindAppend": true,
		"engineInfo":    EngineInfo,
		"clientVersion": EngineInfo,
	}
	if proto.Supports(FeatureInCommitTimestamp) && propertyTrue(conf, "delta.enableInCommitTimestamps") {
		ci["inCommitTimestamp"] = ci["timestamp"]
	}
	if _, _, err := opts.Open.Writer.codec(); err != nil {
		return nil, fmt.Errorf("creating table: %w", err)
	}
	plan := &CreatePlan{ExistingVersion: -1}
	plan.Actions = []Action{{CommitInfo: ci}, {Protocol: &proto}, {MetaData: &md}}
	data, err := EncodeCommit(plan.Actions)
	if err != nil {
		return nil, fmt.Errorf("creating table: %w", err)
	}
	plan.Commit = data
	objs, err := store.List(ctx, "_delta_log/")
	if err != nil {
		return nil, fmt.Errorf("creating table: checking for an existing table at %s: %w", store.URI(), err)
	}
	for _, o := range objs {
		if lf := parseLogName(o.Path); lf.kind != logOther {
			plan.Exists = true
			if lf.version > plan.ExistingVersion {
				plan.ExistingVersion = lf.version
			}
		}
	}
	if plan.Exists {
		all, err := store.List(ctx, "")
		if err != nil {
			return nil, fmt.Errorf("creating table: listing %s: %w", store.URI(), err)
		}
		for _, o := range all {
			plan.Delete = append(plan.Delete, o.Path)
		}
	}
	return plan, nil
}

// Create creates a table: version 0 with protocol (1,2), or (1,4) when
// delta.enableChangeDataFeed=true, or the table features the properties
// ask for (see createProtocol), metaData and commitInfo. An existing
// table is an error wrapping ErrTableExists unless opts.DropExisting, which
// first deletes every object under the table (log and data). Use
// PlanCreate for a dry run.
func Create(ctx context.Context, store storage.Store, opts CreateOptions) (*Table, error) {
	plan, err := PlanCreate(ctx, store, opts)
	if err != nil {
		return nil, err
	}
	if plan.Exists {
		if !opts.DropExisting {
			return nil, fmt.Errorf("creating table at %s (version %d exists): %w", store.URI(), plan.ExistingVersion, ErrTableExists)
		}
		// Delete the log first, newest version first: an interrupted drop
		// then leaves an older, still consistent version whose data files
		// are all present, never a log pointing at deleted files.
		paths := append([]string(nil), plan.Delete...)
		sort.SliceStable(paths, func(i, j int) bool {
			li, lj := strings.HasPrefix(paths[i], "_delta_log/"), strings.HasPrefix(paths[j], "_delta_log/")
			if li != lj {
				return li
			}
			return paths[i] > paths[j]
		})
		for _, p := range paths {
			if err := store.Delete(ctx, p); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return nil, fmt.Errorf("dropping existing table at %s: %w", store.URI(), err)
			}
		}
	}
	if err := store.PutIfAbsent(ctx, commitPath(0), plan.Commit); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return nil, fmt.Errorf("creating table at %s: another writer created it concurrently: %w", store.URI(), ErrTableExists)
		}
		return nil, fmt.Errorf("creating table at %s: %w", store.URI(), err)
	}
	o := opts.Open.withDefaults()
	snap := newEmptySnapshot()
	if err := snap.apply(0, plan.Actions); err != nil {
		return nil, err
	}
	return &Table{store: store, opts: o, snap: snap}, nil
}
