package kafka

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// fullConfigYAML names every field of the input and the output, deprecated
// ones included, as a Connect user's config may.
const fullConfigYAML = `
input:
  kafka_franz:
    seed_brokers: [ "localhost:9092,localhost:9093", localhost:9094 ]
    client_id: claimx-test
    tls:
      enabled: true
      skip_cert_verify: true
      enable_renegotiation: false
      root_cas: ""
      root_cas_file: ""
      client_certs: []
    sasl:
      - mechanism: SCRAM-SHA-512
        username: user
        password: pass
      - mechanism: OAUTHBEARER
        token: tok
        extensions:
          foo: bar
      - mechanism: PLAIN
        username: user
        password: pass
      - mechanism: none
    metadata_max_age: 5m
    request_timeout_overhead: 10s
    conn_idle_timeout: 20s
    topics: [ foo, "bar,baz" ]
    regexp_topics: false
    consumer_group: group
    checkpoint_limit: 1024
    commit_period: 5s
    start_from_oldest: true
    start_offset: earliest
    fetch_max_bytes: 50MiB
    fetch_max_wait: 5s
    fetch_min_bytes: 1
    fetch_max_partition_bytes: 1MiB
    rebalance_timeout: 45s
    session_timeout: 1m
    heartbeat_interval: 3s
    instance_id: instance-1
    rack_id: rack-1
    multi_header: false
    batching:
      count: 10
      byte_size: 0
      period: 1s
      check: ""
      processors: []
    auto_replay_nacks: true
    topic_lag_refresh_period: 5s
output:
  kafka_franz:
    seed_brokers: [ localhost:9092 ]
    client_id: claimx-test
    tls:
      enabled: false
    sasl:
      - mechanism: SCRAM-SHA-256
        username: user
        password: pass
    metadata_max_age: 5m
    request_timeout_overhead: 10s
    conn_idle_timeout: 20s
    topic: ${! meta("kafka_topic") }
    key: ${! meta("kafka_key") }
    partition: ${! meta("kafka_partition") }
    partitioner: manual
    metadata:
      include_prefixes: [ "x_" ]
      include_patterns: [ ".*" ]
    timestamp_ms: ${! timestamp_unix_milli() }
    max_in_flight: 10
    batching:
      count: 100
    idempotent_write: true
    compression: lz4
    allow_auto_topic_creation: true
    timeout: 10s
    max_message_bytes: 1MiB
    broker_write_max_bytes: 104857600
`

func TestKafkaFranzConfigLint(t *testing.T) {
	tests := []struct {
		name       string
		yaml       string
		errContain string
	}{
		{name: "every field", yaml: fullConfigYAML},
		{
			name:       "unknown input field",
			yaml:       strings.Replace(fullConfigYAML, "    regexp_topics: false\n", "    regexp_topics: false\n    not_a_field: 1\n", 1),
			errContain: "not_a_field",
		},
		{
			name:       "unknown output field",
			yaml:       strings.Replace(fullConfigYAML, "    max_in_flight: 10\n", "    max_in_flight: 10\n    nope: 1\n", 1),
			errContain: "nope",
		},
		{
			name:       "explicit partitions with a group",
			yaml:       strings.Replace(fullConfigYAML, `topics: [ foo, "bar,baz" ]`, `topics: [ "foo:0" ]`, 1),
			errContain: "without a consumer group",
		},
		{
			name:       "explicit partitions with regexp",
			yaml:       strings.Replace(strings.Replace(fullConfigYAML, `topics: [ foo, "bar,baz" ]`, `topics: [ "foo:0-3" ]`, 1), "regexp_topics: false", "regexp_topics: true", 1),
			errContain: "regexp_topics",
		},
		{
			name:       "committed without group",
			yaml:       strings.Replace(strings.Replace(fullConfigYAML, "    consumer_group: group\n", "", 1), "start_offset: earliest", "start_offset: committed", 1),
			errContain: "needs a consumer_group",
		},
		{
			name:       "manual partitioner without partition",
			yaml:       strings.Replace(fullConfigYAML, "    partition: ${! meta(\"kafka_partition\") }\n", "", 1),
			errContain: "partitioner is manual",
		},
		{
			name:       "bad sasl mechanism",
			yaml:       strings.Replace(fullConfigYAML, "mechanism: SCRAM-SHA-256", "mechanism: KERBEROS", 1),
			errContain: "KERBEROS",
		},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			b := service.NewStreamBuilder()
			err := b.SetYAML(test.yaml)
			if test.errContain != "" {
				if err == nil || !strings.Contains(err.Error(), test.errContain) {
					t.Fatalf("expected a lint error containing %q, got %v", test.errContain, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("lint: %v", err)
			}
			// Building runs both constructors, so every field also parses.
			s, err := b.Build()
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			_ = s
		})
	}
}

