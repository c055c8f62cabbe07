package kafka

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// The restart harness (issue 13): how long a group member that is SIGKILLed
// and restarted at once sits idle before it processes a record again, with a
// dynamic member (instance_id unset) and a static one (instance_id set). Not
// run in CI: it needs a real Kafka (kfake does not rebalance as Kafka does)
// and a minute per dynamic restart.
//
//	CLAIMX_KAFKA_PORT=39092 CLAIMX_KAFKA_CONTROLLER_PORT=39093 scripts/kafka.sh start
//	CLAIMX_RESTART_KAFKA=127.0.0.1:39092 go test -run TestRestartIdleTime -v -timeout 30m ./kafka/
//
// Environment: CLAIMX_RESTART_ROUNDS (restarts per mode, default 2),
// CLAIMX_RESTART_SESSION_TIMEOUT and CLAIMX_RESTART_REBALANCE_TIMEOUT (the
// input's session_timeout and rebalance_timeout; default the input's defaults,
// 1m and 45s, as in pipelines/*.yaml).
//
// A group of three members on a topic of three partitions, records produced
// to every partition every 20 ms. Two members run in this process (the
// kafka_franz reader itself) and tell whether the group rebalanced (their
// generation); the third is this test binary re-run as a child process
// (TestRestartIdleChild: a benthos stream with the kafka_franz input) that
// prints a line when it processes its first record. The figure is the time
// from starting the restarted process to that line.

const (
	restartEnvKafka   = "CLAIMX_RESTART_KAFKA"
	restartEnvChild   = "CLAIMX_RESTART_CHILD"
	restartEnvTopic   = "CLAIMX_RESTART_TOPIC"
	restartEnvGroup   = "CLAIMX_RESTART_GROUP"
	restartEnvID      = "CLAIMX_RESTART_INSTANCE_ID"
	restartEnvSession = "CLAIMX_RESTART_SESSION_TIMEOUT"
	restartEnvRebal   = "CLAIMX_RESTART_REBALANCE_TIMEOUT"
	restartFirstLine  = "FIRST_RECORD"
)

// restartInputYAML is the kafka_franz input of every member: the worker's
// settings that matter for a restart, the group timeouts from the
// environment or the input's defaults.
func restartInputYAML(brokers, topic, group, instanceID string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed_brokers: [ %s ]\ntopics: [ %s ]\nconsumer_group: %s\n", brokers, topic, group)
	b.WriteString("start_offset: earliest\nfetch_max_wait: 500ms\ncommit_period: 1s\n")
	if instanceID != "" {
		fmt.Fprintf(&b, "instance_id: %s\n", instanceID)
	}
	if v := os.Getenv(restartEnvSession); v != "" {
		fmt.Fprintf(&b, "session_timeout: %s\n", v)
	}
	if v := os.Getenv(restartEnvRebal); v != "" {
		fmt.Fprintf(&b, "rebalance_timeout: %s\n", v)
	}
	return b.String()
}

// TestRestartIdleChild is the restarted member, run by TestRestartIdleTime
// as a child process; it does nothing otherwise.
func TestRestartIdleChild(t *testing.T) {
	if os.Getenv(restartEnvChild) != "1" {
		t.Skip("child process of TestRestartIdleTime")
	}
	b := service.NewStreamBuilder()
	if err := b.SetLoggerYAML("level: warn"); err != nil {
		t.Fatal(err)
	}
	in := restartInputYAML(os.Getenv(restartEnvKafka), os.Getenv(restartEnvTopic), os.Getenv(restartEnvGroup), os.Getenv(restartEnvID))
	if err := b.AddInputYAML("kafka_franz:\n" + indent(in, "  ")); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	if err := b.AddBatchConsumerFunc(func(_ context.Context, batch service.MessageBatch) error {
		once.Do(func() {
			p, _ := batch[0].MetaGetMut("kafka_partition")
			fmt.Fprintf(os.Stdout, "%s partition=%v\n", restartFirstLine, p)
			_ = os.Stdout.Sync()
		})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	// Killed by the parent; the deadline only bounds an orphan.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	_ = s.Run(ctx)
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

// restartChild is a running child member.
type restartChild struct {
	cmd    *exec.Cmd
	start  time.Time
	first  chan time.Time // receives when the first record is processed
	stderr *bytes.Buffer
	done   chan struct{}
}

func startRestartChild(t *testing.T, brokers, topic, group, instanceID string) *restartChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRestartIdleChild$", "-test.count=1", "-test.timeout=20m")
	cmd.Env = append(os.Environ(), restartEnvChild+"=1", restartEnvKafka+"="+brokers,
		restartEnvTopic+"="+topic, restartEnvGroup+"="+group, restartEnvID+"="+instanceID)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &restartChild{cmd: cmd, first: make(chan time.Time, 1), stderr: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = c.stderr
	c.start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), restartFirstLine) {
				c.first <- time.Now()
			}
		}
		_ = cmd.Wait()
	}()
	return c
}

// kill SIGKILLs the child and waits for it to be gone.
func (c *restartChild) kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// restartMember is an in-process member of the group: the kafka_franz
// reader, acknowledging everything it reads.
type restartMember struct {
	r    *franzReader
	read atomic.Int64
	stop context.CancelFunc
	done chan struct{}
}

