// Package quality evaluates declarative data-quality expectations over Delta
// tables: freshness, completeness (per day, against a table or a Kafka topic),
// null rates, uniqueness, ranges and allowed values, and referential
// integrity between two tables. It answers from the Delta log first —
// partition values prune files, file statistics (numRecords, minValues,
// maxValues, nullCount) answer counts and bounds — and reads only the columns
// it needs of the files the log cannot answer for. Every Result says how many
// files were considered, pruned and scanned, so cheapness can be watched.
//
// It knows nothing of benthos: the `delta check` subcommand and the
// quality_check input drive it. docs/QUALITY.md describes the expectations.
package quality
