package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/claimx/claimx-connect/claimxsim"
	"github.com/claimx/claimx-connect/kafka/broker"
	"github.com/claimx/claimx-connect/kafka/topics"
)

// Names are the topics and consumer groups of one setup; the pipelines read
// them from the environment (ITEL_TRACKING_TOPIC, ..., WORKER_CONSUMER_GROUP).
type Names struct {
	Events, Tracking, Success, Errors string
	TriggerGroup, WorkerGroup         string
	// The forms stream's result topics and group (ITEL_FORMS_*_TOPIC,
	// FORMS_CONSUMER_GROUP).
	FormsSuccess, FormsErrors, FormsGroup string
	// The status, alerts and SLA streams' topics and groups
	// (ITEL_STATUS_TOPIC, ITEL_ALERTS_TOPIC, ITEL_ALERTS_ERRORS_TOPIC,
	// STATUS_/ALERTS_/SLA_CONSUMER_GROUP).
	Status, Alerts, AlertsErrors       string
	QualityStatus                      string // ITEL_QUALITY_STATUS_TOPIC
	StatusGroup, AlertsGroup, SLAGroup string
}

// DefaultNames are the production names (DOMAIN.md §1, §7).
func DefaultNames() Names {
	return Names{
		Events:        "claimx.events.raw",
		Tracking:      "itel.cabinet.task.tracking",
		Success:       "itel.cabinet.task.tracking.success",
		Errors:        "itel.cabinet.task.tracking.errors",
		TriggerGroup:  "itel_cabinet_trigger_group",
		WorkerGroup:   "itel_cabinet_tracking_worker_group",
		FormsSuccess:  "itel.cabinet.forms.success",
		FormsErrors:   "itel.cabinet.forms.errors",
		FormsGroup:    "itel_cabinet_forms_group",
		Status:        "itel.cabinet.task.status",
		Alerts:        "itel.cabinet.alerts",
		AlertsErrors:  "itel.cabinet.alerts.errors",
		QualityStatus: "itel.quality.status",
		StatusGroup:   "itel_cabinet_status_group",
		AlertsGroup:   "itel_cabinet_alerts_group",
		SLAGroup:      "itel_cabinet_sla_group",
	}
}

// UniqueNames are names of their own for one test on a shared broker.
func UniqueNames(prefix string) Names {
	p := fmt.Sprintf("%s.%d", prefix, time.Now().UnixNano())
	return Names{
		Events:        p + ".events",
		Tracking:      p + ".tracking",
		Success:       p + ".success",
		Errors:        p + ".errors",
		TriggerGroup:  p + ".trigger",
		WorkerGroup:   p + ".worker",
		FormsSuccess:  p + ".forms.success",
		FormsErrors:   p + ".forms.errors",
		FormsGroup:    p + ".forms",
		Status:        p + ".status",
		Alerts:        p + ".alerts",
		AlertsErrors:  p + ".alerts.errors",
		QualityStatus: p + ".quality.status",
		StatusGroup:   p + ".status.group",
		AlertsGroup:   p + ".alerts.group",
		SLAGroup:      p + ".sla.group",
	}
}

// SimToken is the bearer token the simulator accepts.
const SimToken = "e2e-token-7f3a9c21"

// SimITelToken is the bearer token the simulator's iTel API accepts.
const SimITelToken = "e2e-itel-token-5d8e"

