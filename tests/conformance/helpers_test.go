//go:build conformance

package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const envRequire = "CLAIMX_REQUIRE_INTEGRATION"

// requireIntegration skips (or, with CLAIMX_REQUIRE_INTEGRATION=1, fails) a
// test whose service or tool is missing.
func requireIntegration(t *testing.T, why string) {
	t.Helper()
	if os.Getenv(envRequire) == "1" {
		t.Fatalf("integration dependency missing: %s", why)
	}
	t.Skipf("skipping: %s (set %s=1 to fail instead)", why, envRequire)
}

// repoRoot is the repository root (tests run in tests/conformance).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// conformancePython returns the python of the conformance venv.
func conformancePython(t *testing.T) string {
	t.Helper()
	py := os.Getenv("CLAIMX_CONFORMANCE_PYTHON")
	if py == "" {
		py = filepath.Join(repoRoot(t), ".tools/conformance/venv/bin/python")
	}
	if _, err := os.Stat(py); err != nil {
		requireIntegration(t, "no conformance python at "+py+" (run scripts/setup-conformance.sh)")
	}
	return py
}

// sparkJars returns the delta-spark jars for spark.jars.
func sparkJars(t *testing.T) string {
	t.Helper()
	if j := os.Getenv("CLAIMX_SPARK_JARS"); j != "" {
		return j
	}
	jars, _ := filepath.Glob(filepath.Join(repoRoot(t), ".tools/conformance/jars/*.jar"))
	return strings.Join(jars, ",")
}

// runPython runs a python script of this directory with a timeout and
// returns its stdout; stderr goes to the test log on failure.
func runPython(t *testing.T, timeout time.Duration, env []string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, conformancePython(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python %s: %v\nstderr (tail):\n%s", strings.Join(args, " "), err, tail(stderr.String(), 4000))
	}
	return out
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// writeJSON writes v to a file in dir and returns its path.
func writeJSON(t *testing.T, dir, name string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// canon renders a value as the readers print it, with its JSON kind, so a
// number and a string of the same digits differ: "n:42", "s:abc", "null".
func canon(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case json.Number:
		return "n:" + x.String()
	case int32:
		return fmt.Sprintf("n:%d", x)
	case int64:
		return fmt.Sprintf("n:%d", x)
	case int:
		return fmt.Sprintf("n:%d", x)
	case string:
		return "s:" + x
	case time.Time:
		return "s:" + isoMicros(x)
	case bool:
		return fmt.Sprintf("b:%v", x)
	}
	return fmt.Sprintf("?%T:%v", v, v)
}

func isoMicros(ts time.Time) string {
	return ts.UTC().Format("2006-01-02T15:04:05.000000Z")
}

func short(s string) string {
	if len(s) > 120 {
		return s[:120] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}
