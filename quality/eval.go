package quality

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
)

// Status is the outcome of an expectation.
type Status string

// Statuses.
const (
	StatusPass Status = "pass"
	StatusFail Status = "fail"
	// StatusSkipped: not judged now (freshness outside working hours).
	StatusSkipped Status = "skipped"
	// StatusError: the expectation could not be evaluated (a table that
	// cannot be read, a column it lacks, Kafka unreachable).
	StatusError Status = "error"
)

// Result is the outcome of one expectation in one run. Its JSON field names
// are the columns of the _quality_results table (schemas/quality_results.yaml).
type Result struct {
	// ResultID is RunID/Expectation: a key for de-duplicating writers.
	ResultID    string `json:"result_id"`
	RunID       string `json:"run_id"`
	Expectation string `json:"expectation"`
	Table       string `json:"table_name"`
	Kind        string `json:"kind"`
	Severity    string `json:"severity"`
	Status      Status `json:"status"`
	// Observed is the measured value (see docs/QUALITY.md per kind); null
	// on error.
	Observed *float64 `json:"observed"`
	// Threshold is what Observed is judged against.
	Threshold *float64 `json:"threshold"`
	// Message says specifically what passed or failed.
	Message string `json:"message"`
	// Details is a JSON object with the evidence (per day counts, example
	// values …).
	Details         string    `json:"details"`
	FilesConsidered int64     `json:"files_considered"`
	FilesPruned     int64     `json:"files_pruned"`
	FilesScanned    int64     `json:"files_scanned"`
	RowsScanned     int64     `json:"rows_scanned"`
	TableVersion    *int64    `json:"table_version"`
	EvaluatedAt     time.Time `json:"evaluated_at"`
	DurationMs      int64     `json:"duration_ms"`
}

// Critical reports whether the result fails a critical expectation.
func (r *Result) Critical() bool {
	return r.Status == StatusFail && r.Severity == SeverityCritical
}

// Run is one evaluation of a set of expectations.
type Run struct {
	ID        string
	StartedAt time.Time
	Results   []Result
}

// Options tune an Evaluator.
type Options struct {
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
	// Storage overrides the expectations file's storage section (each
	// field that is set).
	Storage storage.Options
	// KafkaOpts are added to the client of a completeness Kafka reference
	// (TLS, SASL); the seed brokers come from the expectation.
	KafkaOpts []kgo.Opt
}

// Evaluator runs the expectations of a Config. It keeps its table handles
// between runs and brings them up to date incrementally, so a scheduled run
// reads only the commits made since the last. Runs are serialised.
type Evaluator struct {
	cfg  *Config
	opts Options

	mu     sync.Mutex
	tables map[string]*delta.Table
}

// NewEvaluator returns an evaluator of cfg.
func NewEvaluator(cfg *Config, opts Options) *Evaluator {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Evaluator{cfg: cfg, opts: opts, tables: map[string]*delta.Table{}}
}

// Config returns the evaluator's configuration.
func (e *Evaluator) Config() *Config { return e.cfg }