func startRestartMember(t *testing.T, brokers, topic, group, instanceID string) *restartMember {
	t.Helper()
	pConf, err := franzKafkaInputSpec().ParseYAML(restartInputYAML(brokers, topic, group, instanceID), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := newFranzReaderFromConfig(pConf, service.MockResources())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	m := &restartMember{r: r, stop: stop, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			batch, ack, err := r.ReadBatch(ctx)
			if err != nil {
				if errors.Is(err, service.ErrNotConnected) {
					_ = r.Connect(ctx)
				}
				continue
			}
			m.read.Add(int64(len(batch)))
			_ = ack(ctx, nil)
		}
	}()
	return m
}

func (m *restartMember) generation() int32 {
	m.r.mu.Lock()
	cl := m.r.client
	m.r.mu.Unlock()
	if cl == nil {
		return -1
	}
	_, gen := cl.GroupMetadata()
	return gen
}

func (m *restartMember) close() {
	m.stop()
	<-m.done
	_ = m.r.Close(context.Background())
}

type restartFigure struct {
	mode       string
	round      int
	idle       time.Duration
	rebalanced bool
}

func TestRestartIdleTime(t *testing.T) {
	brokers := os.Getenv(restartEnvKafka)
	if brokers == "" || os.Getenv(restartEnvChild) == "1" {
		t.Skipf("set %s=host:port of a real Kafka to measure restarts", restartEnvKafka)
	}
	rounds := 2
	if v := os.Getenv("CLAIMX_RESTART_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CLAIMX_RESTART_ROUNDS=%q", v)
		}
		rounds = n
	}
	session, rebalance := os.Getenv(restartEnvSession), os.Getenv(restartEnvRebal)
	if session == "" {
		session = "1m (input default)"
	}
	if rebalance == "" {
		rebalance = "45s (input default)"
	}

	var figures []restartFigure
	for _, mode := range []string{"dynamic", "static"} {
		figures = append(figures, measureRestarts(t, brokers, mode, rounds)...)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nrestart of 1 of 3 members (SIGKILL, restarted at once), Kafka %s, session_timeout %s, rebalance_timeout %s, heartbeat_interval 3s\n", brokers, session, rebalance)
	fmt.Fprintf(&b, "%-8s %-6s %-28s %s\n", "mode", "round", "restart -> first record (s)", "group rebalanced")
	for _, f := range figures {
		fmt.Fprintf(&b, "%-8s %-6d %-28.2f %v\n", f.mode, f.round, f.idle.Seconds(), f.rebalanced)
	}
	t.Log(b.String())
	fmt.Print(b.String())
}

func measureRestarts(t *testing.T, brokers, mode string, rounds int) []restartFigure {
	topic := fmt.Sprintf("claimx-restart-%s-%d", mode, time.Now().UnixNano())
	group := topic
	ids := [3]string{}
	if mode == "static" {
		ids = [3]string{"member-0", "member-1", "member-2"}
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(t.Context(), 3, 1, nil, topic); err != nil {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
	defer func() { _, _ = adm.DeleteTopics(context.Background(), topic) }()

	// Records on every partition every 20 ms, so that a member with a
	// partition processes one within milliseconds.
	prodCtx, stopProducing := context.WithCancel(context.Background())
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-prodCtx.Done():
				return
			case <-tick.C:
			}
			for p := int32(0); p < 3; p++ {
				cl.Produce(prodCtx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(strconv.Itoa(n))}, nil)
			}
		}
	}()
	defer func() { stopProducing(); <-prodDone }()

	survivors := []*restartMember{
		startRestartMember(t, brokers, topic, group, ids[0]),
		startRestartMember(t, brokers, topic, group, ids[1]),
	}
	defer func() {
		for _, m := range survivors {
			m.close()
		}
	}()
	child := startRestartChild(t, brokers, topic, group, ids[2])
	defer func() { child.kill() }()

	waitFirst := func(c *restartChild, within time.Duration) time.Time {
		select {
		case at := <-c.first:
			return at
		case <-c.done:
			t.Fatalf("%s member exited:\n%s", mode, c.stderr.String())
		case <-time.After(within):
			t.Fatalf("%s member processed nothing within %v:\n%s", mode, within, c.stderr.String())
		}
		return time.Time{}
	}
	waitFirst(child, 2*time.Minute)

	var figures []restartFigure
	for round := 1; round <= rounds; round++ {
		// A stable group: every member has consumed, and a few heartbeats
		// and commits have gone by.
		deadline := time.Now().Add(2 * time.Minute)
		for survivors[0].read.Load() == 0 || survivors[1].read.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the in-process members consumed nothing", mode)
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(10 * time.Second)
		gens := []int32{survivors[0].generation(), survivors[1].generation()}

		child.kill()
		child = startRestartChild(t, brokers, topic, group, ids[2])
		at := waitFirst(child, 3*time.Minute)
		f := restartFigure{mode: mode, round: round, idle: at.Sub(child.start)}
		// The survivors learn of a rebalance within a heartbeat interval.
		time.Sleep(4 * time.Second)
		f.rebalanced = survivors[0].generation() != gens[0] || survivors[1].generation() != gens[1]
		t.Logf("%s round %d: restart -> first record %.2f s, group rebalanced: %v (generations %v -> [%d %d])",
			mode, round, f.idle.Seconds(), f.rebalanced, gens, survivors[0].generation(), survivors[1].generation())
		figures = append(figures, f)
	}
	return figures
}
