package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/robfig/cron/v3"
	"github.com/urfave/cli/v2"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/quality"
)

// Exit codes of `delta check`.
const (
	checkExitFailed = 1 // a critical expectation failed
	checkExitConfig = 2 // the expectations file, a flag or --only is wrong
	checkExitError  = 3 // an expectation could not be evaluated, or the results not appended
)

func deltaCheckCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "Evaluate data-quality expectations over Delta tables",
		ArgsUsage: "--expectations FILE [--results-table URI] [--json] [--only NAME]...",
		Description: `Evaluates the expectations of FILE (docs/QUALITY.md; pipelines/quality/expectations.yaml is the
example for this project's tables) and prints one line per expectation. The Delta log answers
what it can (partition values, file statistics); only the columns needed of the other files
are read, and each result says how many files were considered, pruned and read.

With --results-table the results are appended to that Delta table (created if missing, columns
schemas/quality_results.yaml) in one commit per run, with the txn appId quality-run/<run id>:
appending a run again (a retry with the same --run-id) adds nothing.

With --schedule CRON the check runs at every tick (and at start unless --run-at-start=false)
until interrupted; --metrics-addr serves Prometheus metrics at /metrics meanwhile.

Exit codes: 0 every critical expectation passed (warnings may have failed, freshness outside
working hours is skipped); 1 a critical expectation failed; 2 the expectations file, a flag or
--only is wrong; 3 an expectation could not be evaluated (a table or Kafka unreachable, a column
missing) or the results could not be appended, and no critical expectation failed. With
--schedule: 0 when interrupted, 2 on a configuration error at start.`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "expectations", Usage: "expectations file (YAML)"},
			&cli.StringFlag{Name: "results-table", Usage: "append the results to this Delta table (created if missing)"},
			&cli.BoolFlag{Name: "json", Usage: "print each run as one JSON object {run_id, started_at, results}"},
			&cli.StringSliceFlag{Name: "only", Usage: "evaluate only this expectation (repeatable, or comma-separated)"},
			&cli.StringFlag{Name: "run-id", Usage: "the run's id (default: time and random); give the same id to retry a run's append"},
			&cli.StringFlag{Name: "schedule", Usage: `run at every tick of this cron expression ("*/15 * * * *", "@every 5m") until interrupted`},
			&cli.BoolFlag{Name: "run-at-start", Value: true, Usage: "with --schedule, also run once at start"},
			&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics at http://ADDR/metrics (with --schedule)"},
			&cli.BoolFlag{Name: "kafka-tls", Usage: "connect to Kafka (completeness references) with TLS; SASL comes from KAFKA_SASL_*"},
		}, storageFlags()...),
		Action: runDeltaCheck,
	}
}

