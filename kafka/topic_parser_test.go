package kafka

import (
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/claimx/claimx-connect/internal/bytesize"
)

func TestParseTopics(t *testing.T) {
	def := kgo.NewOffset().AtStart()
	tests := []struct {
		name       string
		entries    []string
		topics     []string
		partitions map[string]map[int32]kgo.Offset
		errContain string
	}{
		{name: "single", entries: []string{"foo"}, topics: []string{"foo"}},
		{name: "comma separated", entries: []string{"foo,bar", " baz "}, topics: []string{"foo", "bar", "baz"}},
		{name: "empty items skipped", entries: []string{"foo,,", ""}, topics: []string{"foo"}},
		{
			name:       "single partition",
			entries:    []string{"foo:3"},
			partitions: map[string]map[int32]kgo.Offset{"foo": {3: def}},
		},
		{
			name:       "partition range",
			entries:    []string{"foo:0-2"},
			partitions: map[string]map[int32]kgo.Offset{"foo": {0: def, 1: def, 2: def}},
		},
		{
			name:    "partition with offset",
			entries: []string{"foo:3:1234", "bar:0"},
			partitions: map[string]map[int32]kgo.Offset{
				"foo": {3: kgo.NewOffset().At(1234)},
				"bar": {0: def},
			},
		},
		{
			name:       "comma separated partitions",
			entries:    []string{"foo:0,foo:1:5"},
			partitions: map[string]map[int32]kgo.Offset{"foo": {0: def, 1: kgo.NewOffset().At(5)}},
		},
		{name: "mixed", entries: []string{"foo", "bar:1"}, errContain: "cannot be mixed"},
		{name: "bad partition", entries: []string{"foo:x"}, errContain: "not a non-negative integer"},
		{name: "negative partition", entries: []string{"foo:-1"}, errContain: "not a non-negative integer"},
		{name: "reversed range", entries: []string{"foo:5-2"}, errContain: "ends before it starts"},
		{name: "offset with range", entries: []string{"foo:0-2:5"}, errContain: "single partition"},
		{name: "bad offset", entries: []string{"foo:1:abc"}, errContain: "offset"},
		{name: "too many colons", entries: []string{"foo:1:2:3"}, errContain: "expected topic"},
		{name: "empty name", entries: []string{":1"}, errContain: "empty topic name"},
		{name: "duplicate partition", entries: []string{"foo:0-2", "foo:1"}, errContain: "listed twice"},
		{name: "nothing", entries: []string{" , "}, errContain: "no topics"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			res, err := parseTopics(test.entries, def)
			if test.errContain != "" {
				if err == nil || !strings.Contains(err.Error(), test.errContain) {
					t.Fatalf("expected error containing %q, got %v", test.errContain, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(res.topics, test.topics) {
				t.Errorf("topics: got %v, want %v", res.topics, test.topics)
			}
			if !reflect.DeepEqual(res.partitions, test.partitions) {
				t.Errorf("partitions: got %v, want %v", res.partitions, test.partitions)
			}
		})
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{in: "1048576", want: 1048576},
		{in: "50MiB", want: 50 << 20},
		{in: "1MiB", want: 1 << 20},
		{in: "1MB", want: 1000000},
		{in: "1 kb", want: 1000},
		{in: "1B", want: 1},
		{in: "1.5KiB", want: 1536},
		{in: "100MiB", want: 100 << 20},
		{in: "MiB", err: true},
		{in: "5 parsecs", err: true},
	}
	for _, test := range tests {
		t.Run(test.in, func(t *testing.T) {
			got, err := bytesize.Parse(test.in)
			if test.err {
				if err == nil {
					t.Fatalf("expected an error, got %d", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != test.want {
				t.Errorf("got %d, want %d", got, test.want)
			}
		})
	}
}
