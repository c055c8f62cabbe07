# claimx-connect: build, test, lint, bench.
SHELL      := /bin/bash
BIN        := bin/claimx-connect
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT     ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE       ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS    := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
GO_FILES    = $(shell git ls-files '*.go')
PIPELINES   = $(filter-out %_benthos_test.yaml pipelines/topics.yaml,$(wildcard pipelines/*.yaml pipelines/examples/*.yaml))
RESOURCES   = $(foreach r,$(wildcard pipelines/resources/*.yaml),-r $(r))

.PHONY: build setup test unit lint vet fmt-check pipelines-test bench bench-kafka bench-quality bench-delta bench-claimx bench-e2e sim-day clean

build:
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

# Installs kcat and the Python Delta readers the tests use (idempotent).
setup:
	bash scripts/setup.sh

# The whole suite (installs, emulators, lint, Go tests, pipeline tests): what .ci/run runs.
test:
	bash scripts/test.sh

unit:
	go test -count=1 -timeout 40m ./...

lint: vet fmt-check
	./$(BIN) lint $(RESOURCES) $(PIPELINES)

vet:
	go vet ./...

fmt-check:
	@out=$$(gofmt -l $(GO_FILES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The pipelines' config unit tests (*_benthos_test.yaml beside each stream).
pipelines-test: build
	./$(BIN) test $(RESOURCES) ./pipelines/...

bench: bench-kafka bench-delta bench-claimx bench-quality

bench-kafka:
	go run ./tests/bench/kafkainput -records 1000000

# Data-quality checks on a 90-day table against reading it whole, in the same
# run: times, their ratio (fullscan/checks) and the files each reads.
bench-quality:
	go test -run '^$$' -bench BenchmarkQualityChecks -benchtime 5x ./quality/

bench-delta:
	go test -run '^$$' -bench . -benchmem -benchtime 3x ./delta/
	go test -run '^$$' -bench . -benchtime 20x ./internal/deltasink/

# The lookup's cost with and without hold (cache hits), then its throughput
# against the simulator's rate limit.
bench-claimx:
	go test -run '^$$' -bench BenchmarkLookupBatch -benchmem -count 3 ./processors/
	go run ./tests/bench/claimxlookup -duration 5s

# A whole simulated day of one event a second (86,400 one-row commits, auto
# compaction after each, checkpoints every 10): files per partition, the open
# time of the finished table, compaction's CPU per row. CI runs two hours of it.
sim-day:
	CLAIMX_SIMDAY_SECONDS=86400 go test -count=1 -run '^TestSimulatedDay$$' -v -timeout 90m ./delta/

# The worker end to end on real Kafka (starts scripts/kafka.sh if needed); not in CI.
bench-e2e:
	bash scripts/bench-e2e.sh $(BENCH_E2E_ARGS)

clean:
	rm -rf bin data
