package hold

import (
	"os"
	"sync"
	"syscall"
)

var (
	fatalMu  sync.Mutex
	fatalErr error
)

// StopProcess is what a component does when a hold outlasts its
// hold_timeout: it records err and asks the process to stop gracefully
// (SIGTERM to itself, as Kubernetes would), so that held records are handed
// back to their input uncommitted rather than failed. main turns the
// recorded error into a non-zero exit code with ExitCode.
func StopProcess(err error) {
	fatalMu.Lock()
	first := fatalErr == nil
	if first {
		fatalErr = err
	}
	fatalMu.Unlock()
	if !first {
		return
	}
	if p, perr := os.FindProcess(os.Getpid()); perr == nil {
		_ = p.Signal(syscall.SIGTERM)
	}
}

// ExitCode is the process's exit code: code, or 3 when a hold timed out and
// the process stopped because of it (code 0 would read as a clean stop).
func ExitCode(code int) int {
	fatalMu.Lock()
	defer fatalMu.Unlock()
	if fatalErr != nil && code == 0 {
		return 3
	}
	return code
}

// FatalError is the error StopProcess recorded, or nil.
func FatalError() error {
	fatalMu.Lock()
	defer fatalMu.Unlock()
	return fatalErr
}