// Options configure New. The zero value is the tests/e2e setup: an embedded
// broker, the production names, three tracking partitions.
type Options struct {
	// Brokers of an external Kafka (for example scripts/kafka.sh); empty
	// starts the embedded broker in this process.
	Brokers []string
	// Names of the topics and groups; zero: DefaultNames.
	Names Names
	// TrackingPartitions overrides the tracking topic's partitions
	// (ITEL_TRACKING_PARTITIONS); 0 keeps pipelines/topics.yaml.
	TrackingPartitions int32
	// ChildEnv is appended to the environment of every child process
	// (after the harness's own settings, so it overrides them).
	ChildEnv []string
	// DeleteTopics deletes the topics when the test ends (external brokers).
	DeleteTopics bool
	// Strict makes Verify fail on any valid event on the errors topic,
	// whatever Env.AllowTriggerError and Env.AllowWorkerError say, and on
	// any event to track that is not in the table exactly once: a
	// dependency's failure must hold the stream, never divert a record.
	Strict bool
	// SimNotListening reserves the simulator's address without listening:
	// the streams meet refused connections until the test calls
	// Env.Sim.Resume (an API that starts after its clients).
	SimNotListening bool
	// S3, when set, puts the worker's table on an S3-compatible store
	// (DELTA_TABLE_URI=s3://…, DELTA_STORAGE_ENDPOINT, AWS credentials in
	// the child environment); Verify reads it there.
	S3 *S3Table
	// Sim, when set, changes the simulator's configuration before it starts
	// (media sizes, link lifetimes).
	Sim func(*claimxsim.Config)
}

// Env is one end-to-end setup: a broker (embedded or external), the ClaimX
// simulator in this process, the topics, and a Delta table directory; the
// streams run as child processes (see Proc).
type Env struct {
	T        *testing.T
	Dir      string
	Brokers  []string
	Cl       *kgo.Client
	Adm      *kadm.Client
	Sim      *claimxsim.Server
	TableDir string
	// TableURI is where the worker writes the table: TableDir, or an s3://
	// URI with Options.S3.
	TableURI string
	// FormsDir holds the forms stream's tables (itel_cabinet_forms,
	// itel_cabinet_attachments, itel_cabinet_submissions) and its photos
	// (itel_cabinet_attachment_files).
	FormsDir string
	Procs    []*Proc
	Names    Names
	Opts     Options
	// AllowTriggerError, when set, accepts a trigger error for an event the
	// generator made valid (for example a lookup that failed during an API
	// outage); the event then counts as failed, not lost.
	AllowTriggerError func(reason string) bool
	// AllowWorkerError, when set, accepts a worker error (stage, reason);
	// by default any worker error fails the test (the simulator is healthy).
	AllowWorkerError func(stage, reason string) bool
	// AllowTrackedAfterTriggerError, when set, accepts an event that is
	// both on the errors topic (a trigger error with this reason) and on
	// the tracking topic: the trigger recorded a failure, then published
	// the event when its input replayed it. Verify counts these in
	// Outcome.TrackedAfterError; by default they fail the test.
	AllowTrackedAfterTriggerError func(reason string) bool
	// AllowReplayed accepts a valid event on the errors topic (with a
	// reason the Allow functions accept) that is in the table as well: it
	// was diverted, then replayed (claimx-connect errors replay). Verify
	// then also requires every event to track in the table exactly once,
	// and finds trigger errors of replayed events by their original bytes.
	AllowReplayed bool
}

// New sets up an Env with the zero Options (tests/e2e).
func New(t *testing.T) *Env { return NewWith(t, Options{}) }

