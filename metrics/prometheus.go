// Package metrics holds the project's metrics exporters. benthos core ships
// none for Prometheus, so `metrics: {prometheus: {}}` is served from here.
package metrics

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// Field names, shared with Redpanda Connect's prometheus exporter so existing
// configs keep working.
const (
	pmFieldUseHistogramTiming = "use_histogram_timing"
	pmFieldHistogramBuckets   = "histogram_buckets"
	pmFieldSummaryObjectives  = "summary_quantiles_objectives"
	pmFieldObjQuantile        = "quantile"
	pmFieldObjError           = "error"
	pmFieldAddProcessMetrics  = "add_process_metrics"
	pmFieldAddGoMetrics       = "add_go_metrics"
	pmFieldPushURL            = "push_url"
	pmFieldPushInterval       = "push_interval"
	pmFieldPushJobName        = "push_job_name"
	pmFieldPushBasicAuth      = "push_basic_auth"
	pmFieldPushUsername       = "username"
	pmFieldPushPassword       = "password"
	pmFieldFileOutputPath     = "file_output_path"
	// This distribution's own: histograms with buckets of their own.
	pmFieldTimerBuckets     = "timer_buckets"
	pmFieldTimerBucketsName = "name"
	pmFieldTimerBucketsList = "buckets"
)

// slaBucketsSeconds are the default buckets of itel_task_sla_seconds (the SLA
// stream's time from assigned to each status): 1h … 4 weeks, around the
// targets (24h started, 72h completed).
var slaBucketsSeconds = []float64{3600, 4 * 3600, 8 * 3600, 12 * 3600, 24 * 3600, 36 * 3600, 48 * 3600, 72 * 3600, 96 * 3600, 120 * 3600, 168 * 3600, 336 * 3600, 672 * 3600}

func prometheusSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Summary("Serves `/metrics` on the HTTP server for Prometheus to scrape, with every benthos and component metric.").
		Description(`Counters become Prometheus counters and gauges gauges. Timers are exported in seconds, as summaries by default or as histograms with `+"`use_histogram_timing`"+`. Metric names are kept as the components give them, so the counters of the pipelines (for example `+"`itel_worker_messages_processed_total`"+`) appear under their own names.`).
		Fields(
			service.NewBoolField(pmFieldUseHistogramTiming).
				Description("Export timers as histograms instead of summaries.").
				Advanced().Default(false),
			service.NewFloatListField(pmFieldHistogramBuckets).
				Description("Histogram buckets in seconds; empty means Prometheus's default buckets.").
				Advanced().Default([]any{}),
			service.NewObjectListField(pmFieldTimerBuckets,
				service.NewStringField(pmFieldTimerBucketsName).Description("The timer's metric name."),
				service.NewFloatListField(pmFieldTimerBucketsList).Description("Its histogram buckets, in seconds."),
			).Description("Timers exported as histograms with buckets of their own, whatever `use_histogram_timing` says: durations far from the defaults' (an SLA in hours) need them. The default gives `itel_task_sla_seconds` buckets from 1 hour to 4 weeks.").
				Default([]any{map[string]any{pmFieldTimerBucketsName: "itel_task_sla_seconds", pmFieldTimerBucketsList: toAny(slaBucketsSeconds)}}).
				Advanced(),
			service.NewObjectListField(pmFieldSummaryObjectives,
				service.NewFloatField(pmFieldObjQuantile).Description("The quantile.").Default(0.5),
				service.NewFloatField(pmFieldObjError).Description("The permitted error.").Default(0.05),
			).Description("Quantiles of the summaries that timers become.").
				Advanced().
				Default([]any{
					map[string]any{pmFieldObjQuantile: 0.5, pmFieldObjError: 0.05},
					map[string]any{pmFieldObjQuantile: 0.9, pmFieldObjError: 0.01},
					map[string]any{pmFieldObjQuantile: 0.99, pmFieldObjError: 0.001},
				}),
			service.NewBoolField(pmFieldAddProcessMetrics).
				Description("Also export process metrics (CPU, memory, file descriptors).").
				Advanced().Default(false),
			service.NewBoolField(pmFieldAddGoMetrics).
				Description("Also export Go runtime metrics (GC, goroutines).").
				Advanced().Default(false),
			service.NewURLField(pmFieldPushURL).
				Description("A Prometheus push gateway to push to, besides serving `/metrics`.").
				Advanced().Optional(),
			service.NewDurationField(pmFieldPushInterval).
				Description("How often to push to the push gateway.").
				Advanced().Optional(),
			service.NewStringField(pmFieldPushJobName).
				Description("The job name of pushed metrics.").
				Advanced().Default("benthos_push"),
			service.NewObjectField(pmFieldPushBasicAuth,
				service.NewStringField(pmFieldPushUsername).Description("User name.").Default(""),
				service.NewStringField(pmFieldPushPassword).Description("Password.").Default("").Secret(),
			).Description("Basic authentication for the push gateway.").Advanced().Optional(),
			service.NewStringField(pmFieldFileOutputPath).
				Description("A file to write every metric to, in the text format, when the service stops.").
				Advanced().Default(""),
		)
}

