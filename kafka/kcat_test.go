package kafka

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/kafka/kafkatest"
)

func kcatPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not on PATH")
	}
	return p
}

// TestKafkaFranzKcatProducesInputReads has kcat produce keyed records with a
// header, read back by our input.
func TestKafkaFranzKcatProducesInputReads(t *testing.T) {
	kcat := kcatPath(t)
	addr := startCluster(t, 1, "fromkcat")

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, "-b", addr, "-P", "-t", "fromkcat", "-p", "0", "-K", ":", "-H", "origin=kcat", "-H", "trace=t1")
	cmd.Stdin = strings.NewReader("k1:hello\nk2:world\nk1:again\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat producing: %v: %s", err, out)
	}

	rdr := newTestReader(t, fmt.Sprintf("seed_brokers: [ %s ]\ntopics: [ fromkcat ]\nfetch_max_wait: 100ms\n", addr))
	col := kafkatest.NewCollector()
	for col.Count() < 3 {
		batch, ack, err := rdr.ReadBatch(ctx)
		if err != nil {
			t.Fatalf("reading: %v", err)
		}
		col.Add(t, batch)
		_ = ack(ctx, nil)
	}
	var got []string
	for _, r := range col.Snapshot() {
		got = append(got, fmt.Sprintf("%s=%s origin=%v trace=%v", r.Key, r.Value, r.Meta["origin"], r.Meta["trace"]))
	}
	want := []string{"k1=hello origin=kcat trace=t1", "k2=world origin=kcat trace=t1", "k1=again origin=kcat trace=t1"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestKafkaFranzOutputKcatReads has our output produce keyed records with
// headers, read back by kcat.
func TestKafkaFranzOutputKcatReads(t *testing.T) {
	kcat := kcatPath(t)
	addr := startCluster(t, 1, "tokcat")

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	kafkatest.RunProducer(t, `
generate:
  count: 3
  interval: ""
  mapping: |
    let n = counter()
    root = "msg-%d".format($n)
    meta key = "key-%d".format($n)
    meta x_origin = "claimx"
`, fmt.Sprintf(`
kafka_franz:
  seed_brokers: [ %s ]
  topic: tokcat
  key: ${! meta("key") }
  max_in_flight: 1
  metadata:
    include_prefixes: [ "x_" ]
`, addr), 30*time.Second)

	out, err := exec.CommandContext(ctx, kcat, "-b", addr, "-C", "-t", "tokcat", "-o", "beginning", "-e", "-q", "-f", "%k|%h|%s\n").Output()
	if err != nil {
		t.Fatalf("kcat consuming: %v", err)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []string{"key-1|x_origin=claimx|msg-1", "key-2|x_origin=claimx|msg-2", "key-3|x_origin=claimx|msg-3"}
	if !slices.Equal(got, want) {
		t.Errorf("kcat read %q, want %q", got, want)
	}
}
