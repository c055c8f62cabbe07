// Package delta is a Delta Lake table engine: it reads the transaction log
// (checkpoints and JSON commits) into a Snapshot, writes Parquet data files
// and commits them with optimistic concurrency, keeps idempotent-write
// (txn) versions, writes checkpoints, and maintains tables (Optimize,
// Vacuum, log cleanup, History, Describe). It knows nothing of Benthos or
// Kafka; storage is the small Store interface of package storage, whose
// PutIfAbsent makes each commit atomic.
//
// The rules it follows are those of the Delta PROTOCOL.md as summarised in
// the project's design/DELTA.md:
//
//   - commits are _delta_log/<20-digit version>.json, created once with
//     put-if-absent; a lost race reads the winners and either fails with
//     ErrConflict (they changed protocol or metaData, wrote a txn for one of
//     our appIds, or removed a file we remove) or renumbers and retries with
//     exponential backoff and jitter, a bounded number of times;
//   - data files get UUID names, are uploaded before the commit and never
//     overwritten; partition columns live in Hive-style directories, not in
//     the files; timestamps are INT64 TIMESTAMP(MICROS, UTC), timestamp_ntz
//     INT64 TIMESTAMP(MICROS, isAdjustedToUTC=false), data pages are
//     version 1;
//   - nested types are stored as Spark writes them: struct as a group,
//     array as the 3-level LIST, map as MAP with a repeated key_value
//     group (shred.go does the Dremel levels); flat primitive columns keep
//     their own fast path. In a Row a struct is []any in field order, an
//     array []any, a map []MapEntry (ordered), a timestamp_ntz the
//     wall-clock time.Time in the UTC location (see Row);
//   - under column mapping (name or id) files, stats and partitionValues
//     use physical names and Parquet field_id = the mapping id; reads
//     resolve by physical name, then field id; reads widen narrower file
//     types to the table's (type widening);
//   - add actions carry stats (numRecords, minValues, maxValues, nullCount
//     for the first 32 non-partition leaf columns, struct leaves nested,
//     lists and maps with a nullCount only; strings cut to 32 characters;
//     timestamps at millisecond precision with the min rounded down and the
//     max rounded up);
//   - checkpoints every CheckpointInterval versions, then _last_checkpoint:
//     classic V1, or UUID-named V2 (checkpointMetadata first) when
//     delta.checkpointPolicy=v2; V2 checkpoints with sidecars are read; a
//     checkpoint a crash skipped is made up on Open;
//   - table features (features.go): deletion vectors are applied on read
//     (a logical file is (path, DV)), compacted away by Optimize and kept
//     by Vacuum while referenced; with rowTracking every add gets baseRowId
//     and defaultRowCommitVersion and the delta.rowTracking domain its
//     high-water mark (rebased after a lost race); with in-commit
//     timestamps commitInfo carries a strictly increasing
//     inCommitTimestamp; domainMetadata is kept and checkpointed;
//   - invariants, CHECK constraints and generated columns are Spark SQL
//     expressions (expr.go) checked per record (Table.CheckRow) and again in
//     Append, so a violating row is a record error, never a commit;
//     generated columns are filled before partitioning and identity
//     columns get values above delta.identity.highWaterMark, which the
//     commit's metaData advances (constraints.go); variant values are
//     written in the Parquet variant encoding (EncodeVariant) and read
//     back as bytes (Variant);
//   - tables needing a feature this writer does not implement
//     (icebergCompat*, catalogManaged, collations, …) are refused for
//     writing with ErrUnsupportedFeature naming the feature.
//
// A typical streaming writer opens the table once and appends batches:
//
//	store, _ := storage.Open(ctx, "s3://bucket/table", storage.Options{})
//	tbl, err := delta.Open(ctx, store, delta.OpenOptions{})
//	sc := tbl.Schema()
//	row, err := sc.RowFromJSON(decoded) // one per message
//	if !tbl.TxnApplied(appID, offset) {
//		_, err = tbl.Append(ctx, delta.AppendRequest{
//			Rows: rows,
//			Txns: []delta.Txn{{AppID: appID, Version: offset}},
//			Operation: delta.OperationStreamingUpdate,
//		})
//	}
package delta
