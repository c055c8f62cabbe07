package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var (
	// RepoRoot is the root of the module (the directory holding go.mod).
	RepoRoot string
	// BinPath is the claimx-connect binary Main built; empty when the build
	// failed (BuildErr says why).
	BinPath  string
	BuildErr error
)

// Main builds claimx-connect into a temporary directory, runs the tests and
// removes the binary: call it from TestMain as os.Exit(harness.Main(m)).
func Main(m *testing.M) int {
	root, err := FindRepoRoot()
	if err != nil {
		BuildErr = err
		return m.Run()
	}
	RepoRoot = root
	dir, err := os.MkdirTemp("", "claimx-e2e-bin-")
	if err != nil {
		BuildErr = err
		return m.Run()
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "claimx-connect")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		BuildErr = fmt.Errorf("go build: %v\n%s", err, b)
	} else {
		BinPath = out
	}
	return m.Run()
}

// FindRepoRoot walks up from the working directory to the go.mod of the
// claimx-connect module.
func FindRepoRoot() (string, error) {
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

// RequireBinary skips the test when the binary could not be built.
func RequireBinary(t *testing.T) {
	t.Helper()
	if BinPath == "" {
		t.Skipf("claimx-connect could not be built: %v", BuildErr)
	}
}