// NewWith sets up an Env.
func NewWith(t *testing.T, opts Options) *Env {
	t.Helper()
	if opts.Names == (Names{}) {
		opts.Names = DefaultNames()
	}
	e := &Env{T: t, Dir: t.TempDir(), Names: opts.Names, Opts: opts}
	if keep := os.Getenv("E2E_KEEP_DIR"); keep != "" {
		// Keep the table and the logs for inspection after the test.
		e.Dir = filepath.Join(keep, t.Name())
		if err := os.RemoveAll(e.Dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(e.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("keeping the table and the logs in %s", e.Dir)
	}
	e.TableDir = filepath.Join(e.Dir, "itel_cabinet_task_tracking")
	e.TableURI = e.TableDir
	e.FormsDir = filepath.Join(e.Dir, "forms")
	if opts.S3 != nil {
		e.TableURI = opts.S3.URI()
	}

	if len(opts.Brokers) > 0 {
		e.Brokers = opts.Brokers
	} else {
		b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", DefaultPartitions: 3})
		if err != nil {
			t.Fatalf("starting the embedded broker: %v", err)
		}
		t.Cleanup(b.Close)
		e.Brokers = b.Addrs()
	}

	var err error
	e.Cl, err = kgo.NewClient(kgo.SeedBrokers(e.Brokers...), kgo.ClientID("claimx-e2e"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Cl.Close)
	e.Adm = kadm.NewClient(e.Cl)

	specs, err := topics.ParseFile(filepath.Join(RepoRoot, "pipelines", "topics.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultNames()
	for i := range specs {
		switch specs[i].Name {
		case def.Tracking:
			specs[i].Name = e.Names.Tracking
			if opts.TrackingPartitions > 0 {
				specs[i].Partitions = opts.TrackingPartitions
			}
		case def.Success:
			specs[i].Name = e.Names.Success
		case def.Errors:
			specs[i].Name = e.Names.Errors
		case def.FormsSuccess:
			specs[i].Name = e.Names.FormsSuccess
		case def.FormsErrors:
			specs[i].Name = e.Names.FormsErrors
		case def.Status:
			specs[i].Name = e.Names.Status
		case def.Alerts:
			specs[i].Name = e.Names.Alerts
		case def.AlertsErrors:
			specs[i].Name = e.Names.AlertsErrors
		case def.QualityStatus:
			specs[i].Name = e.Names.QualityStatus
		default:
			// A topic the harness does not rename would be shared by tests
			// running side by side on one broker: creating and deleting it
			// races (TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_OR_PARTITION).
			t.Fatalf("topics.yaml topic %q has no per-test name in harness.Names", specs[i].Name)
		}
	}
	specs = append(specs, topics.Spec{Name: e.Names.Events, Partitions: 3, ReplicationFactor: 1})
	if opts.DeleteTopics {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			names := make([]string, len(specs))
			for i, s := range specs {
				names[i] = s.Name
			}
			_, _ = e.Adm.DeleteTopics(ctx, names...)
			_, _ = e.Adm.DeleteGroups(ctx, e.Names.TriggerGroup, e.Names.WorkerGroup, e.Names.FormsGroup,
				e.Names.StatusGroup, e.Names.AlertsGroup, e.Names.SLAGroup)
		})
	}
	if _, err := topics.Apply(t.Context(), e.Adm, specs, topics.Options{CapReplication: true}); err != nil {
		t.Fatalf("applying topics: %v", err)
	}
	// Wait until the new topics answer offset requests.
	for _, s := range specs {
		for deadline := time.Now().Add(15 * time.Second); ; {
			_, err := e.EndOffsets(t.Context(), s.Name)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("topic %s: %v", s.Name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	simConf := claimxsim.Config{Seed: 1, Assignments: 200, Token: SimToken, ITelToken: SimITelToken}
	if opts.Sim != nil {
		opts.Sim(&simConf)
	}
	e.Sim, err = claimxsim.New(simConf)
	if err != nil {
		t.Fatal(err)
	}
	if opts.SimNotListening {
		err = e.Sim.Reserve("127.0.0.1:0")
	} else {
		err = e.Sim.Start("127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Sim.Close() })

	// Registered last, so it runs first: kill the children before the
	// broker and the simulator go away, then show their logs on failure.
	t.Cleanup(func() {
		for _, p := range e.Procs {
			p.KillQuietly()
		}
		if t.Failed() {
			for _, p := range e.Procs {
				t.Logf("---- last lines of %s (%s) ----\n%s", p.Name, p.LogPath, TailFile(p.LogPath, 60))
			}
		}
	})
	return e
}

// childEnv is the environment of both streams, as in a deployment.
func (e *Env) ChildEnv() []string {
	var s3 []string
	if e.Opts.S3 != nil {
		s3 = e.Opts.S3.childEnv()
	}
	return append(append(append(os.Environ(),
		"KAFKA_BOOTSTRAP_SERVERS="+strings.Join(e.Brokers, ","),
		"CLAIMX_API_BASE_URL="+e.Sim.URL(),
		"CLAIMX_API_AUTH_TYPE=bearer",
		"CLAIMX_API_TOKEN="+SimToken,
		"DELTA_TABLE_URI="+e.TableURI,
		"ITEL_SCHEMA_FILE="+filepath.Join(RepoRoot, "schemas", "itel_cabinet_task_tracking.yaml"),
		"CLAIMX_RATE_LIMIT_PER_SECOND=500",
		"WORKER_BATCH_COUNT=20",
		"WORKER_BATCH_PERIOD=100ms",
		"CLAIMX_EVENTS_TOPIC="+e.Names.Events,
		"ITEL_TRACKING_TOPIC="+e.Names.Tracking,
		"ITEL_SUCCESS_TOPIC="+e.Names.Success,
		"ITEL_ERRORS_TOPIC="+e.Names.Errors,
		"TRIGGER_CONSUMER_GROUP="+e.Names.TriggerGroup,
		"WORKER_CONSUMER_GROUP="+e.Names.WorkerGroup,
		"ITEL_API_BASE_URL="+e.Sim.URL(),
		"ITEL_API_AUTH_TYPE=bearer",
		"ITEL_API_TOKEN="+SimITelToken,
		"ITEL_FORM_MAPPING="+filepath.Join(RepoRoot, "pipelines", "forms", "itel_cabinet_form.yaml"),
		"ITEL_FORMS_TABLE_URI="+filepath.Join(e.FormsDir, "itel_cabinet_forms"),
		"ITEL_FORMS_SCHEMA_FILE="+filepath.Join(RepoRoot, "schemas", "itel_cabinet_forms.yaml"),
		"ITEL_ATTACHMENTS_TABLE_URI="+filepath.Join(e.FormsDir, "itel_cabinet_attachments"),
		"ITEL_ATTACHMENTS_SCHEMA_FILE="+filepath.Join(RepoRoot, "schemas", "itel_cabinet_attachments.yaml"),
		"ITEL_SUBMISSIONS_TABLE_URI="+filepath.Join(e.FormsDir, "itel_cabinet_submissions"),
		"ITEL_SUBMISSIONS_SCHEMA_FILE="+filepath.Join(RepoRoot, "schemas", "itel_cabinet_submissions.yaml"),
		"ITEL_SUBMISSION_SCHEMA="+filepath.Join(RepoRoot, "schemas", "itel_submission.v1.json"),
		"ITEL_ATTACHMENTS_URI="+filepath.Join(e.FormsDir, "itel_cabinet_attachment_files"),
		"ITEL_FORMS_SUCCESS_TOPIC="+e.Names.FormsSuccess,
		"ITEL_FORMS_ERRORS_TOPIC="+e.Names.FormsErrors,
		"FORMS_CONSUMER_GROUP="+e.Names.FormsGroup,
		"ITEL_STATUS_TOPIC="+e.Names.Status,
		"ITEL_ALERTS_TOPIC="+e.Names.Alerts,
		"ITEL_ALERTS_ERRORS_TOPIC="+e.Names.AlertsErrors,
		"ITEL_QUALITY_STATUS_TOPIC="+e.Names.QualityStatus,
		"STATUS_CONSUMER_GROUP="+e.Names.StatusGroup,
		"ALERTS_CONSUMER_GROUP="+e.Names.AlertsGroup,
		"SLA_CONSUMER_GROUP="+e.Names.SLAGroup,
		"FORMS_BATCH_COUNT=20",
		"FORMS_BATCH_PERIOD=100ms",
	), s3...), e.Opts.ChildEnv...)
}

// consumesKafka says whether the stream's input is kafka_franz (the quality
// stream's is not: setting kafka_franz fields would make it ambiguous).
func consumesKafka(stream string) bool {
	b, err := os.ReadFile(stream)
	if err != nil {
		return true
	}
	s := string(b)
	in := strings.Index(s, "\ninput:")
	if in < 0 {
		return true
	}
	s = s[in:]
	if end := strings.Index(s, "\npipeline:"); end > 0 {
		s = s[:end]
	}
	return strings.Contains(s, "kafka_franz:")
}

func (e *Env) NewProc(name, stream string) *Proc {
	e.T.Helper()
	p := &Proc{
		t:       e.T,
		Name:    name,
		LogPath: filepath.Join(e.Dir, name+".log"),
		env:     e.ChildEnv(),
	}
	p.HTTPAddr = freeAddr(e.T)
	p.args = []string{"run",
		"-r", filepath.Join(RepoRoot, "pipelines", "resources", "claimx.yaml"),
		"-r", filepath.Join(RepoRoot, "pipelines", "resources", "errors.yaml"),
		"-r", filepath.Join(RepoRoot, "pipelines", "resources", "itel.yaml"),
		"-r", filepath.Join(RepoRoot, "pipelines", "resources", "alerts.yaml"),
		"-s", "http.address=" + p.HTTPAddr,
		"-s", "metrics.prometheus.add_go_metrics=false",
	}
	// A member killed with SIGKILL never leaves its group: the coordinator
	// waits for it for the rebalance timeout (45 s by default; measured: a
	// restarted worker consumed nothing for 45 s) or until its session
	// times out (1 m). Shorter group timeouts keep five restarts within the
	// test's time; the rebalance itself is still exercised on every restart.
	if consumesKafka(stream) {
		for _, kv := range []string{"session_timeout=6s", "rebalance_timeout=4s", "heartbeat_interval=1s"} {
			p.args = append(p.args, "-s", "input.kafka_franz."+kv)
		}
	}
	p.args = append(p.args, stream)
	e.Procs = append(e.Procs, p)
	return p
}

func (e *Env) TriggerProc() *Proc {
	return e.NewProc("trigger", filepath.Join(RepoRoot, "pipelines", "trigger.yaml"))
}

func (e *Env) WorkerProc() *Proc {
	stream := filepath.Join(RepoRoot, "pipelines", "worker.yaml")
	if s := os.Getenv("E2E_WORKER_YAML"); s != "" {
		stream = s
		e.T.Logf("worker stream from E2E_WORKER_YAML: %s", s)
	}
	return e.NewProc("worker", stream)
}

// FormsProc is the forms stream (pipelines/forms.yaml).
func (e *Env) FormsProc() *Proc {
	return e.NewProc("forms", filepath.Join(RepoRoot, "pipelines", "forms.yaml"))
}

// checkAlive fails the test when a child exited without being killed.
func (e *Env) CheckAlive() {
	e.T.Helper()
	for _, p := range e.Procs {
		if err := p.UnexpectedExit(); err != nil {
			e.T.Fatalf("%s exited by itself: %v (log %s)", p.Name, err, p.LogPath)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ---- child processes ----

// RunInfo is one life of a child process.
type RunInfo struct {
	Began, Ended time.Time
	Killed       bool
	// CPU is the user and system time the life used, once it ended.
	CPU time.Duration
}

// proc is a claimx-connect child process that can be killed and restarted.
// Every life appends to the same log file.
type Proc struct {
	t        *testing.T
	Name     string
	args     []string
	env      []string
	LogPath  string
	HTTPAddr string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
	killing bool
	runs    []RunInfo
	// lastMetrics is the last successful scrape of the current life.
	lastMetrics map[string]float64
}

func (p *Proc) Start() {
	p.t.Helper()
	f, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(f, "==== %s life %d starting at %s ====\n", p.Name, len(p.runs)+1, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(BinPath, p.args...)
	cmd.Dir = RepoRoot
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		p.t.Fatalf("starting %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.exitErr, p.killing, p.lastMetrics = cmd, done, nil, false, nil
	p.runs = append(p.runs, RunInfo{Began: time.Now()})
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		if p.cmd == cmd {
			p.exitErr = err
			if err == nil {
				p.exitErr = errors.New("exit status 0")
			}
			p.runs[len(p.runs)-1].Ended = time.Now()
			if cmd.ProcessState != nil {
				p.runs[len(p.runs)-1].CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
		}
		p.mu.Unlock()
		close(done)
	}()
}

// kill sends SIGKILL to the current life and waits for it to be gone.
func (p *Proc) Kill() {
	p.t.Helper()
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if cmd == nil {
		p.mu.Unlock()
		return
	}
	p.killing = true
	p.runs[len(p.runs)-1].Killed = true
	err := cmd.Process.Signal(syscall.SIGKILL)
	p.mu.Unlock()
	if err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatalf("killing %s: %v", p.Name, err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("%s (pid %d) still running 10s after SIGKILL", p.Name, cmd.Process.Pid)
	}
}

func (p *Proc) KillQuietly() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.killing = true
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// unexpectedExit reports an exit the test did not cause.
func (p *Proc) UnexpectedExit() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.killing || p.exitErr == nil {
		return nil
	}
	return p.exitErr
}

func (p *Proc) Lives() []RunInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := append([]RunInfo(nil), p.runs...)
	if n := len(out); n > 0 && out[n-1].Ended.IsZero() {
		out[n-1].Ended = time.Now()
	}
	return out
}

// scrape reads the current life's Prometheus metrics (summed over labels)
// and keeps them as lastMetrics.
func (p *Proc) Scrape(ctx context.Context) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.HTTPAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		m[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.lastMetrics = m
	p.mu.Unlock()
	return m, nil
}

func (p *Proc) MetricsOfLife() map[string]float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastMetrics
}

func TailFile(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// ---- Kafka helpers ----

// Position is where a record landed.
type Position struct {
	partition int32
	offset    int64
}

// publisher produces the generated events at a steady rate, in the
// background, keyed by their Key, and records where each landed.
type Publisher struct {
	done      chan struct{}
	err       error
	mu        sync.Mutex
	positions map[Position]int // event index by Position
	sent      int
}

func (e *Env) Publish(events []claimxsim.Event, perSecond int, chunk int) *Publisher {
	return e.PublishFrom(events, 0, perSecond, chunk)
}

// PublishFrom publishes events[from:] as Publish does; positions name the
// index in events, so that MergePublishers can join the publishers of one
// corpus published in parts.
func (e *Env) PublishFrom(all []claimxsim.Event, from int, perSecond int, chunk int) *Publisher {
	events := all[from:]
	pub := &Publisher{done: make(chan struct{}), positions: map[Position]int{}}
	ctx := e.T.Context()
	go func() {
		defer close(pub.done)
		interval := time.Duration(float64(time.Second) * float64(chunk) / float64(perSecond))
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; i < len(events); i += chunk {
			end := min(i+chunk, len(events))
			recs := make([]*kgo.Record, 0, end-i)
			index := map[*kgo.Record]int{}
			for j, ev := range events[i:end] {
				r := &kgo.Record{Topic: e.Names.Events, Key: []byte(ev.Key), Value: ev.Body}
				recs = append(recs, r)
				index[r] = from + i + j
			}
			res := e.Cl.ProduceSync(ctx, recs...)
			if err := res.FirstErr(); err != nil {
				pub.err = fmt.Errorf("publishing events %d..%d: %w", i, end-1, err)
				return
			}
			pub.mu.Lock()
			// Results come in completion order, not in the order of recs.
			for _, r := range res {
				pub.positions[Position{r.Record.Partition, r.Record.Offset}] = index[r.Record]
			}
			pub.sent = from + end
			pub.mu.Unlock()
			if end < len(events) {
				select {
				case <-tick.C:
				case <-ctx.Done():
					pub.err = ctx.Err()
					return
				}
			}
		}
	}()
	return pub
}

func (p *Publisher) Finished() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *Publisher) Wait(t *testing.T) {
	t.Helper()
	<-p.done
	if p.err != nil {
		t.Fatal(p.err)
	}
}

// endOffsets returns the end offset of each partition of topic.
func (e *Env) EndOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	ends, err := e.Adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	if err := ends.Error(); err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

func (e *Env) TopicCount(ctx context.Context, topic string) (int64, error) {
	ends, err := e.EndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, o := range ends {
		n += o
	}
	return n, nil
}

// groupLag is the number of records of topic past the group's committed
// offsets (a partition without a commit counts from offset 0).
func (e *Env) GroupLag(ctx context.Context, group, topic string) (int64, error) {
	ends, err := e.EndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	committed, err := e.Adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, fmt.Errorf("fetching the offsets of group %s: %w", group, err)
	}
	var lag int64
	for p, end := range ends {
		at := int64(0)
		if o, ok := committed.Lookup(topic, p); ok {
			if o.Err != nil {
				return 0, fmt.Errorf("offset of group %s on %s/%d: %w", group, topic, p, o.Err)
			}
			if o.At > 0 {
				at = o.At
			}
		}
		lag += end - at
	}
	return lag, nil
}

// waitDrained waits until every event is published, both groups have
// committed everything of their topic, and nothing moved for `stable`.
func (e *Env) WaitDrained(pub *Publisher, stable, timeout time.Duration) time.Duration {
	e.T.Helper()
	ctx := e.T.Context()
	start := time.Now()
	deadline := start.Add(timeout)
	var quietSince time.Time
	var lastSig string
	for {
		e.CheckAlive()
		sig, done, err := e.DrainState(ctx, pub)
		switch {
		case err != nil:
			quietSince = time.Time{}
			e.T.Logf("waiting for the streams to drain: %v", err)
		case !done || sig != lastSig:
			quietSince = time.Time{}
		case quietSince.IsZero():
			quietSince = time.Now()
		case time.Since(quietSince) >= stable:
			return time.Since(start)
		}
		lastSig = sig
		if time.Now().After(deadline) {
			e.T.Fatalf("the streams did not drain within %s: %s", timeout, sig)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (e *Env) DrainState(ctx context.Context, pub *Publisher) (string, bool, error) {
	tl, err := e.GroupLag(ctx, e.Names.TriggerGroup, e.Names.Events)
	if err != nil {
		return "", false, err
	}
	wl, err := e.GroupLag(ctx, e.Names.WorkerGroup, e.Names.Tracking)
	if err != nil {
		return "", false, err
	}
	var counts []string
	for _, topic := range []string{e.Names.Tracking, e.Names.Success, e.Names.Errors} {
		n, err := e.TopicCount(ctx, topic)
		if err != nil {
			return "", false, err
		}
		counts = append(counts, fmt.Sprintf("%s=%d", topic, n))
	}
	sig := fmt.Sprintf("published=%v trigger lag=%d worker lag=%d %s", pub.Finished(), tl, wl, strings.Join(counts, " "))
	return sig, pub.Finished() && tl == 0 && wl == 0, nil
}

// consumeAll reads every record of topic, from the start to the end offsets
// of the moment it is called.
func (e *Env) ConsumeAll(topic string) []*kgo.Record {
	e.T.Helper()
	ctx, cancel := context.WithTimeout(e.T.Context(), 60*time.Second)
	defer cancel()
	ends, err := e.EndOffsets(ctx, topic)
	if err != nil {
		e.T.Fatalf("end offsets of %s: %v", topic, err)
	}
	var want int64
	for _, o := range ends {
		want += o
	}
	if want == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.ClientID("claimx-e2e-reader"))
	if err != nil {
		e.T.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	next := map[int32]int64{}
	complete := func() bool {
		for p, end := range ends {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	for !complete() {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			e.T.Fatalf("reading %s: got %d of %d records: %v", topic, len(out), want, err)
		}
		for _, fe := range fs.Errors() {
			e.T.Fatalf("reading %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < ends[r.Partition] {
				out = append(out, r)
			}
			next[r.Partition] = r.Offset + 1
		})
	}
	return out
}

// Setenv adds KEY=value settings to the environment of p's next lives
// (they override the Env's own settings).
func (p *Proc) Setenv(kv ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.env = append(p.env, kv...)
}

// SetBinary sets the module root and the claimx-connect binary, for a test
// package that builds the binary itself instead of calling Main.
func SetBinary(root, bin string) {
	RepoRoot, BinPath = root, bin
}

// MergePublishers joins finished publishers of parts of one corpus
// (PublishFrom) into one, for Verify.
func MergePublishers(ps ...*Publisher) *Publisher {
	out := &Publisher{done: make(chan struct{}), positions: map[Position]int{}}
	for _, p := range ps {
		<-p.done
		p.mu.Lock()
		for k, v := range p.positions {
			out.positions[k] = v
		}
		out.sent = max(out.sent, p.sent)
		if out.err == nil {
			out.err = p.err
		}
		p.mu.Unlock()
	}
	close(out.done)
	return out
}

// Sent is how many events have been published so far.
func (p *Publisher) Sent() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}
