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
//     the files; timestamps are INT64 TIMESTAMP(MICROS, UTC), data pages
//     are version 1;
//   - add actions carry stats (numRecords, minValues, maxValues, nullCount
//     for the first 32 non-partition columns; strings cut to 32 characters;
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
