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
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var (
	// repoRoot is the root of the module (the directory holding go.mod).
	repoRoot string
	// binPath is the claimx-connect binary TestMain built; empty when the
	// build failed (buildErr says why), and then every test skips.
	binPath  string
	buildErr error
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := findRepoRoot()
	if err != nil {
		buildErr = err
		return m.Run()
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "claimx-e2e-bin-")
	if err != nil {
		buildErr = err
		return m.Run()
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "claimx-connect")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build: %v\n%s", err, b)
	} else {
		binPath = out
	}
	return m.Run()
}

// findRepoRoot walks up from the working directory to the go.mod of the
// claimx-connect module.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/claimx/claimx-connect\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of github.com/claimx/claimx-connect above the working directory")
		}
		dir = parent
	}
}

// requireBinary skips the test when the binary could not be built.
func requireBinary(t *testing.T) {
	t.Helper()
	if binPath == "" {
		t.Skipf("claimx-connect could not be built: %v", buildErr)
	}
}
