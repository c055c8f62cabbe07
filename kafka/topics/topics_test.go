package topics

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const sample = `
topics:
  - name: itel.cabinet.task.tracking
    partitions: 3
    replication_factor: 3
    configs: { retention.ms: "604800000" }
  - name: itel.cabinet.task.tracking.errors
    partitions: 1
    replication_factor: 1
    configs: { retention.ms: "${ERRORS_RETENTION:2592000000}" }
`

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
		want    int
	}{
		{name: "topics key", in: sample, want: 2},
		{name: "bare list", in: "- {name: a, partitions: 1, replication_factor: 1}\n", want: 1},
		{name: "missing name", in: "- {partitions: 1, replication_factor: 1}\n", wantErr: "name is required"},
		{name: "zero partitions", in: "- {name: a, partitions: 0, replication_factor: 1}\n", wantErr: "partitions must be at least 1"},
		{name: "zero replication", in: "- {name: a, partitions: 1}\n", wantErr: "replication_factor must be at least 1"},
		{name: "duplicate", in: "- {name: a, partitions: 1, replication_factor: 1}\n- {name: a, partitions: 1, replication_factor: 1}\n", wantErr: "declared twice"},
		{name: "empty", in: "topics: []\n", wantErr: "no topics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, err := Parse([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error containing %q, got %v", tt.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(specs) != tt.want {
				t.Fatalf("want %d specs, got %d", tt.want, len(specs))
			}
		})
	}
	specs, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if got := specs[1].Configs["retention.ms"]; got != "2592000000" {
		t.Fatalf("env default not expanded: %q", got)
	}
}

// newAdmin returns a factory of fresh admin clients on one embedded broker:
// kadm caches metadata for a few seconds, and each CLI run is a new client.
func newAdmin(t *testing.T) func() *kadm.Client {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return func() *kadm.Client { return adminOn(t, c.ListenAddrs()) }
}

func adminOn(t *testing.T, addrs []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func actions(rs []Result) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, string(r.Action)+":"+r.Topic)
	}
	return strings.Join(parts, " ")
}

func TestApply(t *testing.T) {
	newAdm := newAdmin(t)
	ctx := t.Context()
	specs, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}

	// One broker, replication 3: refused without the opt-in.
	if _, err := Apply(ctx, newAdm(), specs, Options{}); err == nil || !strings.Contains(err.Error(), "exceeds the 1 broker") {
		t.Fatalf("want replication error, got %v", err)
	}

	// Dry run changes nothing.
	rs, err := Apply(ctx, newAdm(), specs, Options{CapReplication: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rs); got != "created:itel.cabinet.task.tracking created:itel.cabinet.task.tracking.errors" {
		t.Fatalf("dry run: %s", got)
	}
	td, err := newAdm().ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if td.Has("itel.cabinet.task.tracking") || td.Has("itel.cabinet.task.tracking.errors") {
		t.Fatalf("dry run created topics: %v", td.Names())
	}

	rs, err = Apply(ctx, newAdm(), specs, Options{CapReplication: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rs); got != "created:itel.cabinet.task.tracking created:itel.cabinet.task.tracking.errors" {
		t.Fatalf("first apply: %s", got)
	}
	if len(rs[0].Warnings) == 0 {
		t.Fatal("capping replication should warn")
	}
	td, err = newAdm().ListTopics(ctx, "itel.cabinet.task.tracking")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(td["itel.cabinet.task.tracking"].Partitions); n != 3 {
		t.Fatalf("want 3 partitions, got %d", n)
	}

	// Idempotent.
	rs, err = Apply(ctx, newAdm(), specs, Options{CapReplication: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rs); got != "unchanged:itel.cabinet.task.tracking unchanged:itel.cabinet.task.tracking.errors" {
		t.Fatalf("second apply: %s", got)
	}

	// More partitions and a new retention are applied.
	specs[0].Partitions = 5
	specs[0].Configs["retention.ms"] = "1000"
	rs, err = Apply(ctx, newAdm(), specs, Options{CapReplication: true})
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Action != Changed || !strings.Contains(rs[0].String(), "partitions 3 -> 5") || !strings.Contains(rs[0].String(), "retention.ms 604800000 -> 1000") {
		t.Fatalf("change not reported: %s", rs[0])
	}
	rcs, err := newAdm().DescribeTopicConfigs(ctx, "itel.cabinet.task.tracking")
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := rcs.On("itel.cabinet.task.tracking", nil)
	found := false
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" && c.Value != nil && *c.Value == "1000" {
			found = true
		}
	}
	if !found {
		t.Fatal("retention.ms was not altered")
	}

	// Fewer partitions is an error, never a silent no-op.
	specs[0].Partitions = 2
	if _, err := Apply(ctx, newAdm(), specs, Options{CapReplication: true}); err == nil || !strings.Contains(err.Error(), "cannot remove partitions") {
		t.Fatalf("want partition decrease error, got %v", err)
	}
}
