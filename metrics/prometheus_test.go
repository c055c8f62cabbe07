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
