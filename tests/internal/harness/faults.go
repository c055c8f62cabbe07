package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

// S3Table is a table on an S3-compatible store (an emulator): the worker
// writes s3://Bucket/Prefix through Endpoint with the static credentials
// below, and Verify reads it there.
type S3Table struct {
	Endpoint, Bucket, Prefix string
	// AccessKey and SecretKey default to "claimx-test" (emulators accept any).
	AccessKey, SecretKey string
}

// URI is the table's s3:// URI.
func (s *S3Table) URI() string { return "s3://" + s.Bucket + "/" + strings.Trim(s.Prefix, "/") }

func (s *S3Table) keys() (string, string) {
	ak, sk := s.AccessKey, s.SecretKey
	if ak == "" {
		ak = "claimx-test"
	}
	if sk == "" {
		sk = "claimx-test"
	}
	return ak, sk
}

// childEnv is the worker's storage settings, as a deployment on an
// S3-compatible store sets them; no AWS profile or shared file is read.
func (s *S3Table) childEnv() []string {
	ak, sk := s.keys()
	return []string{
		"DELTA_STORAGE_ENDPOINT=" + s.Endpoint,
		"DELTA_STORAGE_REGION=us-east-1",
		"DELTA_STORAGE_FORCE_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=" + ak,
		"AWS_SECRET_ACCESS_KEY=" + sk,
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=us-east-1",
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"AWS_ENDPOINT_URL=",
		"AWS_ENDPOINT_URL_S3=",
	}
}

// TableStore opens the store of the Env's table (local or S3).
func (e *Env) TableStore(ctx context.Context) (storage.Store, error) {
	if e.Opts.S3 == nil {
		return storage.NewLocal(e.TableDir)
	}
	// The S3 backend reads credentials from the process environment only;
	// every S3 test of a run uses the same emulator credentials, and no
	// other test of the process reads AWS settings.
	ak, sk := e.Opts.S3.keys()
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": ak, "AWS_SECRET_ACCESS_KEY": sk, "AWS_REGION": "us-east-1"} {
		if os.Getenv(k) != v {
			_ = os.Setenv(k, v)
		}
	}
	return storage.Open(ctx, e.Opts.S3.URI(), storage.Options{
		Endpoint: e.Opts.S3.Endpoint, Region: "us-east-1",
		Extra: map[string]string{storage.S3ForcePathStyle: "true"},
	})
}

// Terminate sends SIGTERM to p's current life and waits up to within for it
// to exit. It returns how long the exit took and the exit error (nil for
// exit status 0). The life counts as stopped by the test, not as an
// unexpected exit.
func (p *Proc) Terminate(within time.Duration) (time.Duration, error) {
	p.t.Helper()
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if cmd == nil {
		p.mu.Unlock()
		return 0, errors.New("not started")
	}
	p.killing = true
	p.mu.Unlock()
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatalf("SIGTERM to %s: %v", p.Name, err)
	}
	select {
	case <-done:
	case <-time.After(within):
		took := time.Since(start)
		p.Kill()
		return took, fmt.Errorf("%s (pid %d) still running %s after SIGTERM: killed", p.Name, cmd.Process.Pid, within)
	}
	took := time.Since(start)
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.runs); n > 0 && p.runs[n-1].Ended.IsZero() {
		p.runs[n-1].Ended = time.Now()
	}
	if cmd.ProcessState != nil && cmd.ProcessState.Success() {
		return took, nil
	}
	if cmd.ProcessState != nil {
		return took, fmt.Errorf("%s", cmd.ProcessState)
	}
	return took, nil
}

// Hold is one hold a child process logged: "dependency unavailable: holding
// the stream" (Reason, Records) and, if it ended, "dependency available
// again: resuming" (HeldFor).
type Hold struct {
	Dependency, Reason string
	Records            int
	HeldFor            time.Duration
	Ended              bool
}

var (
	logDependency  = regexp.MustCompile(`\bdependency="([^"]*)"|\bdependency=(\S+)`)
	logReason      = regexp.MustCompile(`\breason=("[^"]*"|\S+)`)
	logRecords     = regexp.MustCompile(`\brecords=([0-9]+)`)
	logHeldSeconds = regexp.MustCompile(`\bheld_seconds=([0-9.eE+-]+)`)
	logTime        = regexp.MustCompile(`^time="([^"]+)"`)
)

