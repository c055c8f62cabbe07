package kafka

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
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
	col := newCollector()
	for col.count() < 3 {
		batch, ack, err := rdr.ReadBatch(ctx)
		if err != nil {
			t.Fatalf("reading: %v", err)
		}
		col.add(t, batch)
		_ = ack(ctx, nil)
	}
	var got []string
	for _, r := range col.snapshot() {
		got = append(got, fmt.Sprintf("%s=%s origin=%v trace=%v", r.key, r.value, r.meta["origin"], r.meta["trace"]))
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

	b := service.NewStreamBuilder()
	if err := b.SetLoggerYAML("level: warn"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddInputYAML(`
generate:
  count: 3
  interval: ""
  mapping: |
    let n = counter()
    root = "msg-%d".format($n)
    meta key = "key-%d".format($n)
    meta x_origin = "claimx"
`); err != nil {
		t.Fatal(err)
	}
	if err := b.AddOutputYAML(fmt.Sprintf(`
kafka_franz:
  seed_brokers: [ %s ]
  topic: tokcat
  key: ${! meta("key") }
  max_in_flight: 1
  metadata:
    include_prefixes: [ "x_" ]
`, addr)); err != nil {
		t.Fatal(err)
	}
	s, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatalf("running producer stream: %v", err)
	}

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
