// Package e2e runs the trigger and worker streams of the iTel Cabinet
// pipelines as separate claimx-connect processes against the embedded Kafka
// broker and the ClaimX simulator, kills them with SIGKILL, and checks the
// Delta table and the topics afterwards (DOMAIN.md §1: at-least-once end to
// end, exactly one row per tracked event).
//
//	go test ./tests/e2e/ -v -count=1
//
// Environment:
//
//	E2E_SEED         seed of the events and of the kill schedule (default 20260129)
//	E2E_KILLS        how many times each test kills its stream (default 5)
//	E2E_KEEP_DIR     keep each test's table and child logs under this directory
//	E2E_WORKER_YAML  worker stream file instead of pipelines/worker.yaml, to
//	                 check that the test catches a broken pipeline (for example
//	                 a copy without idempotency: it must then fail)
package e2e

import (
	"os"
	"testing"

	"github.com/claimx/claimx-connect/tests/internal/harness"
)

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m))
}
