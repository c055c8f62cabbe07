// Package topics creates and updates Kafka topics from a declarative YAML
// list, idempotently, through kadm.
package topics

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"gopkg.in/yaml.v3"
)

// Spec is one topic as the file declares it.
type Spec struct {
	Name              string            `yaml:"name"`
	Partitions        int32             `yaml:"partitions"`
	ReplicationFactor int16             `yaml:"replication_factor"`
	Configs           map[string]string `yaml:"configs"`
}

// File is the topics file: either a bare list of specs or `topics: [...]`.
type File struct {
	Topics []Spec `yaml:"topics"`
}

// ParseFile reads and validates a topics file. Environment variables in it
// (${VAR} and ${VAR:default}) are expanded first, as in pipeline configs.
func ParseFile(path string) ([]Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading topics file: %w", err)
	}
	specs, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("parsing topics file %s: %w", path, err)
	}
	return specs, nil
}

// Parse decodes and validates topic specs.
func Parse(b []byte) ([]Spec, error) {
	b = []byte(expandEnv(string(b)))
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	var f File
	if len(doc.Content) > 0 && doc.Content[0].Kind == yaml.SequenceNode {
		if err := doc.Content[0].Decode(&f.Topics); err != nil {
			return nil, err
		}
	} else if err := doc.Decode(&f); err != nil {
		return nil, err
	}
	if len(f.Topics) == 0 {
		return nil, errors.New("no topics declared")
	}
	seen := map[string]bool{}
	for i, s := range f.Topics {
		switch {
		case s.Name == "":
			return nil, fmt.Errorf("topic %d: name is required", i)
		case seen[s.Name]:
			return nil, fmt.Errorf("topic %q: declared twice", s.Name)
		case s.Partitions < 1:
			return nil, fmt.Errorf("topic %q: partitions must be at least 1, got %d", s.Name, s.Partitions)
		case s.ReplicationFactor < 1:
			return nil, fmt.Errorf("topic %q: replication_factor must be at least 1, got %d", s.Name, s.ReplicationFactor)
		}
		seen[s.Name] = true
	}
	return f.Topics, nil
}

// expandEnv replaces ${VAR} and ${VAR:default}.
func expandEnv(s string) string {
	return os.Expand(s, func(key string) string {
		name, def, hasDef := strings.Cut(key, ":")
		if v, ok := os.LookupEnv(name); ok && v != "" {
			return v
		}
		if hasDef {
			return def
		}
		return ""
	})
}

// Action is what Apply did, or would do, to one topic.
type Action string

// Actions.
const (
	Created   Action = "created"
	Changed   Action = "changed"
	Unchanged Action = "unchanged"
)

// Result is the outcome for one topic.
type Result struct {
	Topic   string
	Action  Action
	Details []string
	// Warnings are differences Apply leaves alone on purpose (a replication
	// factor change needs a partition reassignment).
	Warnings []string
}

// String renders the result as one line for the CLI.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-9s %s", r.Action, r.Topic)
	if len(r.Details) > 0 {
		b.WriteString(": " + strings.Join(r.Details, ", "))
	}
	for _, w := range r.Warnings {
		b.WriteString(" (warning: " + w + ")")
	}
	return b.String()
}

// Options tune Apply.
type Options struct {
	// DryRun reports what would change and changes nothing.
	DryRun bool
	// CapReplication lowers a replication factor above the broker count to
	// the broker count, for single-broker development clusters.
	CapReplication bool
}

// Apply creates missing topics, raises partition counts and sets differing
// configs, so that running it twice changes nothing the second time.
func Apply(ctx context.Context, adm *kadm.Client, specs []Spec, opts Options) ([]Result, error) {
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing brokers: %w", err)
	}
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	existing, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("listing topics: %w", err)
	}
	var results []Result
	for _, s := range specs {
		rf := s.ReplicationFactor
		var warnings []string
		if int(rf) > len(brokers) {
			if !opts.CapReplication {
				return results, fmt.Errorf("topic %q: replication_factor %d exceeds the %d broker(s) of the cluster (use --cap-replication for a development cluster)", s.Name, rf, len(brokers))
			}
			warnings = append(warnings, fmt.Sprintf("replication_factor %d capped to %d broker(s)", rf, len(brokers)))
			rf = int16(len(brokers))
		}
		var (
			r   Result
			err error
		)
		if d, ok := existing[s.Name]; ok && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			if d.Err != nil {
				return results, fmt.Errorf("describing topic %q: %w", s.Name, d.Err)
			}
			r, err = update(ctx, adm, s, rf, d, opts)
		} else {
			r, err = create(ctx, adm, s, rf, opts)
		}
		r.Warnings = append(warnings, r.Warnings...)
		if err != nil {
			return results, err
		}
		results = append(results, r)
	}
	return results, nil
}

