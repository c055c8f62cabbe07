// Package conformance checks claimx-connect against the real systems it
// talks to: Apache Kafka (our kafka_franz input and output, topics apply,
// kcat) and independent Delta Lake readers (Spark with delta-spark, delta-rs,
// DuckDB) reading tables our delta engine wrote.
//
// The tests carry the build tag `conformance`, so `go test ./...` does not
// run them:
//
//	scripts/kafka.sh install && scripts/kafka.sh start
//	scripts/setup-conformance.sh
//	go test -tags conformance -count=1 ./tests/conformance/...
//	scripts/kafka.sh stop
//
// A missing service or reader skips its tests, or fails them when
// CLAIMX_REQUIRE_INTEGRATION=1. Environment: KAFKA_BOOTSTRAP (default
// 127.0.0.1:29092), CLAIMX_CONFORMANCE_PYTHON (default
// .tools/conformance/venv/bin/python), CLAIMX_SPARK_JARS (default the jars
// in .tools/conformance/jars).
//
// TestWorkerTableReaders runs the trigger and worker streams (child
// processes) on the real broker with the ClaimX simulator, feeds ClaimX
// events spread over several days, and has delta-rs, DuckDB and Spark (one
// session, which also runs every statement of docs/queries.sql through
// tests/docker/run_queries.py) read the table the worker wrote: schema and
// types, row count, every value against the worker's success messages and
// the events, partition pruning, aggregates from stats, DESCRIBE HISTORY and
// the txn actions. About 4-5 minutes, most of it Spark.
package conformance
