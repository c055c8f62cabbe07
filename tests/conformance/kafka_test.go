//go:build conformance

package conformance

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/claimx/claimx-connect/kafka/kafkatest"

	_ "github.com/claimx/claimx-connect/kafka"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

// kafkaBootstrap returns the address of the real broker started by
// scripts/kafka.sh, after checking that it answers.
func kafkaBootstrap(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("KAFKA_BOOTSTRAP")
	if addr == "" {
		addr = "127.0.0.1:29092"
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		requireIntegration(t, fmt.Sprintf("no Kafka at %s (scripts/kafka.sh start): %v", addr, err))
	}
	return addr
}

func adminClient(t *testing.T, addr string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

var invalidTopicChars = regexp.MustCompile(`[^a-z0-9._-]+`)

// newTopic creates a topic with a name unique to this run and deletes it
// when the test ends.
func newTopic(t *testing.T, addr string, partitions int32) string {
	t.Helper()
	name := fmt.Sprintf("conf-%s-%d", invalidTopicChars.ReplaceAllString(strings.ToLower(t.Name()), "-"), time.Now().UnixNano())
	adm := adminClient(t, addr)
	resp, err := adm.CreateTopic(t.Context(), partitions, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("creating topic %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(ctx, name)
	})
	return name
}

// produceWithOutput runs our kafka_franz output over n generated messages:
// value {"n":i}, key k<i%7>, header x_trace=trace-<i>. One batch in flight,
// so the order of a key's messages is the order generated (benthos sends
// batches in flight concurrently); a period flushes the last partial batch
// (benthos does not flush a count-only batch when the input ends).
func produceWithOutput(t *testing.T, addr, topic string, n int) {
	t.Helper()
	kafkatest.RunProducer(t, fmt.Sprintf(`
generate:
  count: %d
  interval: ""
  mapping: |
    let n = counter()
    root.n = $n
    meta key = "k%%d".format($n %% 7)
    meta x_trace = "trace-%%d".format($n)
    meta x_unicode = "prüfen ✓ 🚀"
    meta other = "not a header"
`, n), fmt.Sprintf(`
kafka_franz:
  seed_brokers: [ %s ]
  topic: %s
  key: ${! meta("key") }
  max_in_flight: 1
  compression: zstd
  batching:
    count: 25
    period: 100ms
  metadata:
    include_prefixes: [ "x_" ]
`, addr, topic), 60*time.Second)
}

// TestKafkaRoundtrip: our output writes to real Kafka, our input reads it
// back in a consumer group: every message once, keys, headers, a key's
// messages in one partition and in order, and the group's committed offsets
// at the end of each partition.
func TestKafkaRoundtrip(t *testing.T) {
	addr := kafkaBootstrap(t)
	topic := newTopic(t, addr, 3)
	const n = 300
	produceWithOutput(t, addr, topic, n)

	group := topic + "-g"
	col := kafkatest.NewCollector()
	kafkatest.StartStream(t, fmt.Sprintf(`
kafka_franz:
  seed_brokers: [ %s ]
  topics: [ %s ]
  consumer_group: %s
  start_offset: earliest
  commit_period: 200ms
  batching:
    count: 16
    period: 100ms
`, addr, topic, group), func(_ context.Context, batch service.MessageBatch) error {
		col.Add(t, batch)
		return nil
	})
	kafkatest.WaitFor(t, 60*time.Second, "all messages", func() bool { return col.Distinct() == n })

	lastN := map[string]int{}
	partOfKey := map[string]int64{}
	perPartition := map[int64]int64{}
	for _, r := range col.Snapshot() {
		i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(r.Value, `{"n":`), "}"))
		if err != nil {
			t.Fatalf("value %q: %v", r.Value, err)
		}
		if want := fmt.Sprintf("k%d", i%7); r.Key != want {
			t.Errorf("message %d: key %q, want %q", i, r.Key, want)
		}
		if got := r.Meta["x_trace"]; got != fmt.Sprintf("trace-%d", i) {
			t.Errorf("message %d: header x_trace %v", i, got)
		}
		if got := r.Meta["x_unicode"]; got != "prüfen ✓ 🚀" {
			t.Errorf("message %d: header x_unicode %v", i, got)
		}
		if _, ok := r.Meta["other"]; ok {
			t.Errorf("message %d: metadata outside include_prefixes became a header", i)
		}
		if r.Meta["kafka_topic"] != topic {
			t.Errorf("message %d: kafka_topic %v", i, r.Meta["kafka_topic"])
		}
		if p, ok := partOfKey[r.Key]; ok && p != r.Partition {
			t.Errorf("key %s in partitions %d and %d", r.Key, p, r.Partition)
		}
		partOfKey[r.Key] = r.Partition
		if prev, ok := lastN[r.Key]; ok && i <= prev {
			t.Errorf("key %s: message %d after %d", r.Key, i, prev)
		}
		lastN[r.Key] = i
		if r.Offset+1 > perPartition[r.Partition] {
			perPartition[r.Partition] = r.Offset + 1
		}
	}
	if len(partOfKey) != 7 {
		t.Errorf("%d distinct keys, want 7", len(partOfKey))
	}
	adm := adminClient(t, addr)
	kafkatest.WaitFor(t, 20*time.Second, "offsets committed at the end of every partition", func() bool {
		offs, err := adm.FetchOffsets(t.Context(), group)
		if err != nil {
			return false
		}
		for p, end := range perPartition {
			o, ok := offs.Lookup(topic, int32(p))
			if !ok || o.At != end {
				return false
			}
		}
		return true
	})
	t.Logf("%d messages over partitions (end offsets) %v", n, perPartition)
}