func runDeltaCheck(c *cli.Context) error {
	if args, err := interspersedArgs(c); err != nil {
		return err
	} else if len(args) > 0 {
		return cli.Exit(fmt.Sprintf("unexpected arguments %q (the file is --expectations FILE)", args), checkExitConfig)
	}
	path := c.String("expectations")
	if path == "" {
		return cli.Exit("--expectations FILE is required", checkExitConfig)
	}
	cfg, err := quality.LoadConfig(path)
	if err != nil {
		return cli.Exit(err.Error(), checkExitConfig)
	}
	var only []string
	for _, o := range c.StringSlice("only") {
		for _, s := range strings.Split(o, ",") {
			if s = strings.TrimSpace(s); s != "" {
				only = append(only, s)
			}
		}
	}
	exps, err := cfg.Select(only)
	if err != nil {
		return cli.Exit(fmt.Sprintf("--only: %v", err), checkExitConfig)
	}
	var sched cron.Schedule
	if spec := c.String("schedule"); spec != "" {
		if sched, err = cron.ParseStandard(spec); err != nil {
			return cli.Exit(fmt.Sprintf("--schedule %q: %v", spec, err), checkExitConfig)
		}
		if c.String("run-id") != "" {
			return cli.Exit("--run-id names one run; it cannot be combined with --schedule", checkExitConfig)
		}
	} else if c.String("metrics-addr") != "" {
		return cli.Exit("--metrics-addr needs --schedule (a single run exits before a scrape)", checkExitConfig)
	}
	kopts, err := kafkaAuthOpts(c.Bool("kafka-tls"))
	if err != nil {
		return cli.Exit(err.Error(), checkExitConfig)
	}
	ev := quality.NewEvaluator(cfg, quality.Options{
		Storage:   storageOptionsFrom(c),
		KafkaOpts: kopts,
	})
	ch := &checker{c: c, ev: ev, exps: exps, out: c.App.Writer}
	if uri := c.String("results-table"); uri != "" {
		st, err := openStore(c, uri)
		if err != nil {
			return cli.Exit(fmt.Sprintf("results table: %v", err), checkExitConfig)
		}
		ch.resultsURI = uri
		ch.openResults = func(ctx context.Context) (*delta.Table, error) { return quality.OpenResultsTable(ctx, st) }
	}
	if sched == nil {
		return ch.once(c.Context, c.String("run-id"))
	}
	return ch.scheduled(c.Context, sched, c.Bool("run-at-start"), c.String("metrics-addr"))
}

func storageOptionsFrom(c *cli.Context) storage.Options {
	return storage.Options{Endpoint: c.String("endpoint"), Region: c.String("region")}
}

// checker runs the expectations and reports each run.
type checker struct {
	c           *cli.Context
	ev          *quality.Evaluator
	exps        []*quality.Expectation
	out         io.Writer
	resultsURI  string
	openResults func(context.Context) (*delta.Table, error)
	results     *delta.Table
	metrics     *checkMetrics
}

// run evaluates once, prints, appends and records metrics; it returns the
// exit code the run deserves.
func (ch *checker) run(ctx context.Context, runID string) int {
	run := ch.ev.Run(ctx, runID, ch.exps)
	if ctx.Err() != nil {
		// Interrupted: the results are the interruption's, not the data's.
		return checkExitError
	}
	code := 0
	for _, r := range run.Results {
		switch {
		case r.Critical():
			code = checkExitFailed
		case r.Status == quality.StatusError && code == 0:
			code = checkExitError
		}
	}
	if ch.c.Bool("json") {
		b, err := json.Marshal(map[string]any{"run_id": run.ID, "started_at": run.StartedAt.UTC(), "results": run.Results})
		if err != nil {
			fmt.Fprintf(ch.c.App.ErrWriter, "encoding run %s: %v\n", run.ID, err)
			return checkExitError
		}
		fmt.Fprintln(ch.out, string(b))
	} else {
		printRun(ch.out, run)
	}
	if ch.openResults != nil {
		if err := ch.appendResults(ctx, run); err != nil {
			fmt.Fprintf(ch.c.App.ErrWriter, "results: %v\n", err)
			if code == 0 {
				code = checkExitError
			}
		}
	}
	if ch.metrics != nil {
		ch.metrics.observe(run)
	}
	return code
}

func (ch *checker) appendResults(ctx context.Context, run quality.Run) error {
	if ch.results == nil {
		t, err := ch.openResults(ctx)
		if err != nil {
			return err
		}
		ch.results = t
	}
	written, err := quality.AppendResults(ctx, ch.results, run)
	if err != nil {
		// A fresh handle next time: this one may be behind a failed commit.
		ch.results = nil
		return err
	}
	w := ch.c.App.ErrWriter
	if ch.c.Bool("json") {
		w = io.Discard
	}
	if written {
		fmt.Fprintf(w, "results: %d row(s) of run %s appended to %s (version %d)\n", len(run.Results), run.ID, ch.resultsURI, ch.results.Version())
	} else {
		fmt.Fprintf(w, "results: run %s is already in %s; nothing appended\n", run.ID, ch.resultsURI)
	}
	return nil
}

