package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"

	"github.com/claimx/claimx-connect/claimxsim"
	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/internal/reasons"
	"github.com/claimx/claimx-connect/kafka/broker"
	"github.com/claimx/claimx-connect/kafka/topics"
)

// Topic and group names of the shipped pipelines, as their defaults say.
const (
	devEventsTopic   = "claimx.events.raw"
	devTrackingTopic = "itel.cabinet.task.tracking"
	devSuccessTopic  = "itel.cabinet.task.tracking.success"
	devErrorsTopic   = "itel.cabinet.task.tracking.errors"
	devTriggerGroup  = "itel_cabinet_trigger_group"
	devWorkerGroup   = "itel_cabinet_tracking_worker_group"
	devTableDir      = "itel_cabinet_task_tracking"

	devFormsGroup          = "itel_cabinet_forms_group"
	devFormsSuccessTopic   = "itel.cabinet.forms.success"
	devFormsErrorsTopic    = "itel.cabinet.forms.errors"
	devFormsTableDir       = "itel_cabinet_forms"
	devAttachmentsTableDir = "itel_cabinet_attachments"
	devSubmissionsTableDir = "itel_cabinet_submissions"
	devPhotosDir           = "itel_cabinet_attachment_files"
)

// DevCommand is `claimx-connect dev`: the whole flow on one machine with no
// outside service.
func DevCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "Run the whole iTel Cabinet flow locally: embedded broker, ClaimX and iTel simulator, the trigger, worker, forms, status, alerts and sla streams, local Delta tables",
		Description: `Starts an embedded Kafka-protocol broker, creates the topics, starts the
ClaimX API simulator, publishes a realistic stream of ClaimX events (many
assignments, every event type, some malformed), runs the trigger, worker,
forms, status, alerts and sla streams in streams mode (a child process of this
binary), shows progress, and ends with a summary: the tracking table; for
completed forms the forms table, the photos stored and the submissions the
simulated iTel API accepted; the status changes and the alerts by rule; the SLA
figures (hours from assigned to each status, the share within target, the
breaches of assignments left open). The tables and photos are left in --data (recreated each
run unless --keep-data). Kafka clients such as kcat can connect to --broker-addr while it
runs; the streams' HTTP server (/ready, /metrics) is on --http-addr.

While a stream holds on an unavailable dependency, the progress line says so
("held: ClaimX API unavailable (503) for 12 s", from the streams' /metrics);
with --keep-running it is printed again whenever it changes, so an outage
injected into the simulator (POST /_sim/faults {"outage_for":"20s"}) or events
published by hand show up.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "events", Value: 1000, Usage: "ClaimX events to publish"},
			&cli.Float64Flag{Name: "rate", Value: 500, Usage: "events published per second (0: as fast as possible)"},
			&cli.BoolFlag{Name: "keep-running", Usage: "keep everything running after the summary, until Ctrl-C"},
			&cli.StringFlag{Name: "data", Value: "./data", Usage: "directory for the Delta table and the broker's data"},
			&cli.BoolFlag{Name: "keep-data", Usage: "append to the table of an earlier run instead of recreating it"},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "seed of the simulator's data and of the events"},
			&cli.IntFlag{Name: "assignments", Value: 300, Usage: "assignments the simulator knows"},
			&cli.StringFlag{Name: "pipelines", Value: "./pipelines", Usage: "directory holding trigger.yaml, worker.yaml and resources/"},
			&cli.StringFlag{Name: "schema", Value: "./schemas/itel_cabinet_task_tracking.yaml", Usage: "the table's schema file"},
			&cli.StringFlag{Name: "broker-addr", Value: "127.0.0.1:9092", Usage: "address of the embedded broker"},
			&cli.StringFlag{Name: "api-addr", Value: "127.0.0.1:8089", Usage: "address of the ClaimX simulator"},
			&cli.StringFlag{Name: "http-addr", Value: "127.0.0.1:4195", Usage: "address of the streams' HTTP server"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Minute, Usage: "give up when the flow has not finished by then"},
		},
		Action: runDev,
	}
}

type devRun struct {
	c        *cli.Context
	out      io.Writer
	dataDir  string
	tableDir string
	cl       *kgo.Client
	adm      *kadm.Client
	holds    *holdWatch
	lastLine string // the progress line printed last
}

func runDev(c *cli.Context) error {
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := c.App.Writer
	d := &devRun{c: c, out: out, holds: newHoldWatch()}

	pipelines, err := filepath.Abs(c.String("pipelines"))
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	schema, err := filepath.Abs(c.String("schema"))
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	for _, f := range []string{filepath.Join(pipelines, "trigger.yaml"), filepath.Join(pipelines, "worker.yaml"), filepath.Join(pipelines, "forms.yaml"), filepath.Join(pipelines, "status.yaml"), filepath.Join(pipelines, "alerts.yaml"), filepath.Join(pipelines, "sla.yaml"), filepath.Join(pipelines, "topics.yaml"), schema} {
		if _, err := os.Stat(f); err != nil {
			return cli.Exit(fmt.Sprintf("dev needs %s (run it from the repository root, or set --pipelines and --schema): %v", f, err), 1)
		}
	}
	if d.dataDir, err = filepath.Abs(c.String("data")); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	d.tableDir = filepath.Join(d.dataDir, devTableDir)
	if !c.Bool("keep-data") {
		// dev owns its data directory: each run starts from an empty table and broker.
		for _, p := range []string{d.tableDir, filepath.Join(d.dataDir, "kafka"), filepath.Join(d.dataDir, "logs"),
			d.formsPath(devFormsTableDir), d.formsPath(devAttachmentsTableDir), d.formsPath(devSubmissionsTableDir), d.formsPath(devPhotosDir), d.formsPath(devSLATableDir)} {
			if err := os.RemoveAll(p); err != nil {
				return cli.Exit(fmt.Sprintf("clearing %s: %v", p, err), 1)
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(d.dataDir, "logs"), 0o755); err != nil {
		return cli.Exit(err.Error(), 1)
	}

	// 1. Broker and topics.
	b, err := broker.Start(broker.Config{
		Addr: c.String("broker-addr"), DataDir: filepath.Join(d.dataDir, "kafka"),
		DefaultPartitions: 3, AutoCreateTopics: true,
	})
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer b.Close()
	brokers := strings.Join(b.Addrs(), ",")
	fmt.Fprintf(out, "▶ embedded broker on %s\n", brokers)

	d.cl, err = kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ClientID("claimx-connect-dev"))
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer d.cl.Close()
	d.adm = kadm.NewClient(d.cl)
	if err := d.applyTopics(ctx, filepath.Join(pipelines, "topics.yaml")); err != nil {
		return cli.Exit(err.Error(), 1)
	}

	// 2. The ClaimX simulator, with a token of this run.
	token, itelToken := randomToken(), randomToken()
	sim, err := claimxsim.New(claimxsim.Config{Seed: c.Int64("seed"), Assignments: c.Int("assignments"), Token: token, ITelToken: itelToken})
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	if err := sim.Start(c.String("api-addr")); err != nil {
		return cli.Exit(fmt.Sprintf("starting the ClaimX simulator on %s: %v", c.String("api-addr"), err), 1)
	}
	defer sim.Close()
	fmt.Fprintf(out, "▶ ClaimX simulator on %s (%d assignments; media and the iTel API beside it)\n", sim.URL(), c.Int("assignments"))

	// 3. The streams, in streams mode, as a child process of this binary.
	streams, err := d.startStreams(ctx, pipelines, schema, brokers, sim.URL(), token, itelToken)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer streams.stop()
	fmt.Fprintf(out, "▶ streams trigger, worker, forms, status, alerts and sla running (logs: %s)\n", streams.logPath)

	// 4. Publish the events.
	opts := claimxsim.DefaultEventOptions(c.Int64("seed"), c.Int("events"), sim.Assignments())
	// Start before midnight UTC so the events span two daily partitions.
	opts.Start = time.Date(2026, 1, 10, 23, 50, 0, 0, time.UTC)
	events := claimxsim.GenerateEvents(opts)
	published := make(chan int, 1)
	pubErr := make(chan error, 1)
	go func() { pubErr <- d.publish(ctx, events, c.Float64("rate"), published) }()
	fmt.Fprintf(out, "▶ publishing %d ClaimX events to %s\n", len(events), devEventsTopic)

	// 5. Progress until both groups have caught up.
	deadline := time.Now().Add(c.Duration("timeout"))
	if err := d.waitDone(ctx, streams, len(events), published, pubErr, deadline); err != nil {
		return cli.Exit(err.Error(), 1)
	}

	// 6. Summary.
	summary, err := d.summarise(ctx, events, sim)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	summary.print(out, d.tableDir)

	if c.Bool("keep-running") {
		fmt.Fprintf(out, "\nstill running: broker %s, ClaimX API %s, streams HTTP http://%s (Ctrl-C to stop)\n", brokers, sim.URL(), c.String("http-addr"))
		if err := d.watch(ctx, streams, len(events)); err != nil {
			return cli.Exit(err.Error(), 1)
		}
	}
	if summary.Rows != summary.Tracked {
		return cli.Exit(fmt.Sprintf("the table holds %d rows but %d task events were tracked", summary.Rows, summary.Tracked), 1)
	}
	if want := summary.Malformed + summary.UnknownAssignments; summary.ErrorsByStage["trigger"] != want {
		return cli.Exit(fmt.Sprintf("%d trigger errors on %s, but %d events were malformed or for unknown assignments", summary.ErrorsByStage["trigger"], devErrorsTopic, want), 1)
	}
	if problem := summary.Forms.problem(); problem != "" {
		return cli.Exit(problem, 1)
	}
	if problem := summary.Alerts.problem(); problem != "" {
		return cli.Exit(problem, 1)
	}
	if problem := summary.SLA.problem(); problem != "" {
		return cli.Exit(problem, 1)
	}
	return nil
}

// formsPath is where dev keeps one of the forms stream's tables or the photos.
func (d *devRun) formsPath(name string) string { return filepath.Join(d.dataDir, name) }

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (d *devRun) applyTopics(ctx context.Context, file string) error {
	specs, err := topics.ParseFile(file)
	if err != nil {
		return err
	}
	specs = append(specs, topics.Spec{Name: devEventsTopic, Partitions: 3, ReplicationFactor: 1})
	results, err := topics.Apply(ctx, d.adm, specs, topics.Options{CapReplication: true})
	if err != nil {
		return fmt.Errorf("creating topics: %w", err)
	}
	for _, r := range results {
		fmt.Fprintf(d.out, "  topic %s\n", r.Topic)
	}
	return nil
}

type streamsProc struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan error
}

func (d *devRun) startStreams(ctx context.Context, pipelines, schema, brokers, apiURL, token, itelToken string) (*streamsProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this binary: %w", err)
	}
	obs := filepath.Join(d.dataDir, "logs", "observability.yaml")
	obsYAML := fmt.Sprintf("http:\n  address: %q\nlogger:\n  level: info\n  format: logfmt\nmetrics:\n  prometheus: {}\n", d.c.String("http-addr"))
	if err := os.WriteFile(obs, []byte(obsYAML), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(d.dataDir, "logs", "streams.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "streams", "-o", obs,
		"-r", filepath.Join(pipelines, "resources", "*.yaml"),
		filepath.Join(pipelines, "trigger.yaml"), filepath.Join(pipelines, "worker.yaml"), filepath.Join(pipelines, "forms.yaml"),
		filepath.Join(pipelines, "status.yaml"), filepath.Join(pipelines, "alerts.yaml"), filepath.Join(pipelines, "sla.yaml"))
	schemas := filepath.Dir(schema)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(),
		"KAFKA_BOOTSTRAP_SERVERS="+brokers,
		"CLAIMX_API_BASE_URL="+apiURL,
		"CLAIMX_API_AUTH_TYPE=bearer",
		"CLAIMX_API_TOKEN="+token,
		"CLAIMX_EVENTS_TOPIC="+devEventsTopic,
		"DELTA_TABLE_URI="+d.tableDir,
		"ITEL_SCHEMA_FILE="+schema,
		"WORKER_BATCH_PERIOD=500ms",
		"ITEL_API_BASE_URL="+apiURL,
		"ITEL_API_AUTH_TYPE=bearer",
		"ITEL_API_TOKEN="+itelToken,
		"ITEL_FORM_MAPPING="+filepath.Join(pipelines, "forms", "itel_cabinet_form.yaml"),
		"ITEL_FORMS_TABLE_URI="+d.formsPath(devFormsTableDir),
		"ITEL_FORMS_SCHEMA_FILE="+filepath.Join(schemas, "itel_cabinet_forms.yaml"),
		"ITEL_ATTACHMENTS_TABLE_URI="+d.formsPath(devAttachmentsTableDir),
		"ITEL_ATTACHMENTS_SCHEMA_FILE="+filepath.Join(schemas, "itel_cabinet_attachments.yaml"),
		"ITEL_SUBMISSIONS_TABLE_URI="+d.formsPath(devSubmissionsTableDir),
		"ITEL_SUBMISSIONS_SCHEMA_FILE="+filepath.Join(schemas, "itel_cabinet_submissions.yaml"),
		"ITEL_SUBMISSION_SCHEMA="+filepath.Join(schemas, "itel_submission.v1.json"),
		"ITEL_ATTACHMENTS_URI="+d.formsPath(devPhotosDir),
		"FORMS_BATCH_PERIOD=500ms",
		"ITEL_SLA_TABLE_URI="+d.formsPath(devSLATableDir),
		"ITEL_SLA_SCHEMA_FILE="+filepath.Join(schemas, "itel_cabinet_task_sla.yaml"),
		// The simulated events are months old: every assignment still open
		// is past its SLA, and a short check interval shows the breaches
		// before the summary.
		"SLA_CHECK_INTERVAL="+devSLACheckInterval.String(),
	)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting the streams: %w", err)
	}
	p := &streamsProc{cmd: cmd, logPath: logPath, exited: make(chan error, 1)}
	go func() {
		p.exited <- cmd.Wait()
		logFile.Close()
	}()
	return p, nil
}

// stop asks the streams to finish (SIGTERM) and waits, killing them if slow.
func (p *streamsProc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (d *devRun) publish(ctx context.Context, events []claimxsim.Event, rate float64, published chan<- int) error {
	var tick <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		tick = t.C
	}
	n := 0
	for _, ev := range events {
		if tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		rec := &kgo.Record{Topic: devEventsTopic, Key: []byte(ev.Key), Value: ev.Body}
		if err := d.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			return fmt.Errorf("publishing event %d: %w", n, err)
		}
		n++
		select {
		case published <- n:
		default:
		}
	}
	published <- n
	return nil
}

// topicCount sums a topic's end offsets: the records written to it.
func (d *devRun) topicCount(ctx context.Context, topic string) (int64, error) {
	ends, err := d.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, nil
}

// groupLag is the records of the group's topics not yet committed.
func (d *devRun) groupLag(ctx context.Context, group string) (int64, error) {
	lags, err := d.adm.Lag(ctx, group)
	if err != nil {
		return 0, err
	}
	l, ok := lags[group]
	if !ok || l.FetchErr != nil || l.DescribeErr != nil {
		return -1, nil
	}
	if len(l.Lag) == 0 {
		return -1, nil // no commits yet
	}
	return l.Lag.Total(), nil
}

func (d *devRun) waitDone(ctx context.Context, streams *streamsProc, total int, published <-chan int, pubErr <-chan error, deadline time.Time) error {
	pub, stableSince := 0, time.Time{}
	var stable devProgress
	pubDone := false
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return errors.New("interrupted")
		case err := <-streams.exited:
			return fmt.Errorf("the streams process exited early: %v (see %s)", err, streams.logPath)
		case err := <-pubErr:
			if err != nil {
				return err
			}
			pubDone = true
		case n := <-published:
			pub = n
			continue
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the flow did not finish in time (see %s)", streams.logPath)
		}
		p := d.progress(ctx)
		d.printProgress(pub, total, p, true)
		done := pubDone && p.tLag == 0 && (p.wLag == 0 || (p.tracked == 0 && p.wLag == -1)) &&
			(p.fLag == 0 || (p.ok == 0 && p.fLag == -1)) &&
			(p.sLag == 0 || (p.tracked == 0 && p.sLag == -1)) &&
			(p.aLag == 0 || (p.changes == 0 && p.aLag == -1)) &&
			(p.lLag == 0 || (p.changes == 0 && p.lLag == -1))
		// Done when nothing moved for longer than two SLA checks: the
		// status stream's timer writes breaches with no event before them.
		if !done || p.changes != stable.changes || p.alerts != stable.alerts {
			stableSince, stable = time.Time{}, p
			continue
		}
		if stableSince.IsZero() {
			stableSince = time.Now()
		} else if time.Since(stableSince) >= 2*devSLACheckInterval+time.Second {
			return nil
		}
	}
}

// watch is --keep-running after the summary: it prints the progress line
// again whenever it changes (events published by hand, a hold), until
// Ctrl-C or the streams' exit.
func (d *devRun) watch(ctx context.Context, streams *streamsProc, total int) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-streams.exited:
			return fmt.Errorf("the streams process exited: %v (see %s)", err, streams.logPath)
		case <-tick.C:
		}
		d.printProgress(total, total, d.progress(ctx), false)
	}
}

// devProgress is one look at the flow: topic counts, group lags, holds.
type devProgress struct {
	tracked, ok, bad int64
	forms, formsBad  int64
	changes, alerts  int64
	tLag, wLag, fLag int64
	sLag, aLag, lLag int64
	held             string // holdWatch.observe: "" unless a dependency holds
}

func (d *devRun) progress(ctx context.Context) devProgress {
	var p devProgress
	p.tracked, _ = d.topicCount(ctx, devTrackingTopic)
	p.ok, _ = d.topicCount(ctx, devSuccessTopic)
	p.bad, _ = d.topicCount(ctx, devErrorsTopic)
	p.tLag, _ = d.groupLag(ctx, devTriggerGroup)
	p.wLag, _ = d.groupLag(ctx, devWorkerGroup)
	p.fLag, _ = d.groupLag(ctx, devFormsGroup)
	p.forms, _ = d.topicCount(ctx, devFormsSuccessTopic)
	p.formsBad, _ = d.topicCount(ctx, devFormsErrorsTopic)
	p.sLag, _ = d.groupLag(ctx, devStatusGroup)
	p.aLag, _ = d.groupLag(ctx, devAlertsGroup)
	p.lLag, _ = d.groupLag(ctx, devSLAGroup)
	p.changes, _ = d.topicCount(ctx, devStatusTopic)
	p.alerts, _ = d.topicCount(ctx, devAlertsTopic)
	if samples, err := scrapeMetrics(ctx, "http://"+d.c.String("http-addr")+"/metrics"); err == nil {
		p.held = d.holds.observe(time.Now(), samples)
	}
	return p
}

// printProgress prints the progress line; with always false, only when it
// differs from the one printed last.
func (d *devRun) printProgress(pub, total int, p devProgress, always bool) {
	line := fmt.Sprintf("  published %d/%d · tracked %d · written %d · errors %d · forms %d (errors %d) · changes %d · alerts %d · lag trigger %s worker %s forms %s status %s alerts %s sla %s",
		pub, total, p.tracked, p.ok, p.bad, p.forms, p.formsBad, p.changes, p.alerts, lagText(p.tLag), lagText(p.wLag), lagText(p.fLag), lagText(p.sLag), lagText(p.aLag), lagText(p.lLag))
	if p.held != "" {
		line += " · " + p.held
	}
	if !always && line == d.lastLine {
		return
	}
	d.lastLine = line
	fmt.Fprintln(d.out, line)
}

func lagText(l int64) string {
	if l < 0 {
		return "-"
	}
	return fmt.Sprint(l)
}

// devSummary is what the run did.
type devSummary struct {
	Events, Malformed, UnknownAssignments int
	Tracked, Successes, Rows              int64
	Version                               int64
	ErrorsByReason                        map[string]int
	ErrorsByStage                         map[string]int
	Partitions                            int
	Forms                                 formsSummary
	Alerts                                alertsSummary
	SLA                                   slaSummary
}

func (d *devRun) summarise(ctx context.Context, events []claimxsim.Event, sim *claimxsim.Server) (*devSummary, error) {
	s := &devSummary{Events: len(events), ErrorsByReason: map[string]int{}, ErrorsByStage: map[string]int{}}
	for _, e := range events {
		if e.Malformed != "" {
			s.Malformed++
		} else if e.UnknownAssignment {
			s.UnknownAssignments++
		}
	}
	var err error
	if s.Tracked, err = d.topicCount(ctx, devTrackingTopic); err != nil {
		return nil, err
	}
	if s.Successes, err = d.topicCount(ctx, devSuccessTopic); err != nil {
		return nil, err
	}
	errs, err := d.readAll(ctx, devErrorsTopic)
	if err != nil {
		return nil, err
	}
	s.countErrors(errs)
	st, err := storage.NewLocal(d.tableDir)
	if err != nil {
		return nil, err
	}
	tbl, err := delta.Open(ctx, st, delta.OpenOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("opening the table: %w", err)
	}
	desc := tbl.Describe()
	s.Rows, s.Version, s.Partitions = desc.NumRows, desc.Version, desc.NumPartitions
	if s.Forms, err = d.summariseForms(ctx, sim); err != nil {
		return nil, err
	}
	if s.Alerts, err = d.summariseAlerts(ctx); err != nil {
		return nil, err
	}
	if s.SLA, err = d.summariseSLA(ctx, s.Alerts); err != nil {
		return nil, err
	}
	return s, nil
}

// countErrors counts the errors topic's messages by stage and by kind of
// reason ("trigger: event is not JSON: unexpected end of input at offset N"),
// so that the summary prints one line per kind, not one per offset or id.
func (s *devSummary) countErrors(errs [][]byte) {
	for _, v := range errs {
		var m struct {
			Error string `json:"error"`
			Stage string `json:"stage"`
		}
		if json.Unmarshal(v, &m) != nil {
			m.Error, m.Stage = "(unreadable error message)", "?"
		}
		s.ErrorsByStage[m.Stage]++
		s.ErrorsByReason[m.Stage+": "+reasons.Class(m.Error)]++
	}
}

// readAll reads every record of a topic.
func (d *devRun) readAll(ctx context.Context, topic string) ([][]byte, error) {
	total, err := d.topicCount(ctx, topic)
	if err != nil || total == 0 {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(d.cl.OptValue(kgo.SeedBrokers).([]string)...),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out [][]byte
	for int64(len(out)) < total {
		fs := cl.PollFetches(rctx)
		if err := rctx.Err(); err != nil {
			return out, fmt.Errorf("reading %s: got %d of %d records: %w", topic, len(out), total, err)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r.Value) })
	}
	return out, nil
}

func (s *devSummary) print(w io.Writer, table string) {
	fmt.Fprintln(w, "\n── summary ─────────────────────────────────────────────")
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "events published\t%d\t(%d malformed, %d for unknown assignments)\n", s.Events, s.Malformed, s.UnknownAssignments)
	fmt.Fprintf(tw, "task events tracked\t%d\t(messages on %s)\n", s.Tracked, devTrackingTopic)
	fmt.Fprintf(tw, "rows written\t%d\t(%d success messages)\n", s.Rows, s.Successes)
	fmt.Fprintf(tw, "table\t%s\tversion %d, %d partitions\n", table, s.Version, s.Partitions)
	total := 0
	for _, n := range s.ErrorsByStage {
		total += n
	}
	fmt.Fprintf(tw, "errors\t%d\t(on %s)\n", total, devErrorsTopic)
	tw.Flush()
	kinds := make([]string, 0, len(s.ErrorsByReason))
	for r := range s.ErrorsByReason {
		kinds = append(kinds, r)
	}
	sort.Slice(kinds, func(i, j int) bool {
		if s.ErrorsByReason[kinds[i]] != s.ErrorsByReason[kinds[j]] {
			return s.ErrorsByReason[kinds[i]] > s.ErrorsByReason[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	for _, r := range kinds {
		fmt.Fprintf(w, "  %5d  %s\n", s.ErrorsByReason[r], r)
	}
	if s.Rows == s.Tracked {
		fmt.Fprintf(w, "✔ every tracked task event is in the table exactly once (%d rows)\n", s.Rows)
	} else {
		fmt.Fprintf(w, "✘ the table holds %d rows for %d tracked task events\n", s.Rows, s.Tracked)
	}
	if want := s.Malformed + s.UnknownAssignments; s.ErrorsByStage["trigger"] == want {
		fmt.Fprintf(w, "✔ every malformed event and unknown assignment is on the errors topic (%d)\n", want)
	} else {
		fmt.Fprintf(w, "✘ %d trigger errors for %d malformed events and unknown assignments\n", s.ErrorsByStage["trigger"], want)
	}
	s.Forms.print(w)
	s.Alerts.print(w)
	s.SLA.print(w)
}

// ── holds, as the streams' /metrics show them ─────────────────────────────

// holdDependencies are the dependencies a stream holds on, by the metric
// base their gate exports (<base>_available, <base>_holds_total{reason}),
// in the order the progress line names them. A ClaimX lookup's base carries
// its metrics_prefix (itel_worker_claimx_api in the shipped pipelines).
var holdDependencies = []struct{ suffix, name string }{
	{"claimx_api", "ClaimX API"},
	{"delta_storage", "Delta storage"},
	{"itel_api", "iTel API"},
	{"itel_media", "ClaimX media"},
}

// holdDependency names the dependency of a hold metric (<base>_<what>), or
// "" when name is not one.
func holdDependency(name, what string) string {
	for _, dep := range holdDependencies {
		if strings.HasSuffix(name, dep.suffix+"_"+what) {
			return dep.name
		}
	}
	return ""
}

// holdWatch turns successive scrapes of /metrics into "held: ClaimX API
// unavailable (503) for 12 s": a dependency holds while any of its
// *_available gauges is 0; the reason is the holds_total label whose count
// last increased; the duration runs from the first scrape that saw a gauge
// at 0.
type holdWatch struct {
	counts map[string]float64   // dependency + "\x00" + series → holds_total seen last
	reason map[string]string    // dependency → reason whose count last increased
	since  map[string]time.Time // dependency → first scrape seeing it held
}

func newHoldWatch() *holdWatch {
	return &holdWatch{counts: map[string]float64{}, reason: map[string]string{}, since: map[string]time.Time{}}
}

// observe takes one scrape made at now and returns the progress line's hold
// text, "" when nothing holds.
func (w *holdWatch) observe(now time.Time, samples []metricSample) string {
	held := map[string]bool{}
	grew := map[string]float64{} // dependency → largest increase of a reason in this scrape
	for _, s := range samples {
		if dep := holdDependency(s.name, "available"); dep != "" {
			if s.value == 0 {
				held[dep] = true
			}
			continue
		}
		dep := holdDependency(s.name, "holds_total")
		if dep == "" {
			continue
		}
		// A counter first seen counts from 0: the streams start with dev.
		key := dep + "\x00" + s.series()
		inc := s.value - w.counts[key]
		w.counts[key] = s.value
		reason := s.labels["reason"]
		if inc <= 0 || reason == "" {
			continue
		}
		if g, ok := grew[dep]; !ok || inc > g || (inc == g && reason < w.reason[dep]) {
			grew[dep] = inc
			w.reason[dep] = reason
		}
	}
	var parts []string
	for _, dep := range holdDependencies {
		if !held[dep.name] {
			delete(w.since, dep.name)
			continue
		}
		since, ok := w.since[dep.name]
		if !ok {
			since = now
			w.since[dep.name] = now
		}
		text := dep.name + " unavailable"
		if r := w.reason[dep.name]; r != "" {
			text += " (" + r + ")"
		}
		parts = append(parts, fmt.Sprintf("%s for %d s", text, int64(now.Sub(since)/time.Second)))
	}
	if len(parts) == 0 {
		return ""
	}
	return "held: " + strings.Join(parts, ", ")
}

// metricSample is one line of the Prometheus text format.
type metricSample struct {
	name   string
	labels map[string]string
	value  float64
}

// series is the sample's name and labels, sorted: its identity.
func (s metricSample) series() string {
	keys := make([]string, 0, len(s.labels))
	for k := range s.labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(s.name)
	for _, k := range keys {
		fmt.Fprintf(&b, ",%s=%q", k, s.labels[k])
	}
	return b.String()
}

// scrapeMetrics reads a Prometheus /metrics page.
func scrapeMetrics(ctx context.Context, url string) ([]metricSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, err
	}
	return parseMetrics(string(body)), nil
}

// parseMetrics reads the samples of the Prometheus text exposition format,
// skipping comments and lines it cannot read.
func parseMetrics(text string) []metricSample {
	var out []metricSample
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if s, ok := parseSample(line); ok {
			out = append(out, s)
		}
	}
	return out
}

func parseSample(line string) (metricSample, bool) {
	s := metricSample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return s, false
	}
	s.name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, " \t,")
			if line == "" {
				return s, false
			}
			if line[0] == '}' {
				line = line[1:]
				break
			}
			eq := strings.IndexByte(line, '=')
			if eq <= 0 || eq+1 >= len(line) || line[eq+1] != '"' {
				return s, false
			}
			key := strings.TrimSpace(line[:eq])
			val, rest, ok := unquoteLabel(line[eq+1:])
			if !ok {
				return s, false
			}
			s.labels[key], line = val, rest
		}
	}
	fields := strings.Fields(line)
	if len(fields) == 0 { // a timestamp may follow the value
		return s, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil || math.IsNaN(v) {
		return s, false
	}
	s.value = v
	return s, true
}

// unquoteLabel reads a label value in double quotes (escapes \\, \" and \n)
// at the start of s and returns it and what follows.
func unquoteLabel(s string) (val, rest string, ok bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			if i+1 >= len(s) {
				return "", "", false
			}
			i++
			if s[i] == 'n' {
				b.WriteByte('\n')
			} else {
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}