func init() {
	service.MustRegisterMetricsExporter("prometheus", prometheusSpec(),
		func(conf *service.ParsedConfig, log *service.Logger) (service.MetricsExporter, error) {
			return newPrometheusFromConfig(conf, log)
		})
}

// Prometheus is a benthos metrics exporter backed by its own client_golang
// registry; it serves that registry at `/metrics` through HandlerFunc.
type Prometheus struct {
	reg        *prometheus.Registry
	log        *service.Logger
	histograms bool
	buckets    []float64
	ownBuckets map[string][]float64 // timer name → its buckets (timer_buckets)
	objectives map[float64]float64

	pusher       *push.Pusher
	pushInterval time.Duration
	fileOutput   string
	stop         chan struct{}
	stopOnce     sync.Once
	pushDone     chan struct{}

	mu         sync.Mutex
	counters   map[string]*prometheus.CounterVec
	gauges     map[string]*prometheus.GaugeVec
	histVecs   map[string]*prometheus.HistogramVec
	summaryVec map[string]*prometheus.SummaryVec
}

func newPrometheusFromConfig(conf *service.ParsedConfig, log *service.Logger) (*Prometheus, error) {
	p := &Prometheus{
		reg:        prometheus.NewRegistry(),
		log:        log,
		objectives: map[float64]float64{},
		stop:       make(chan struct{}),
		counters:   map[string]*prometheus.CounterVec{},
		gauges:     map[string]*prometheus.GaugeVec{},
		histVecs:   map[string]*prometheus.HistogramVec{},
		summaryVec: map[string]*prometheus.SummaryVec{},
	}
	var err error
	if p.histograms, err = conf.FieldBool(pmFieldUseHistogramTiming); err != nil {
		return nil, err
	}
	if p.buckets, err = conf.FieldFloatList(pmFieldHistogramBuckets); err != nil {
		return nil, err
	}
	if len(p.buckets) == 0 {
		p.buckets = prometheus.DefBuckets
	}
	tbs, err := conf.FieldObjectList(pmFieldTimerBuckets)
	if err != nil {
		return nil, err
	}
	p.ownBuckets = map[string][]float64{}
	for i, tb := range tbs {
		name, err := tb.FieldString(pmFieldTimerBucketsName)
		if err != nil {
			return nil, err
		}
		bs, err := tb.FieldFloatList(pmFieldTimerBucketsList)
		if err != nil {
			return nil, err
		}
		if len(bs) == 0 || !sort.Float64sAreSorted(bs) {
			return nil, fmt.Errorf("%s[%d] (%s): buckets must be given in increasing order", pmFieldTimerBuckets, i, name)
		}
		p.ownBuckets[promName(name)] = bs
	}
	objs, err := conf.FieldObjectList(pmFieldSummaryObjectives)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		q, err := o.FieldFloat(pmFieldObjQuantile)
		if err != nil {
			return nil, err
		}
		e, err := o.FieldFloat(pmFieldObjError)
		if err != nil {
			return nil, err
		}
		p.objectives[q] = e
	}
	if on, _ := conf.FieldBool(pmFieldAddProcessMetrics); on {
		p.reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if on, _ := conf.FieldBool(pmFieldAddGoMetrics); on {
		p.reg.MustRegister(collectors.NewGoCollector())
	}
	if p.fileOutput, err = conf.FieldString(pmFieldFileOutputPath); err != nil {
		return nil, err
	}
	if conf.Contains(pmFieldPushURL) {
		u, err := conf.FieldString(pmFieldPushURL)
		if err != nil {
			return nil, err
		}
		job, err := conf.FieldString(pmFieldPushJobName)
		if err != nil {
			return nil, err
		}
		p.pusher = push.New(u, job).Gatherer(p.reg)
		if conf.Contains(pmFieldPushBasicAuth) {
			user, _ := conf.FieldString(pmFieldPushBasicAuth, pmFieldPushUsername)
			pass, _ := conf.FieldString(pmFieldPushBasicAuth, pmFieldPushPassword)
			if user != "" {
				p.pusher = p.pusher.BasicAuth(user, pass)
			}
		}
		p.pushInterval = 10 * time.Second
		if conf.Contains(pmFieldPushInterval) {
			if p.pushInterval, err = conf.FieldDuration(pmFieldPushInterval); err != nil {
				return nil, err
			}
		}
		p.pushDone = make(chan struct{})
		go p.pushLoop()
	}
	return p, nil
}