// Holds reads the holds p logged, over every life, in the order logged. A
// hold that did not end (its life was stopped while holding) has HeldFor up
// to the last line its life logged.
func (p *Proc) Holds() []Hold {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return nil
	}
	var out []Hold
	open := map[string]int{} // dependency -> index of its open hold
	began := map[int]time.Time{}
	var last time.Time
	closeLife := func() {
		for _, i := range open {
			if !began[i].IsZero() && last.After(began[i]) {
				out[i].HeldFor = last.Sub(began[i])
			}
		}
		clear(open)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "==== ") {
			closeLife() // a new life: holds of the last one ended with it
			continue
		}
		var at time.Time
		if m := logTime.FindStringSubmatch(line); m != nil {
			if ts, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
				at, last = ts, ts
			}
		}
		entered := strings.Contains(line, "dependency unavailable: holding the stream")
		left := strings.Contains(line, "dependency available again: resuming")
		if !entered && !left {
			continue
		}
		dep := ""
		if m := logDependency.FindStringSubmatch(line); m != nil {
			dep = m[1] + m[2]
		}
		if entered {
			h := Hold{Dependency: dep}
			if m := logReason.FindStringSubmatch(line); m != nil {
				h.Reason = strings.Trim(m[1], `"`)
			}
			if m := logRecords.FindStringSubmatch(line); m != nil {
				h.Records, _ = strconv.Atoi(m[1])
			}
			out = append(out, h)
			began[len(out)-1] = at
			// Two gates of one dependency may hold at once (one per
			// instance of a lookup): key by the order of entering.
			open[dep+"#"+strconv.Itoa(len(out))] = len(out) - 1
			continue
		}
		// The hold that ends is the open one of this dependency entered
		// first whose records match, else the first open one.
		best := -1
		recs := -1
		if m := logRecords.FindStringSubmatch(line); m != nil {
			recs, _ = strconv.Atoi(m[1])
		}
		var bestKey string
		for k, i := range open {
			if !strings.HasPrefix(k, dep+"#") {
				continue
			}
			match := out[i].Records == recs
			switch {
			case best < 0, match && out[best].Records != recs, match == (out[best].Records == recs) && i < best:
				best, bestKey = i, k
			}
		}
		if best < 0 {
			out = append(out, Hold{Dependency: dep})
			best = len(out) - 1
		} else {
			delete(open, bestKey)
		}
		if m := logHeldSeconds.FindStringSubmatch(line); m != nil {
			if f, err := strconv.ParseFloat(m[1], 64); err == nil {
				out[best].HeldFor = time.Duration(f * float64(time.Second))
			}
		}
		out[best].Ended = true
	}
	closeLife()
	return out
}

// LongestHold is the longest ended hold of ps, and a summary of all holds.
func LongestHold(ps ...*Proc) (time.Duration, string) {
	var longest time.Duration
	var parts []string
	for _, p := range ps {
		hs := p.Holds()
		byReason := map[string]int{}
		var open int
		for _, h := range hs {
			byReason[h.Dependency+"/"+h.Reason]++
			if !h.Ended {
				open++
			}
			longest = max(longest, h.HeldFor)
		}
		var rs []string
		for k, v := range byReason {
			rs = append(rs, fmt.Sprintf("%s×%d", k, v))
		}
		sort.Strings(rs)
		var lp time.Duration
		for _, h := range hs {
			lp = max(lp, h.HeldFor)
		}
		parts = append(parts, fmt.Sprintf("%s: %d holds (%s), longest %s, %d not ended (still holding, or stopped with their process)", p.Name, len(hs), strings.Join(rs, " "), lp.Round(time.Millisecond), open))
	}
	return longest, strings.Join(parts, "; ")
}

// FirstGrowth watches topic from now on, in the background, and returns a
// function that tells how long after the call the topic first grew (false
// while it has not).
func (e *Env) FirstGrowth(topic string) func() (time.Duration, bool) {
	ctx := e.T.Context()
	start := time.Now()
	base, err := e.TopicCount(ctx, topic)
	var grewAfter time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			n, err2 := e.TopicCount(ctx, topic)
			if err == nil && err2 == nil && n > base {
				grewAfter = time.Since(start)
				return
			}
			if err != nil {
				base, err = n, err2
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return func() (time.Duration, bool) {
		select {
		case <-done:
			return grewAfter, grewAfter > 0
		default:
			return 0, false
		}
	}
}
