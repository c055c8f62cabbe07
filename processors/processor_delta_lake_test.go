package processors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/internal/hold"

	"github.com/redpanda-data/benthos/v4/public/service"
)

func TestDeltaLakeProcessor(t *testing.T) {
	dir := t.TempDir()
	conf, err := deltaLakeProcessorSpec().ParseYAML(fmt.Sprintf(`
table_uri: %s
create_if_missing: true
schema:
  - { name: event_id, type: string, nullable: false }
  - { name: n, type: long }
idempotency: { app_id: w, dedupe_column: event_id }
retry_max_elapsed: 1s
`, dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(body string, off int) *service.Message {
		m := service.NewMessage([]byte(body))
		m.MetaSetMut("kafka_topic", "t")
		m.MetaSetMut("kafka_partition", "0")
		m.MetaSetMut("kafka_offset", fmt.Sprint(off))
		return m
	}
	upstreamErr := mk(`{"event_id":"e9","n":9}`, 3)
	upstreamErr.SetError(fmt.Errorf("validation failed"))
	batch := service.MessageBatch{
		mk(`{"event_id":"e1","n":1}`, 0),
		mk(`{"event_id":"e2","n":"two"}`, 1),
		mk(`{"event_id":"e1","n":1}`, 2),
		upstreamErr,
	}

	p, err := newDeltaLakeProcessor(conf, service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(t.Context())
	out, err := p.ProcessBatch(t.Context(), batch)
	if err != nil {
		t.Fatal(err)
	}
	got := out[0]
	status := func(i int) string { s, _ := got[i].MetaGet(dlpMetaStatus); return s }
	version := func(i int) string { s, _ := got[i].MetaGet(dlpMetaVersion); return s }
	if status(0) != "written" || version(0) != "1" {
		t.Errorf("message 0: %s at %s", status(0), version(0))
	}
	if err := got[1].GetError(); err == nil || !strings.Contains(err.Error(), "two") || !strings.Contains(err.Error(), "column n") && !strings.Contains(err.Error(), `"n"`) {
		t.Errorf("message 1 should be rejected naming the column and value, got %v", err)
	}
	if status(2) != "duplicate" {
		t.Errorf("message 2: %s", status(2))
	}
	if got[3].GetError() == nil || got[3].GetError().Error() != "validation failed" || status(3) != "" {
		t.Errorf("an errored message must pass untouched: %v %q", got[3].GetError(), status(3))
	}
}

func TestDeltaLakeProcessorFailsBatchAfterRetries(t *testing.T) {
	conf, err := deltaLakeProcessorSpec().ParseYAML(`
table_uri: /dev/null/not-a-dir
create_if_missing: true
schema: [ { name: a, type: string } ]
retry_initial_interval: 10ms
retry_max_elapsed: 100ms
on_unavailable: error
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newDeltaLakeProcessor(conf, service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.ProcessBatch(t.Context(), service.MessageBatch{service.NewMessage([]byte(`{"a":"x"}`))})
	if err != nil {
		t.Fatal(err)
	}
	if e := out[0][0].GetError(); e == nil || !strings.Contains(e.Error(), "not-a-dir") {
		t.Fatalf("want the storage error on the message, got %v", e)
	}
}

// holdingDeltaProcessor is a delta_lake processor in hold mode over a table
// whose directory cannot be made until unblock is called.
func holdingDeltaProcessor(t *testing.T) (p *deltaLakeProcessor, unblock func()) {
	t.Helper()
	dir := t.TempDir()
	blocker := filepath.Join(dir, "blocker")
	if err := os.WriteFile(blocker, []byte("a file where the table's parent directory should be"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf, err := deltaLakeProcessorSpec().ParseYAML(fmt.Sprintf(`
table_uri: %s
create_if_missing: true
schema: [ { name: a, type: string } ]
hold_initial_interval: 20ms
hold_max_interval: 50ms
`, filepath.Join(blocker, "table")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, err = newDeltaLakeProcessor(conf, service.MockResources()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p, func() {
		if err := os.Remove(blocker); err != nil {
			t.Error(err)
		}
	}
}

func TestDeltaLakeProcessorHoldsUntilStorageIsBack(t *testing.T) {
	p, unblock := holdingDeltaProcessor(t)
	time.AfterFunc(300*time.Millisecond, unblock)
	start := time.Now()
	out, err := p.ProcessBatch(t.Context(), service.MessageBatch{service.NewMessage([]byte(`{"a":"x"}`))})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Fatalf("the batch left after %v, before the storage was back", time.Since(start))
	}
	if e := out[0][0].GetError(); e != nil {
		t.Fatalf("a storage failure must not fail the record: %v", e)
	}
	if s, _ := out[0][0].MetaGet(dlpMetaStatus); s != "written" {
		t.Fatalf("status %q, want written", s)
	}
}

func TestDeltaLakeProcessorHoldInterruptedFailsNothing(t *testing.T) {
	p, _ := holdingDeltaProcessor(t)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	msg := service.NewMessage([]byte(`{"a":"x"}`))
	out, err := p.ProcessBatch(ctx, service.MessageBatch{msg})
	if !errors.Is(err, hold.ErrInterrupted) || out != nil {
		t.Fatalf("want no batch and ErrInterrupted when the stream stops during a hold, got %v, %v", out, err)
	}
	if msg.GetError() != nil {
		t.Fatalf("the held message was failed: %v", msg.GetError())
	}
}