// NewPrometheus returns an exporter with default settings (summaries for
// timers), for tests and embedding.
func NewPrometheus() *Prometheus {
	return &Prometheus{
		reg:        prometheus.NewRegistry(),
		buckets:    prometheus.DefBuckets,
		ownBuckets: map[string][]float64{"itel_task_sla_seconds": slaBucketsSeconds},
		objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01, 0.99: 0.001},
		stop:       make(chan struct{}),
		counters:   map[string]*prometheus.CounterVec{},
		gauges:     map[string]*prometheus.GaugeVec{},
		histVecs:   map[string]*prometheus.HistogramVec{},
		summaryVec: map[string]*prometheus.SummaryVec{},
	}
}

// Registry returns the registry the exporter writes to.
func (p *Prometheus) Registry() *prometheus.Registry { return p.reg }

func (p *Prometheus) pushLoop() {
	defer close(p.pushDone)
	t := time.NewTicker(p.pushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := p.pusher.Push(); err != nil && p.log != nil {
				p.log.With("error", err.Error()).Warn("pushing metrics to the push gateway failed")
			}
		case <-p.stop:
			return
		}
	}
}

var invalidNameChars = regexp.MustCompile(`[^a-zA-Z0-9_:]`)

// promName makes a benthos metric path a valid Prometheus name.
func promName(name string) string {
	n := invalidNameChars.ReplaceAllString(name, "_")
	if n == "" || (n[0] >= '0' && n[0] <= '9') {
		n = "_" + n
	}
	return n
}

func labelKeys(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = promName(k)
	}
	return out
}

// register adds c, or returns the collector already registered under the same
// descriptor, so two components asking for one metric share it.
func (p *Prometheus) register(c prometheus.Collector) prometheus.Collector {
	if err := p.reg.Register(c); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			return are.ExistingCollector
		}
		if p.log != nil {
			p.log.With("error", err.Error()).Error("registering a metric failed; it will not be exported")
		}
	}
	return c
}

// NewCounterCtor returns a constructor of counters of one name.
func (p *Prometheus) NewCounterCtor(name string, keys ...string) service.MetricsExporterCounterCtor {
	name = promName(name)
	p.mu.Lock()
	vec, ok := p.counters[name]
	if !ok {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: "Benthos counter " + name}, labelKeys(keys))
		if got, ok := p.register(v).(*prometheus.CounterVec); ok {
			v = got
		}
		vec = v
		p.counters[name] = vec
	}
	p.mu.Unlock()
	return func(values ...string) service.MetricsExporterCounter {
		c, err := vec.GetMetricWithLabelValues(values...)
		if err != nil {
			return noop{}
		}
		return promCounter{c}
	}
}

// NewGaugeCtor returns a constructor of gauges of one name.
func (p *Prometheus) NewGaugeCtor(name string, keys ...string) service.MetricsExporterGaugeCtor {
	name = promName(name)
	p.mu.Lock()
	vec, ok := p.gauges[name]
	if !ok {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: "Benthos gauge " + name}, labelKeys(keys))
		if got, ok := p.register(v).(*prometheus.GaugeVec); ok {
			v = got
		}
		vec = v
		p.gauges[name] = vec
	}
	p.mu.Unlock()
	return func(values ...string) service.MetricsExporterGauge {
		g, err := vec.GetMetricWithLabelValues(values...)
		if err != nil {
			return noop{}
		}
		return promGauge{g}
	}
}