func create(ctx context.Context, adm *kadm.Client, s Spec, rf int16, opts Options) (Result, error) {
	r := Result{Topic: s.Name, Action: Created, Details: []string{
		fmt.Sprintf("partitions=%d", s.Partitions),
		fmt.Sprintf("replication_factor=%d", rf),
	}}
	for _, k := range sortedKeys(s.Configs) {
		r.Details = append(r.Details, k+"="+s.Configs[k])
	}
	if opts.DryRun {
		return r, nil
	}
	configs := map[string]*string{}
	for k, v := range s.Configs {
		configs[k] = &v
	}
	resp, err := adm.CreateTopic(ctx, s.Partitions, rf, configs, s.Name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return r, fmt.Errorf("creating topic %q: %w", s.Name, err)
	}
	return r, nil
}

func update(ctx context.Context, adm *kadm.Client, s Spec, rf int16, d kadm.TopicDetail, opts Options) (Result, error) {
	r := Result{Topic: s.Name, Action: Unchanged}
	have := int32(len(d.Partitions))
	switch {
	case have > s.Partitions:
		return r, fmt.Errorf("topic %q has %d partitions and the file asks for %d: Kafka cannot remove partitions", s.Name, have, s.Partitions)
	case have < s.Partitions:
		r.Details = append(r.Details, fmt.Sprintf("partitions %d -> %d", have, s.Partitions))
		if !opts.DryRun {
			resp, err := adm.UpdatePartitions(ctx, int(s.Partitions), s.Name)
			if err == nil {
				err = resp.Error()
			}
			if err != nil {
				return r, fmt.Errorf("raising partitions of topic %q to %d: %w", s.Name, s.Partitions, err)
			}
		}
	}
	if len(d.Partitions) > 0 {
		if cur := int16(len(d.Partitions[0].Replicas)); cur != rf {
			r.Warnings = append(r.Warnings, fmt.Sprintf("replication factor is %d, file says %d; left alone (needs a partition reassignment)", cur, rf))
		}
	}
	if len(s.Configs) > 0 {
		rcs, err := adm.DescribeTopicConfigs(ctx, s.Name)
		if err != nil {
			return r, fmt.Errorf("describing configs of topic %q: %w", s.Name, err)
		}
		rc, err := rcs.On(s.Name, nil)
		if err == nil {
			err = rc.Err
		}
		if err != nil {
			return r, fmt.Errorf("describing configs of topic %q: %w", s.Name, err)
		}
		current := map[string]string{}
		for _, c := range rc.Configs {
			if c.Value != nil {
				current[c.Key] = *c.Value
			}
		}
		var alters []kadm.AlterConfig
		for _, k := range sortedKeys(s.Configs) {
			want := s.Configs[k]
			if got, ok := current[k]; ok && got == want {
				continue
			}
			r.Details = append(r.Details, fmt.Sprintf("%s %s -> %s", k, orUnset(current, k), want))
			alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &want})
		}
		if len(alters) > 0 && !opts.DryRun {
			resp, err := adm.AlterTopicConfigs(ctx, alters, s.Name)
			if err == nil {
				for _, a := range resp {
					if a.Err != nil {
						err = fmt.Errorf("%w: %s", a.Err, a.ErrMessage)
						break
					}
				}
			}
			if err != nil {
				return r, fmt.Errorf("altering configs of topic %q: %w", s.Name, err)
			}
		}
	}
	if len(r.Details) > 0 {
		r.Action = Changed
	}
	return r, nil
}

func orUnset(m map[string]string, k string) string {
	if v, ok := m[k]; ok {
		return v
	}
	return "(unset)"
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
