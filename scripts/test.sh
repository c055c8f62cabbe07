#!/usr/bin/env bash
# The whole test suite (the README's test command, `make test`):
#   1. installs what the tests need (kcat, the Python Delta readers, the
#      object-store emulators) — idempotent, minutes on a fresh machine only;
#   2. builds the binary, vets, checks formatting, lints the pipelines, checks
#      the deployment files (tests/docker/check_dockerfile.sh);
#   3. runs the Go tests (unit, embedded-broker and emulator integration,
#      delta-rs cross-checks) and the pipelines' config unit tests.
# With CLAIMX_REQUIRE_INTEGRATION=1 (as in CI) no integration test may skip.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

mkdir -p .tools
if ! scripts/start-emulators.sh > .tools/emulators.env; then
  echo "test: object-store emulators could not be started" >&2
  exit 1
fi
trap 'scripts/stop-emulators.sh >/dev/null 2>&1 || true' EXIT
# shellcheck disable=SC1091
. .tools/emulators.env

make build lint
# Dockerfile, compose, Kubernetes, dashboard and alert rules, offline.
bash tests/docker/check_dockerfile.sh
go test -count=1 -timeout 40m ./...
make pipelines-test