// NewTimerCtor returns a constructor of timers of one name. benthos times in
// nanoseconds: a name ending in `_ns` (benthos's own, such as
// output_latency_ns) keeps nanoseconds so the name stays true; any other name
// is observed in seconds, the Prometheus convention.
func (p *Prometheus) NewTimerCtor(name string, keys ...string) service.MetricsExporterTimerCtor {
	name = promName(name)
	scale, unit := 1e-9, "seconds"
	if strings.HasSuffix(name, "_ns") {
		scale, unit = 1, "nanoseconds"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	own, hasOwn := p.ownBuckets[name]
	if p.histograms || hasOwn {
		vec, ok := p.histVecs[name]
		if !ok {
			buckets := p.buckets
			if hasOwn {
				buckets = own
			}
			if scale == 1 {
				buckets = scaled(buckets, 1e9)
			}
			v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: "Benthos timer " + name + " (" + unit + ")", Buckets: buckets}, labelKeys(keys))
			if got, ok := p.register(v).(*prometheus.HistogramVec); ok {
				v = got
			}
			vec = v
			p.histVecs[name] = vec
		}
		return func(values ...string) service.MetricsExporterTimer {
			o, err := vec.GetMetricWithLabelValues(values...)
			if err != nil {
				return noop{}
			}
			return promTimer{o: o, scale: scale}
		}
	}
	vec, ok := p.summaryVec[name]
	if !ok {
		v := prometheus.NewSummaryVec(prometheus.SummaryOpts{Name: name, Help: "Benthos timer " + name + " (" + unit + ")", Objectives: p.objectives}, labelKeys(keys))
		if got, ok := p.register(v).(*prometheus.SummaryVec); ok {
			v = got
		}
		vec = v
		p.summaryVec[name] = vec
	}
	return func(values ...string) service.MetricsExporterTimer {
		o, err := vec.GetMetricWithLabelValues(values...)
		if err != nil {
			return noop{}
		}
		return promTimer{o: o, scale: scale}
	}
}

// HandlerFunc serves the registry; benthos mounts it at /metrics (and /stats).
func (p *Prometheus) HandlerFunc() http.HandlerFunc {
	return promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{}).ServeHTTP
}

// Close stops pushing (after a last push) and writes the file output if set.
func (p *Prometheus) Close(ctx context.Context) error {
	p.stopOnce.Do(func() { close(p.stop) })
	if p.pusher != nil {
		<-p.pushDone
		if err := p.pusher.Push(); err != nil && p.log != nil {
			p.log.With("error", err.Error()).Warn("final push of metrics failed")
		}
	}
	if p.fileOutput != "" {
		if err := prometheus.WriteToTextfile(p.fileOutput, p.reg); err != nil {
			return fmt.Errorf("writing metrics to %s: %w", p.fileOutput, err)
		}
	}
	return nil
}

type promCounter struct{ c prometheus.Counter }

func (c promCounter) Incr(n int64) {
	if n > 0 { // a Prometheus counter panics on a negative add
		c.c.Add(float64(n))
	}
}

type promGauge struct{ g prometheus.Gauge }

func (g promGauge) Set(v int64)           { g.g.Set(float64(v)) }
func (g promGauge) SetFloat64(v float64)  { g.g.Set(v) }
func (g promGauge) IncrFloat64(v float64) { g.g.Add(v) }
func (g promGauge) DecrFloat64(v float64) { g.g.Sub(v) }
func (t promTimer) Timing(nanos int64)    { t.o.Observe(float64(nanos) * t.scale) }
func (noop) Incr(int64)                   {}
func (noop) Set(int64)                    {}
func (noop) Timing(int64)                 {}

type promTimer struct {
	o     prometheus.Observer
	scale float64
}

type noop struct{}

// scaled multiplies second buckets into nanosecond ones.
func scaled(b []float64, f float64) []float64 {
	out := make([]float64, len(b))
	for i, v := range b {
		out[i] = v * f
	}
	return out
}

func toAny(fs []float64) []any {
	out := make([]any, len(fs))
	for i, f := range fs {
		out[i] = f
	}
	return out
}