func TestKafkaFranzInputParse(t *testing.T) {
	spec := franzKafkaInputSpec()
	tests := []struct {
		name       string
		yaml       string
		errContain string
		check      func(t *testing.T, c franzReaderConfig)
	}{
		{
			name: "byte sizes as numbers and strings",
			yaml: "seed_brokers: [a:9092]\ntopics: [foo]\nfetch_max_bytes: 1048576\nfetch_max_partition_bytes: 2KiB\n",
		},
		{
			name: "defaults",
			yaml: "seed_brokers: [a:9092]\ntopics: [foo]\nconsumer_group: g\n",
			check: func(t *testing.T, c franzReaderConfig) {
				if c.group != "g" || c.checkpointLimit != 1024 || c.commitPeriod != 5*time.Second || c.multiHeader || !c.autoReplayNacks || c.lagRefresh != 5*time.Second {
					t.Errorf("unexpected defaults: %+v", c)
				}
			},
		},
		{name: "bad byte size", yaml: "seed_brokers: [a:9092]\ntopics: [foo]\nfetch_max_bytes: lots\n", errContain: "fetch_max_bytes"},
		{name: "no brokers", yaml: "seed_brokers: [ ',' ]\ntopics: [foo]\n", errContain: "seed_brokers"},
		{name: "checkpoint limit zero", yaml: "seed_brokers: [a:9092]\ntopics: [foo]\ncheckpoint_limit: 0\n", errContain: "checkpoint_limit"},
		{name: "explicit partitions and group", yaml: "seed_brokers: [a:9092]\ntopics: ['foo:1']\nconsumer_group: g\n", errContain: "consumer_group"},
		{name: "committed without group", yaml: "seed_brokers: [a:9092]\ntopics: [foo]\nstart_offset: committed\n", errContain: "consumer group"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			pConf, err := spec.ParseYAML(test.yaml, nil)
			if err != nil {
				t.Fatalf("parsing yaml: %v", err)
			}
			c, err := franzReaderConfigFromParsed(pConf)
			if test.errContain != "" {
				if err == nil || !strings.Contains(err.Error(), test.errContain) {
					t.Fatalf("expected error containing %q, got %v", test.errContain, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if test.check != nil {
				test.check(t, c)
			}
		})
	}
}

// TestKafkaFranzInputStartOffset checks where consumption without a group
// starts for start_offset and the deprecated start_from_oldest.
func TestKafkaFranzInputStartOffset(t *testing.T) {
	addr := startCluster(t, 1, "start")
	produceRecords(t, addr, numberedRecords("start", 0, 10)...)

	tests := []struct {
		name      string
		extra     string
		topics    string
		wantFirst string // value of the first message read, "" for none
	}{
		{name: "earliest", extra: "start_offset: earliest", topics: "[ start ]", wantFirst: "0"},
		{name: "latest", extra: "start_offset: latest", topics: "[ start ]"},
		{name: "deprecated start_from_oldest false", extra: "start_from_oldest: false", topics: "[ start ]"},
		{name: "explicit offset", extra: "start_offset: latest", topics: `[ "start:0:7" ]`, wantFirst: "7"},
		{name: "explicit partition", extra: "", topics: `[ "start:0" ]`, wantFirst: "0"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			rdr := newTestReader(t, fmt.Sprintf("seed_brokers: [ %s ]\ntopics: %s\nfetch_max_wait: 100ms\n%s\n", addr, test.topics, test.extra))
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			batch, ack, err := rdr.ReadBatch(ctx)
			if test.wantFirst == "" {
				if err == nil {
					t.Fatalf("expected no message, got %d", len(batch))
				}
				return
			}
			if err != nil {
				t.Fatalf("reading: %v", err)
			}
			b, _ := batch[0].AsBytes()
			if string(b) != test.wantFirst {
				t.Errorf("first message %q, want %q", b, test.wantFirst)
			}
			_ = ack(ctx, nil)
		})
	}
}

// newTestReader connects a reader (without auto replay) from an input config.
func newTestReader(t *testing.T, yaml string) *franzReader {
	t.Helper()
	pConf, err := franzKafkaInputSpec().ParseYAML(yaml, nil)
	if err != nil {
		t.Fatalf("parsing config: %v", err)
	}
	rdr, err := newFranzReaderFromConfig(pConf, service.MockResources())
	if err != nil {
		t.Fatalf("creating reader: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := rdr.Connect(ctx); err != nil {
		t.Fatalf("connecting: %v", err)
	}
	t.Cleanup(func() { _ = rdr.Close(context.Background()) })
	return rdr
}

// TestKafkaFranzSecretsScrubbed checks that sasl passwords and tokens are
// secret fields, scrubbed when a config is printed.
func TestKafkaFranzSecretsScrubbed(t *testing.T) {
	var conf any
	if err := yaml.Unmarshal([]byte(fullConfigYAML), &conf); err != nil {
		t.Fatal(err)
	}
	out, err := service.NewEnvironment().FullConfigSchema("", "").NewStreamConfigMarshaller().SetScrubSecrets(true).AnyToYAML(conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"password: pass", "token: tok"} {
		if strings.Contains(out, secret) {
			t.Errorf("printed config contains %q", secret)
		}
	}
	if !strings.Contains(out, "username: user") {
		t.Errorf("printed config lost the sasl username:\n%s", out)
	}
}

func TestKafkaFranzBatchLimitWarning(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		warn bool
	}{
		{"", false},
		{"checkpoint_limit: 512\nbatching: { count: 250 }", false},
		{"checkpoint_limit: 500\nbatching: { count: 250 }", false},
		{"checkpoint_limit: 512\nbatching: { count: 1000 }", true},
		{"batching: { count: 600 }", true}, // the default limit is 1024
		{"checkpoint_limit: 1\nbatching: { period: 1s }", false},
	} {
		pConf, err := franzKafkaInputSpec().ParseYAML("seed_brokers: [ localhost:9092 ]\ntopics: [ t ]\n"+tc.yaml, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := franzReaderConfigFromParsed(pConf)
		if err != nil {
			t.Fatal(err)
		}
		if w := c.batchLimitWarning(); (w != "") != tc.warn {
			t.Errorf("%q: warning %q, want one: %v", tc.yaml, w, tc.warn)
		}
	}
}
