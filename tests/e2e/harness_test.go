package e2e

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

const (
	eventsTopic   = "claimx.events.raw"
	trackingTopic = "itel.cabinet.task.tracking"
	successTopic  = "itel.cabinet.task.tracking.success"
	errorsTopic   = "itel.cabinet.task.tracking.errors"
	triggerGroup  = "itel_cabinet_trigger_group"
	workerGroup   = "itel_cabinet_tracking_worker_group"
	simToken      = "e2e-token-7f3a9c21"
)

// env is one end-to-end setup: the embedded broker and the ClaimX simulator
// in this process, the topics, and a Delta table directory; the streams run
// as child processes (see proc).
type env struct {
	t        *testing.T
	dir      string
	brokers  []string
	cl       *kgo.Client
	adm      *kadm.Client
	sim      *claimxsim.Server
	tableDir string
	procs    []*proc
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	if keep := os.Getenv("E2E_KEEP_DIR"); keep != "" {
		// Keep the table and the logs for inspection after the test.
		e.dir = filepath.Join(keep, t.Name())
		if err := os.RemoveAll(e.dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(e.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("keeping the table and the logs in %s", e.dir)
	}
	e.tableDir = filepath.Join(e.dir, "itel_cabinet_task_tracking")

	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", DefaultPartitions: 3})
	if err != nil {
		t.Fatalf("starting the embedded broker: %v", err)
	}
	t.Cleanup(b.Close)
	e.brokers = b.Addrs()

	e.cl, err = kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ClientID("claimx-e2e"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cl.Close)
	e.adm = kadm.NewClient(e.cl)

	specs, err := topics.ParseFile(filepath.Join(repoRoot, "pipelines", "topics.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	specs = append(specs, topics.Spec{Name: eventsTopic, Partitions: 3, ReplicationFactor: 1})
	if _, err := topics.Apply(t.Context(), e.adm, specs, topics.Options{CapReplication: true}); err != nil {
		t.Fatalf("applying topics: %v", err)
	}
	// Wait until the new topics answer offset requests.
	for _, s := range specs {
		for deadline := time.Now().Add(15 * time.Second); ; {
			_, err := e.endOffsets(t.Context(), s.Name)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("topic %s: %v", s.Name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	e.sim, err = claimxsim.New(claimxsim.Config{Seed: 1, Assignments: 200, Token: simToken})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.sim.Close() })

	// Registered last, so it runs first: kill the children before the
	// broker and the simulator go away, then show their logs on failure.
	t.Cleanup(func() {
		for _, p := range e.procs {
			p.killQuietly()
		}
		if t.Failed() {
			for _, p := range e.procs {
				t.Logf("---- last lines of %s (%s) ----\n%s", p.name, p.logPath, tailFile(p.logPath, 60))
			}
		}
	})
	return e
}

// childEnv is the environment of both streams, as in a deployment.
func (e *env) childEnv() []string {
	return append(os.Environ(),
		"KAFKA_BOOTSTRAP_SERVERS="+strings.Join(e.brokers, ","),
		"CLAIMX_API_BASE_URL="+e.sim.URL(),
		"CLAIMX_API_AUTH_TYPE=bearer",
		"CLAIMX_API_TOKEN="+simToken,
		"DELTA_TABLE_URI="+e.tableDir,
		"ITEL_SCHEMA_FILE="+filepath.Join(repoRoot, "schemas", "itel_cabinet_task_tracking.yaml"),
		"CLAIMX_RATE_LIMIT_PER_SECOND=500",
		"WORKER_BATCH_COUNT=20",
		"WORKER_BATCH_PERIOD=100ms",
	)
}

func (e *env) newProc(name, stream string) *proc {
	e.t.Helper()
	p := &proc{
		t:       e.t,
		name:    name,
		logPath: filepath.Join(e.dir, name+".log"),
		env:     e.childEnv(),
	}
	p.httpAddr = freeAddr(e.t)
	p.args = []string{"run",
		"-r", filepath.Join(repoRoot, "pipelines", "resources", "claimx.yaml"),
		"-r", filepath.Join(repoRoot, "pipelines", "resources", "errors.yaml"),
		"-s", "http.address=" + p.httpAddr,
		"-s", "metrics.prometheus.add_go_metrics=false",
	}
	// A member killed with SIGKILL never leaves its group: the coordinator
	// waits for it for the rebalance timeout (45 s by default; measured: a
	// restarted worker consumed nothing for 45 s) or until its session
	// times out (1 m). Shorter group timeouts keep five restarts within the
	// test's time; the rebalance itself is still exercised on every restart.
	for _, kv := range []string{"session_timeout=6s", "rebalance_timeout=4s", "heartbeat_interval=1s"} {
		p.args = append(p.args, "-s", "input.kafka_franz."+kv)
	}
	p.args = append(p.args, stream)
	e.procs = append(e.procs, p)
	return p
}

func (e *env) triggerProc() *proc {
	return e.newProc("trigger", filepath.Join(repoRoot, "pipelines", "trigger.yaml"))
}

func (e *env) workerProc() *proc {
	stream := filepath.Join(repoRoot, "pipelines", "worker.yaml")
	if s := os.Getenv("E2E_WORKER_YAML"); s != "" {
		stream = s
		e.t.Logf("worker stream from E2E_WORKER_YAML: %s", s)
	}
	return e.newProc("worker", stream)
}

// checkAlive fails the test when a child exited without being killed.
func (e *env) checkAlive() {
	e.t.Helper()
	for _, p := range e.procs {
		if err := p.unexpectedExit(); err != nil {
			e.t.Fatalf("%s exited by itself: %v (log %s)", p.name, err, p.logPath)
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

// runInfo is one life of a child process.
type runInfo struct {
	start, end time.Time
	killed     bool
}

// proc is a claimx-connect child process that can be killed and restarted.
// Every life appends to the same log file.
type proc struct {
	t        *testing.T
	name     string
	args     []string
	env      []string
	logPath  string
	httpAddr string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
	killing bool
	runs    []runInfo
	// lastMetrics is the last successful scrape of the current life.
	lastMetrics map[string]float64
}

func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(f, "==== %s life %d starting at %s ====\n", p.name, len(p.runs)+1, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(binPath, p.args...)
	cmd.Dir = repoRoot
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		p.t.Fatalf("starting %s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.exitErr, p.killing, p.lastMetrics = cmd, done, nil, false, nil
	p.runs = append(p.runs, runInfo{start: time.Now()})
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		if p.cmd == cmd {
			p.exitErr = err
			if err == nil {
				p.exitErr = errors.New("exit status 0")
			}
			p.runs[len(p.runs)-1].end = time.Now()
		}
		p.mu.Unlock()
		close(done)
	}()
}

// kill sends SIGKILL to the current life and waits for it to be gone.
func (p *proc) kill() {
	p.t.Helper()
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if cmd == nil {
		p.mu.Unlock()
		return
	}
	p.killing = true
	p.runs[len(p.runs)-1].killed = true
	err := cmd.Process.Signal(syscall.SIGKILL)
	p.mu.Unlock()
	if err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatalf("killing %s: %v", p.name, err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("%s (pid %d) still running 10s after SIGKILL", p.name, cmd.Process.Pid)
	}
}

func (p *proc) killQuietly() {
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
func (p *proc) unexpectedExit() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.killing || p.exitErr == nil {
		return nil
	}
	return p.exitErr
}

func (p *proc) lives() []runInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := append([]runInfo(nil), p.runs...)
	if n := len(out); n > 0 && out[n-1].end.IsZero() {
		out[n-1].end = time.Now()
	}
	return out
}

// scrape reads the current life's Prometheus metrics (summed over labels)
// and keeps them as lastMetrics.
func (p *proc) scrape(ctx context.Context) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.httpAddr+"/metrics", nil)
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

func (p *proc) metricsOfLife() map[string]float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastMetrics
}

func tailFile(path string, lines int) string {
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

// position is where a record landed.
type position struct {
	partition int32
	offset    int64
}

// publisher produces the generated events at a steady rate, in the
// background, keyed by their Key, and records where each landed.
type publisher struct {
	done      chan struct{}
	err       error
	mu        sync.Mutex
	positions map[position]int // event index by position
	sent      int
}

func (e *env) publish(events []claimxsim.Event, perSecond int, chunk int) *publisher {
	pub := &publisher{done: make(chan struct{}), positions: map[position]int{}}
	ctx := e.t.Context()
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
				r := &kgo.Record{Topic: eventsTopic, Key: []byte(ev.Key), Value: ev.Body}
				recs = append(recs, r)
				index[r] = i + j
			}
			res := e.cl.ProduceSync(ctx, recs...)
			if err := res.FirstErr(); err != nil {
				pub.err = fmt.Errorf("publishing events %d..%d: %w", i, end-1, err)
				return
			}
			pub.mu.Lock()
			// Results come in completion order, not in the order of recs.
			for _, r := range res {
				pub.positions[position{r.Record.Partition, r.Record.Offset}] = index[r.Record]
			}
			pub.sent = end
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

func (p *publisher) finished() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *publisher) wait(t *testing.T) {
	t.Helper()
	<-p.done
	if p.err != nil {
		t.Fatal(p.err)
	}
}

// endOffsets returns the end offset of each partition of topic.
func (e *env) endOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	ends, err := e.adm.ListEndOffsets(ctx, topic)
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

func (e *env) topicCount(ctx context.Context, topic string) (int64, error) {
	ends, err := e.endOffsets(ctx, topic)
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
func (e *env) groupLag(ctx context.Context, group, topic string) (int64, error) {
	ends, err := e.endOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	committed, err := e.adm.FetchOffsets(ctx, group)
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
func (e *env) waitDrained(pub *publisher, stable, timeout time.Duration) time.Duration {
	e.t.Helper()
	ctx := e.t.Context()
	start := time.Now()
	deadline := start.Add(timeout)
	var quietSince time.Time
	var lastSig string
	for {
		e.checkAlive()
		sig, done, err := e.drainState(ctx, pub)
		switch {
		case err != nil:
			quietSince = time.Time{}
			e.t.Logf("waiting for the streams to drain: %v", err)
		case !done || sig != lastSig:
			quietSince = time.Time{}
		case quietSince.IsZero():
			quietSince = time.Now()
		case time.Since(quietSince) >= stable:
			return time.Since(start)
		}
		lastSig = sig
		if time.Now().After(deadline) {
			e.t.Fatalf("the streams did not drain within %s: %s", timeout, sig)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (e *env) drainState(ctx context.Context, pub *publisher) (string, bool, error) {
	tl, err := e.groupLag(ctx, triggerGroup, eventsTopic)
	if err != nil {
		return "", false, err
	}
	wl, err := e.groupLag(ctx, workerGroup, trackingTopic)
	if err != nil {
		return "", false, err
	}
	var counts []string
	for _, topic := range []string{trackingTopic, successTopic, errorsTopic} {
		n, err := e.topicCount(ctx, topic)
		if err != nil {
			return "", false, err
		}
		counts = append(counts, fmt.Sprintf("%s=%d", topic, n))
	}
	sig := fmt.Sprintf("published=%v trigger lag=%d worker lag=%d %s", pub.finished(), tl, wl, strings.Join(counts, " "))
	return sig, pub.finished() && tl == 0 && wl == 0, nil
}

// consumeAll reads every record of topic, from the start to the end offsets
// of the moment it is called.
func (e *env) consumeAll(topic string) []*kgo.Record {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 60*time.Second)
	defer cancel()
	ends, err := e.endOffsets(ctx, topic)
	if err != nil {
		e.t.Fatalf("end offsets of %s: %v", topic, err)
	}
	var want int64
	for _, o := range ends {
		want += o
	}
	if want == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.ClientID("claimx-e2e-reader"))
	if err != nil {
		e.t.Fatal(err)
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
			e.t.Fatalf("reading %s: got %d of %d records: %v", topic, len(out), want, err)
		}
		for _, fe := range fs.Errors() {
			e.t.Fatalf("reading %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
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
