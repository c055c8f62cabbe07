package processors

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/claimxsim"
)

const testToken = "tok-S3CRET-4b1d9e77c0ffee"

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// metricRecorder is a metrics exporter that remembers what it was given.
type metricRecorder struct {
	mu       sync.Mutex
	counters map[string]int64 // name{k=v,…} → count
	timings  map[string]int
}

func newMetricRecorder() *metricRecorder {
	return &metricRecorder{counters: map[string]int64{}, timings: map[string]int{}}
}

func metricKey(name string, keys, values []string) string {
	var parts []string
	for i, k := range keys {
		if k == "label" || k == "path" {
			continue // added by benthos for the component, not by us
		}
		parts = append(parts, k+"="+values[i])
	}
	sort.Strings(parts)
	return name + "{" + strings.Join(parts, ",") + "}"
}

type recCounter struct {
	r   *metricRecorder
	key string
}

func (c recCounter) Incr(n int64) {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	c.r.counters[c.key] += n
}

type recTimer struct {
	r   *metricRecorder
	key string
}

func (t recTimer) Timing(int64) {
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	t.r.timings[t.key]++
}

type recGauge struct{}

func (recGauge) Set(int64) {}

func (r *metricRecorder) NewCounterCtor(name string, keys ...string) service.MetricsExporterCounterCtor {
	return func(values ...string) service.MetricsExporterCounter {
		return recCounter{r, metricKey(name, keys, values)}
	}
}

func (r *metricRecorder) NewTimerCtor(name string, keys ...string) service.MetricsExporterTimerCtor {
	return func(values ...string) service.MetricsExporterTimer { return recTimer{r, metricKey(name, keys, values)} }
}

func (r *metricRecorder) NewGaugeCtor(string, ...string) service.MetricsExporterGaugeCtor {
	return func(...string) service.MetricsExporterGauge { return recGauge{} }
}

func (r *metricRecorder) Close(context.Context) error { return nil }

func (r *metricRecorder) counter(key string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counters[key]
}

func (r *metricRecorder) timing(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.timings[key]
}

// pipe is a running stream with one processor config, fed batch by batch.
type pipe struct {
	t       *testing.T
	send    service.MessageBatchHandlerFunc
	logs    *syncBuffer
	metrics *metricRecorder
	mu      sync.Mutex
	out     []*service.Message
	stop    func()
	// stopTimeout is how long stop lets in-flight batches finish before
	// the hard stop.
	stopTimeout time.Duration
}