func (ch *checker) once(ctx context.Context, runID string) error {
	if code := ch.run(ctx, runID); code != 0 {
		return cli.Exit("", code)
	}
	return nil
}

// scheduled runs at every tick until the context ends or a signal comes.
func (ch *checker) scheduled(ctx context.Context, sched cron.Schedule, atStart bool, metricsAddr string) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if metricsAddr != "" {
		reg := prometheus.NewRegistry()
		ch.metrics = newCheckMetrics(reg)
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			return cli.Exit(fmt.Sprintf("--metrics-addr: %v", err), checkExitConfig)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		fmt.Fprintf(ch.c.App.ErrWriter, "metrics: http://%s/metrics\n", ln.Addr())
	}
	if atStart {
		ch.run(ctx, "")
	}
	for {
		next := sched.Next(time.Now())
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		ch.run(ctx, "")
	}
}

func printRun(w io.Writer, run quality.Run) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tSEVERITY\tEXPECTATION\tTABLE\tKIND\tOBSERVED\tTHRESHOLD\tFILES READ/PRUNED/ALL\tMESSAGE")
	counts := map[quality.Status]int{}
	critical := 0
	for _, r := range run.Results {
		counts[r.Status]++
		if r.Critical() {
			critical++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d/%d\t%s\n", r.Status, r.Severity, r.Expectation, r.Table, r.Kind,
			fmtNum(r.Observed), fmtNum(r.Threshold), r.FilesScanned, r.FilesPruned, r.FilesConsidered, r.Message)
	}
	tw.Flush()
	fmt.Fprintf(w, "run %s: %d pass, %d fail (%d critical), %d skipped, %d error\n", run.ID,
		counts[quality.StatusPass], counts[quality.StatusFail], critical, counts[quality.StatusSkipped], counts[quality.StatusError])
}

func fmtNum(p *float64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'g', 6, 64)
}

// checkMetrics are the Prometheus metrics of scheduled checks (names in
// quality/metrics.go, shared with the quality_check input).
type checkMetrics struct {
	status, observed, lastRun *prometheus.GaugeVec
	checks, files             *prometheus.CounterVec
}

func newCheckMetrics(reg prometheus.Registerer) *checkMetrics {
	m := &checkMetrics{
		status: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: quality.MetricStatus,
			Help: "Last result of the expectation: 1 pass, 0 fail, -1 skipped, -2 error."}, []string{"expectation", "table", "kind"}),
		observed: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: quality.MetricObserved,
			Help: "Last observed value of the expectation (docs/QUALITY.md per kind)."}, []string{"expectation", "table", "kind"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: quality.MetricChecks,
			Help: "Results of the expectation by status."}, []string{"expectation", "status"}),
		files: prometheus.NewCounterVec(prometheus.CounterOpts{Name: quality.MetricFilesScanned,
			Help: "Data files read to evaluate the expectation."}, []string{"expectation", "table"}),
		lastRun: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: quality.MetricLastRun,
			Help: "Unix time the last run finished."}, nil),
	}
	reg.MustRegister(m.status, m.observed, m.checks, m.files, m.lastRun)
	return m
}

func (m *checkMetrics) observe(run quality.Run) {
	for _, r := range run.Results {
		m.status.WithLabelValues(r.Expectation, r.Table, r.Kind).Set(quality.StatusValue(r.Status))
		if r.Observed != nil {
			m.observed.WithLabelValues(r.Expectation, r.Table, r.Kind).Set(*r.Observed)
		}
		m.checks.WithLabelValues(r.Expectation, string(r.Status)).Inc()
		m.files.WithLabelValues(r.Expectation, r.Table).Add(float64(r.FilesScanned))
	}
	m.lastRun.WithLabelValues().Set(float64(time.Now().Unix()))
}
