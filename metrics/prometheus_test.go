package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
)

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics answered %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestExporterTypes(t *testing.T) {
	p := NewPrometheus()
	p.NewCounterCtor("itel_worker_messages_consumed_total", "label")("worker").Incr(3)
	p.NewCounterCtor("itel_worker_messages_consumed_total", "label")("worker").Incr(2)
	p.NewCounterCtor("negative_is_ignored")().Incr(-1)
	p.NewGaugeCtor("kafka_lag", "topic")("t").Set(42)
	p.NewTimerCtor("itel_worker_claimx_api_latency_seconds")().Timing(int64(1500 * time.Millisecond))
	p.NewCounterCtor("bad.name-with/chars")().Incr(1)
	body := scrape(t, p.HandlerFunc())
	for _, want := range []string{
		`itel_worker_messages_consumed_total{label="worker"} 5`,
		`kafka_lag{topic="t"} 42`,
		`itel_worker_claimx_api_latency_seconds_sum 1.5`,
		`itel_worker_claimx_api_latency_seconds_count 1`,
		`bad_name_with_chars 1`,
		`negative_is_ignored 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %q in:\n%s", want, body)
		}
	}
}

func TestExporterInStream(t *testing.T) {
	mux := http.NewServeMux()
	b := service.NewStreamBuilder()
	b.SetHTTPMux(mux)
	if err := b.SetYAML(`
input:
  label: gen
  generate: {count: 7, interval: "", mapping: 'root = {"n": counter()}'}
pipeline:
  processors:
    - metric: {type: counter, name: itel_worker_messages_consumed_total}
output:
  label: sink
  drop: {}
`); err != nil {
		t.Fatal(err)
	}
	if err := b.SetMetricsYAML(`prometheus: {use_histogram_timing: true}`); err != nil {
		t.Fatal(err)
	}
	s, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	body := scrape(t, mux)
	for _, re := range []string{
		`(?m)^input_received\{label="gen",path="root.input"\} 7$`,
		`(?m)^output_sent\{label="sink",path="root.output"\} 7$`,
		`(?m)^itel_worker_messages_consumed_total\{label="",path="root.pipeline.processors.0"\} 7$`,
		`(?m)^output_latency_ns_bucket\{label="sink",path="root.output",le="5e\+06"\}`,
	} {
		if !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("no line matching %s in:\n%s", re, body)
		}
	}
}

// TestExporterTimerBuckets: a timer named in timer_buckets is a histogram with
// its own buckets (the SLA's hours by default) even when timers are
// summaries; buckets out of order are refused.
func TestExporterTimerBuckets(t *testing.T) {
	for _, c := range []struct {
		name, metricsYAML string
		want              []string
	}{
		{"default: the SLA histogram", `prometheus: {}`, []string{
			`(?m)^itel_task_sla_seconds_bucket\{label="",path="root.pipeline.processors.0",status="COMPLETED",le="86400"\} 1$`,
			`(?m)^itel_task_sla_seconds_bucket\{label="",path="root.pipeline.processors.0",status="COMPLETED",le="259200"\} 2$`,
			`(?m)^itel_task_sla_seconds_sum\{label="",path="root.pipeline.processors.0",status="COMPLETED"\} 943200$`,
			`(?m)^output_latency_ns\{label="sink",path="root.output",quantile="0.5"\}`,
		}},
		{"configured", `prometheus: {timer_buckets: [{name: itel_task_sla_seconds, buckets: [100000, 300000]}]}`, []string{
			`(?m)^itel_task_sla_seconds_bucket\{label="",path="root.pipeline.processors.0",status="COMPLETED",le="100000"\} 1$`,
			`(?m)^itel_task_sla_seconds_bucket\{label="",path="root.pipeline.processors.0",status="COMPLETED",le="300000"\} 2$`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := service.NewStreamBuilder()
			mux := http.NewServeMux()
			b.SetHTTPMux(mux)
			// 20h, 50h and 8 days, as the SLA stream times them (nanoseconds).
			if err := b.SetYAML(`
input:
  generate: {count: 3, interval: "", mapping: 'root = {"h": [20, 50, 8].index(counter() - 1) * if counter() == 3 { 24 } else { 1 }}'}
pipeline:
  processors:
    - metric: {type: timing, name: itel_task_sla_seconds, labels: {status: COMPLETED}, value: '${! (json("h") * 3600000000000).int64() }'}
output:
  label: sink
  drop: {}
`); err != nil {
				t.Fatal(err)
			}
			if err := b.SetMetricsYAML(c.metricsYAML); err != nil {
				t.Fatal(err)
			}
			s, err := b.Build()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			if err := s.Run(ctx); err != nil {
				t.Fatal(err)
			}
			body := scrape(t, mux)
			for _, re := range c.want {
				if !regexp.MustCompile(re).MatchString(body) {
					t.Errorf("no line matching %s in:\n%s", re, body)
				}
			}
		})
	}
	conf, err := prometheusSpec().ParseYAML(`timer_buckets: [{name: x, buckets: [3, 1]}]`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newPrometheusFromConfig(conf, nil); err == nil || !strings.Contains(err.Error(), "timer_buckets[0] (x): buckets must be given in increasing order") {
		t.Fatalf("buckets out of order: %v", err)
	}
}
