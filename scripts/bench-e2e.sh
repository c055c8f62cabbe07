#!/usr/bin/env bash
# make bench-e2e: the worker end to end on real Kafka (tests/bench/e2e).
# Starts Apache Kafka through scripts/kafka.sh when nothing answers on its
# port (and stops it afterwards), then runs the benchmark with the arguments
# given (e.g. -records 50000). Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${CLAIMX_KAFKA_PORT:-29092}
started=
if ! scripts/kafka.sh status >/dev/null 2>&1 && ! (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
	scripts/kafka.sh install
	scripts/kafka.sh start
	started=1
fi
trap '[[ -n $started ]] && scripts/kafka.sh stop || true' EXIT
go run ./tests/bench/e2e -brokers "127.0.0.1:$PORT" "$@"