// NewRunID returns a run id that sorts by time: 20260110T101500Z-3f9a1c2e.
func NewRunID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Run evaluates the expectations (all when exps is nil) under runID (a new
// one when empty). A table that cannot be read makes its expectations
// errors; the others still run.
func (e *Evaluator) Run(ctx context.Context, runID string, exps []*Expectation) Run {
	e.mu.Lock()
	defer e.mu.Unlock()
	if exps == nil {
		exps = e.cfg.Expectations
	}
	started := e.opts.Now()
	if runID == "" {
		runID = NewRunID(started)
	}
	run := Run{ID: runID, StartedAt: started}
	tables := map[string]*tableRun{}
	tableErrs := map[string]error{}
	open := func(name string) (*tableRun, error) {
		if tr, ok := tables[name]; ok {
			return tr, nil
		}
		if err, ok := tableErrs[name]; ok {
			return nil, err
		}
		tr, err := e.openTable(ctx, name)
		if err != nil {
			tableErrs[name] = err
			return nil, err
		}
		tables[name] = tr
		return tr, nil
	}
	for _, x := range exps {
		t0 := time.Now()
		r := e.evaluate(ctx, x, open)
		r.RunID = runID
		r.ResultID = runID + "/" + x.Name
		r.Expectation, r.Table, r.Kind, r.Severity = x.Name, x.Table, x.Kind, x.Severity
		r.EvaluatedAt = e.opts.Now().UTC()
		r.DurationMs = time.Since(t0).Milliseconds()
		if tr := tables[x.Table]; tr != nil {
			v := tr.snap.Version()
			r.TableVersion = &v
		}
		run.Results = append(run.Results, r)
	}
	return run
}

// openTable reads the table at its newest version: a kept handle is
// refreshed, a failed one reopened next time.
func (e *Evaluator) openTable(ctx context.Context, name string) (*tableRun, error) {
	tc := e.cfg.Tables[name]
	if tc == nil {
		return nil, fmt.Errorf("table %q is not in the expectations file", name)
	}
	t := e.tables[name]
	if t != nil {
		if err := t.Refresh(ctx); err != nil {
			delete(e.tables, name)
			return nil, fmt.Errorf("refreshing table %s (%s): %w", name, tc.URI, err)
		}
	} else {
		st, err := storage.Open(ctx, tc.URI, e.StorageOptions())
		if err != nil {
			return nil, fmt.Errorf("opening table %s (%s): %w", name, tc.URI, err)
		}
		if t, err = delta.Open(ctx, st, delta.OpenOptions{ReadOnly: true}); err != nil {
			return nil, fmt.Errorf("opening table %s (%s): %w", name, tc.URI, err)
		}
		e.tables[name] = t
	}
	return newTableRun(tc, t.Store(), t.Snapshot()), nil
}

// StorageOptions are the options the evaluator opens storage with: the
// expectations file's, overridden by Options.Storage.
func (e *Evaluator) StorageOptions() storage.Options {
	o := e.cfg.Storage
	if e.opts.Storage.Endpoint != "" {
		o.Endpoint = e.opts.Storage.Endpoint
	}
	if e.opts.Storage.Region != "" {
		o.Region = e.opts.Storage.Region
	}
	if len(e.opts.Storage.Extra) > 0 {
		extra := map[string]string{}
		for k, v := range o.Extra {
			extra[k] = v
		}
		for k, v := range e.opts.Storage.Extra {
			extra[k] = v
		}
		o.Extra = extra
	}
	return o
}

// outcome is what a kind's evaluation returns.
type outcome struct {
	status    Status
	observed  *float64
	threshold *float64
	message   string
	details   map[string]any
}

func num(v float64) *float64 { return &v }

type opener func(name string) (*tableRun, error)

func (e *Evaluator) evaluate(ctx context.Context, x *Expectation, open opener) (r Result) {
	var c Counters
	defer func() {
		if p := recover(); p != nil {
			// A bug in one kind must not stop the run's other expectations.
			r = Result{Status: StatusError, Message: fmt.Sprintf("evaluating %s panicked: %v", x.Name, p), Details: "{}"}
		}
		r.FilesConsidered, r.FilesPruned, r.FilesScanned, r.RowsScanned = c.Considered, c.Pruned, c.Scanned, c.Rows
	}()
	tr, err := open(x.Table)
	var out outcome
	if err == nil {
		now := e.opts.Now()
		switch x.Kind {
		case KindFreshness:
			out, err = evalFreshness(ctx, x, tr, now, &c)
		case KindCompleteness:
			out, err = e.evalCompleteness(ctx, x, tr, open, now, &c)
		case KindNullRate:
			out, err = evalNullRate(ctx, x, tr, now, &c)
		case KindUnique:
			out, err = evalUnique(ctx, x, tr, now, &c)
		case KindRange, KindAllowedValues:
			out, err = evalValues(ctx, x, tr, now, &c)
		case KindReferential:
			out, err = evalReferential(ctx, x, tr, open, now, &c)
		default:
			err = fmt.Errorf("unknown kind %q", x.Kind)
		}
	}
	if err != nil {
		msg := err.Error()
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			msg = "evaluation interrupted: " + msg
		}
		return Result{Status: StatusError, Message: msg, Details: "{}"}
	}
	details := "{}"
	if out.details != nil {
		b, jerr := json.Marshal(out.details)
		if jerr != nil {
			return Result{Status: StatusError, Message: fmt.Sprintf("encoding details: %v", jerr), Details: "{}"}
		}
		details = string(b)
	}
	return Result{Status: out.status, Observed: out.observed, Threshold: out.threshold, Message: out.message, Details: details}
}

func statusOf(ok bool) Status {
	if ok {
		return StatusPass
	}
	return StatusFail
}