// startPipe runs procYAML (with optional resources) in a stream whose logs
// (debug level) and metrics are captured.
func startPipe(t *testing.T, procYAML, resourcesYAML string, opts ...func(*service.StreamBuilder)) *pipe {
	t.Helper()
	env := service.NewEnvironment()
	rec := newMetricRecorder()
	if err := env.RegisterMetricsExporter("recorder", service.NewConfigSpec(),
		func(*service.ParsedConfig, *service.Logger) (service.MetricsExporter, error) { return rec, nil }); err != nil {
		t.Fatal(err)
	}
	p := &pipe{t: t, logs: &syncBuffer{}, metrics: rec, stopTimeout: 10 * time.Second}
	b := env.NewStreamBuilder()
	b.SetLogger(slog.New(slog.NewTextHandler(p.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	for _, o := range opts {
		o(b)
	}
	must(t, b.SetMetricsYAML("recorder: {}"))
	if resourcesYAML != "" {
		must(t, b.AddResourcesYAML(resourcesYAML))
	}
	must(t, b.AddProcessorYAML(procYAML))
	send, err := b.AddBatchProducerFunc()
	must(t, err)
	p.send = send
	must(t, b.AddBatchConsumerFunc(func(_ context.Context, mb service.MessageBatch) error {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.out = append(p.out, mb...)
		return nil
	}))
	stream, err := b.Build()
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	done := make(chan error, 1)
	go func() { done <- stream.Run(ctx) }()
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			sctx, scancel := context.WithTimeout(context.Background(), p.stopTimeout)
			defer scancel()
			_ = stream.Stop(sctx)
			cancel()
			<-done
		})
	}
	t.Cleanup(p.stop)
	return p
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// process sends one batch and returns the messages that came out of it.
func (p *pipe) process(docs ...string) []*service.Message {
	p.t.Helper()
	p.mu.Lock()
	before := len(p.out)
	p.mu.Unlock()
	batch := make(service.MessageBatch, len(docs))
	for i, d := range docs {
		batch[i] = service.NewMessage([]byte(d))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.send(ctx, batch); err != nil {
		p.t.Fatalf("sending batch: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*service.Message(nil), p.out[before:]...)
}

// newSim starts a simulator on httptest.
func newSim(t testing.TB, cfg claimxsim.Config) (*claimxsim.Server, *httptest.Server) {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	s, err := claimxsim.New(cfg)
	must(t, err)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs
}

// clLookupFields are the fields of claimx_lookup; every other field of a
// test's config goes to its claimx_connection.
var clLookupFields = map[string]bool{
	clFieldConnection: true, clFieldPath: true, clFieldPathParams: true, clFieldQuery: true,
	clFieldResultField: true, clFieldResultAsString: true, clFieldOnNotFound: true,
}

// lookupYAML renders a claimx_lookup config and the claimx_connection
// resource (label claimx) it names: defaults suited to the tests,
// overridden (or removed, with "") by over.
func lookupYAML(baseURL string, over map[string]string) (proc, resources string) {
	f := map[string]string{
		"connection":   "claimx",
		"base_url":     baseURL,
		"path":         "/customTasks/assignment/{assignment_id}",
		"path_params":  "{ assignment_id: this.task_assignment_id }",
		"query":        `{ full: "true" }`,
		"result_field": "claimx_task_full",
		"auth":         "{ type: bearer, token: " + testToken + " }",
		"retries":      "{ max_attempts: 3, initial_interval: 10ms, max_interval: 200ms }",
		// Most tests look at the failures themselves; the hold tests set hold.
		"on_unavailable": "error",
	}
	for k, v := range over {
		if v == "" {
			delete(f, k)
		} else {
			f[k] = v
		}
	}
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var lb, cb strings.Builder
	lb.WriteString("claimx_lookup:\n")
	cb.WriteString("processor_resources:\n  - label: claimx\n    claimx_connection:\n")
	for _, k := range keys {
		if clLookupFields[k] {
			fmt.Fprintf(&lb, "  %s: %s\n", k, f[k])
		} else {
			fmt.Fprintf(&cb, "      %s: %s\n", k, f[k])
		}
	}
	return lb.String(), cb.String()
}

// connectionYAML is the claimx_connection part of lookupYAML, without its
// resource wrapping: a config of the connection alone.
func connectionYAML(baseURL string, over map[string]string) string {
	_, res := lookupYAML(baseURL, over)
	lines := strings.Split(res, "\n")[3:]
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "      ")
	}
	return strings.Join(lines, "\n")
}

// startLookup runs a claimx_lookup (lookupYAML) over a claimx_connection,
// with optional extra resources, in a pipe.
func startLookup(t *testing.T, baseURL string, over map[string]string, resourcesYAML string, opts ...func(*service.StreamBuilder)) *pipe {
	t.Helper()
	proc, conn := lookupYAML(baseURL, over)
	return startPipe(t, proc, conn+resourcesYAML, opts...)
}

func eventFor(id int64) string {
	return `{"event_id":"evt_` + strconv.FormatInt(id, 10) + `","task_assignment_id":"` + strconv.FormatInt(id, 10) + `"}`
}

func meta(m *service.Message, key string) string {
	v, _ := m.MetaGet(key)
	return v
}

// waitFor polls cond for up to two seconds: the simulator counts a request
// when its handler returns, which can trail the client's view.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
