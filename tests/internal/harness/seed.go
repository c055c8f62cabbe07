package harness

import (
	"os"
	"strconv"
	"testing"
)

// Seed is the seed of one test: the value of the environment variable env
// (default 20260129) plus delta, so that each test of a suite has its own
// events and kill schedule while one variable reruns the whole suite.
func Seed(t *testing.T, env string, delta uint64) uint64 {
	t.Helper()
	seed := uint64(20260129)
	if s := os.Getenv(env); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", env, s, err)
		}
		seed = v
	}
	t.Logf("seed %d+%d (set %s to change)", seed, delta, env)
	return seed + delta
}