// TestKafkaAtLeastOnceRestart: a member stops while it holds messages it
// has not acknowledged; the group's committed offset stays below them and
// the next member gets exactly those again.
func TestKafkaAtLeastOnceRestart(t *testing.T) {
	addr := kafkaBootstrap(t)
	topic := newTopic(t, addr, 1)
	produceWithOutput(t, addr, topic, 100)
	group := topic + "-g"
	conf := fmt.Sprintf(`
kafka_franz:
  seed_brokers: [ %s ]
  topics: [ %s ]
  consumer_group: %s
  start_offset: earliest
  commit_period: 100ms
  batching:
    count: 10
`, addr, topic, group)

	var acked atomic.Int64
	blocked := make(chan struct{}, 10)
	first := kafkatest.StartStream(t, conf, func(ctx context.Context, batch service.MessageBatch) error {
		if off, _ := batch[0].MetaGetMut("kafka_offset"); off.(int64) < 50 {
			acked.Add(int64(len(batch)))
			return nil
		}
		blocked <- struct{}{} // never acknowledged: held until the stream stops
		<-ctx.Done()
		return ctx.Err()
	})
	kafkatest.WaitFor(t, 30*time.Second, "50 acks and a held batch", func() bool { return acked.Load() == 50 && len(blocked) > 0 })
	// Let a commit period pass so offset 50 is committed, then stop.
	time.Sleep(500 * time.Millisecond)
	first.Stop(t, 2*time.Second)

	adm := adminClient(t, addr)
	offs, err := adm.FetchOffsets(t.Context(), group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(topic, 0); !ok || o.At != 50 {
		t.Fatalf("committed offset %v (found %v) after acknowledging offsets 0-49, want 50", o.At, ok)
	}

	col := kafkatest.NewCollector()
	second := kafkatest.StartStream(t, conf, func(_ context.Context, batch service.MessageBatch) error {
		col.Add(t, batch)
		return nil
	})
	kafkatest.WaitFor(t, 30*time.Second, "the 50 unacknowledged messages again", func() bool { return col.Distinct() == 50 })
	time.Sleep(300 * time.Millisecond)
	for _, r := range col.Snapshot() {
		if r.Offset < 50 {
			t.Errorf("acknowledged offset %d delivered again", r.Offset)
		}
		if want := fmt.Sprintf(`{"n":%d}`, r.Offset+1); r.Value != want {
			t.Errorf("offset %d: value %s, want %s", r.Offset, r.Value, want)
		}
	}
	second.Stop(t, 5*time.Second)
	offs, err = adm.FetchOffsets(t.Context(), group)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := offs.Lookup(topic, 0); o.At != 100 {
		t.Errorf("committed offset %d after the second member acknowledged everything, want 100", o.At)
	}
}

// TestKafkaKcat: kcat (librdkafka) reads what our output wrote, and our
// input reads what kcat wrote, keys and headers included.
func TestKafkaKcat(t *testing.T) {
	addr := kafkaBootstrap(t)
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		requireIntegration(t, "kcat is not on PATH (scripts/setup.sh installs it)")
	}
	topic := newTopic(t, addr, 1)
	produceWithOutput(t, addr, topic, 5)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcat, "-b", addr, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
		"-f", "%k|%h|%s|%p|%o\n").Output()
	if err != nil {
		t.Fatalf("kcat consuming: %v", err)
	}
	var want []string
	for i := 1; i <= 5; i++ {
		want = append(want, fmt.Sprintf(`k%d|x_trace=trace-%d,x_unicode=prüfen ✓ 🚀|{"n":%d}|0|%d`, i%7, i, i, i-1))
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i := range got {
		// kcat prints headers in the order they are on the record; ours are
		// sorted by name, but do not depend on it.
		parts := strings.Split(got[i], "|")
		if len(parts) == 5 {
			hs := strings.Split(parts[1], ",")
			slices.Sort(hs)
			parts[1] = strings.Join(hs, ",")
			got[i] = strings.Join(parts, "|")
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("kcat read\n%q\nwant\n%q", got, want)
	}

	in := newTopic(t, addr, 1)
	cmd := exec.CommandContext(ctx, kcat, "-b", addr, "-P", "-t", in, "-p", "0", "-K", ":", "-H", "origin=kcat", "-H", "trace=t1")
	cmd.Stdin = strings.NewReader("k1:hello\nk2:wörld ✓\nk1:again\n")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat producing: %v: %s", err, b)
	}
	col := kafkatest.NewCollector()
	kafkatest.StartStream(t, fmt.Sprintf(`
kafka_franz:
  seed_brokers: [ %s ]
  topics: [ %s ]
  consumer_group: %s-g
  start_offset: earliest
`, addr, in, in), func(_ context.Context, batch service.MessageBatch) error {
		col.Add(t, batch)
		return nil
	})
	kafkatest.WaitFor(t, 30*time.Second, "kcat's 3 records", func() bool { return col.Distinct() == 3 })
	var read []string
	for _, r := range col.Snapshot() {
		read = append(read, fmt.Sprintf("%s=%s origin=%v trace=%v", r.Key, r.Value, r.Meta["origin"], r.Meta["trace"]))
	}
	wantIn := []string{"k1=hello origin=kcat trace=t1", "k2=wörld ✓ origin=kcat trace=t1", "k1=again origin=kcat trace=t1"}
	if !slices.Equal(read, wantIn) {
		t.Errorf("input read %q, want %q", read, wantIn)
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// claimxBinary builds the claimx-connect command once per test run.
func claimxBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "claimx-conformance-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "claimx-connect")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// TestTopicsApply runs `claimx-connect topics apply` against real Kafka:
// creates topics (replication factor 3 capped to the single broker), raises
// partitions and changes a config, then finds nothing to change; without
// --cap-replication the same file is refused.
func TestTopicsApply(t *testing.T) {
	addr := kafkaBootstrap(t)
	bin := claimxBinary(t)
	adm := adminClient(t, addr)
	base := fmt.Sprintf("conf-apply-%d", time.Now().UnixNano())
	a, b := base+".tracking", base+".errors"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(ctx, a, b)
	})
	file := filepath.Join(t.TempDir(), "topics.yaml")
	writeTopics := func(partitions int, retention string) {
		t.Helper()
		yaml := fmt.Sprintf(`topics:
  - name: %s
    partitions: %d
    replication_factor: ${KAFKA_REPLICATION_FACTOR:3}
    configs: { retention.ms: "%s", cleanup.policy: delete }
  - name: %s
    partitions: 1
    replication_factor: 3
    configs: { retention.ms: "2592000000" }
`, a, partitions, retention, b)
		if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	apply := func(args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"topics", "apply", "--brokers", addr}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	describe := func(topic string, wantPartitions int) (int, int, string) {
		t.Helper()
		// Created topics and partitions reach the broker's metadata a
		// moment after the admin request returns: wait up to 15 s for the
		// expected partition count, then report what is there.
		var d kadm.TopicDetail
		deadline := time.Now().Add(15 * time.Second)
		for {
			td, err := adm.ListTopics(t.Context(), topic)
			if err == nil {
				d = td[topic]
			}
			if (err == nil && d.Err == nil && len(d.Partitions) == wantPartitions) || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if d.Err != nil || len(d.Partitions) == 0 {
			t.Fatalf("describing %s: %v", topic, d.Err)
		}
		rcs, err := adm.DescribeTopicConfigs(t.Context(), topic)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rcs.On(topic, nil)
		if err != nil {
			t.Fatal(err)
		}
		ret := ""
		for _, c := range rc.Configs {
			if c.Key == "retention.ms" && c.Value != nil {
				ret = *c.Value
			}
		}
		return len(d.Partitions), len(d.Partitions[0].Replicas), ret
	}

	writeTopics(3, "604800000")
	if out, err := apply(file); err == nil || !strings.Contains(out, "replication_factor 3 exceeds") {
		t.Fatalf("without --cap-replication: err %v, output:\n%s", err, out)
	}
	if out, err := apply(file, "--dry-run", "--cap-replication"); err != nil || !strings.Contains(out, "(dry run) created") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if td, _ := adm.ListTopics(t.Context(), a); td[a].Err == nil {
		t.Fatalf("dry run created %s", a)
	}
	out, err := apply(file, "--cap-replication")
	if err != nil || strings.Count(out, "created") != 2 || !strings.Contains(out, "capped to 1") {
		t.Fatalf("first apply: %v\n%s", err, out)
	}
	if p, rf, ret := describe(a, 3); p != 3 || rf != 1 || ret != "604800000" {
		t.Errorf("%s after create: %d partitions, rf %d, retention.ms %q", a, p, rf, ret)
	}
	if p, rf, ret := describe(b, 1); p != 1 || rf != 1 || ret != "2592000000" {
		t.Errorf("%s after create: %d partitions, rf %d, retention.ms %q", b, p, rf, ret)
	}

	writeTopics(6, "86400000")
	out, err = apply(file, "--cap-replication")
	if err != nil || !strings.Contains(out, "changed   "+a) || !strings.Contains(out, "partitions 3 -> 6") ||
		!strings.Contains(out, "retention.ms 604800000 -> 86400000") || !strings.Contains(out, "unchanged "+b) {
		t.Fatalf("second apply: %v\n%s", err, out)
	}
	if p, _, ret := describe(a, 6); p != 6 || ret != "86400000" {
		t.Errorf("%s after update: %d partitions, retention.ms %q", a, p, ret)
	}
	out, err = apply(file, "--cap-replication")
	if err != nil || strings.Count(out, "unchanged") != 2 {
		t.Fatalf("third apply must change nothing: %v\n%s", err, out)
	}

	writeTopics(2, "86400000")
	if out, err := apply(file, "--cap-replication"); err == nil || !strings.Contains(out, "cannot remove partitions") {
		t.Errorf("shrinking partitions: err %v\n%s", err, out)
	}
}
