package kafka

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// parsedTopics is the result of parsing the `topics` field: either plain
// topic names (consumed through a group or a regexp) or explicit partitions
// consumed directly.
type parsedTopics struct {
	// topics holds the names of entries without a partition.
	topics []string
	// partitions holds entries with explicit partitions, each with the
	// offset to start from.
	partitions map[string]map[int32]kgo.Offset
}

// parseTopics parses entries of the form `foo`, `foo,bar`, `foo:3`, `foo:0-5`
// and `foo:3:1234`. Partitions without an explicit offset start from
// defaultOffset. Plain names and explicit partitions cannot be mixed, since
// one is consumed through a group and the other without.
func parseTopics(entries []string, defaultOffset kgo.Offset) (parsedTopics, error) {
	var res parsedTopics
	for _, entry := range entries {
		for _, item := range strings.Split(entry, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			parts := strings.Split(item, ":")
			topic := strings.TrimSpace(parts[0])
			if topic == "" {
				return parsedTopics{}, fmt.Errorf("parsing topic %q: empty topic name", item)
			}
			if len(parts) == 1 {
				res.topics = append(res.topics, topic)
				continue
			}
			if len(parts) > 3 {
				return parsedTopics{}, fmt.Errorf("parsing topic %q: expected topic, topic:partition or topic:partition:offset", item)
			}
			lo, hi, err := parsePartitionRange(parts[1])
			if err != nil {
				return parsedTopics{}, fmt.Errorf("parsing topic %q: %w", item, err)
			}
			offset := defaultOffset
			if len(parts) == 3 {
				if lo != hi {
					return parsedTopics{}, fmt.Errorf("parsing topic %q: an explicit offset needs a single partition, not a range", item)
				}
				o, err := strconv.ParseInt(strings.TrimSpace(parts[2]), 10, 64)
				if err != nil || o < 0 {
					return parsedTopics{}, fmt.Errorf("parsing topic %q: offset %q is not a non-negative integer", item, parts[2])
				}
				offset = kgo.NewOffset().At(o)
			}
			if res.partitions == nil {
				res.partitions = map[string]map[int32]kgo.Offset{}
			}
			tp := res.partitions[topic]
			if tp == nil {
				tp = map[int32]kgo.Offset{}
				res.partitions[topic] = tp
			}
			for p := lo; p <= hi; p++ {
				if _, dup := tp[p]; dup {
					return parsedTopics{}, fmt.Errorf("parsing topic %q: partition %d of topic %s is listed twice", item, p, topic)
				}
				tp[p] = offset
			}
		}
	}
	if len(res.topics) > 0 && len(res.partitions) > 0 {
		return parsedTopics{}, fmt.Errorf("topics with explicit partitions cannot be mixed with topics without")
	}
	if len(res.topics) == 0 && len(res.partitions) == 0 {
		return parsedTopics{}, fmt.Errorf("no topics given")
	}
	return res, nil
}

// parsePartitionRange parses `3` or `0-5` (inclusive).
func parsePartitionRange(s string) (lo, hi int32, err error) {
	s = strings.TrimSpace(s)
	loStr, hiStr, isRange := strings.Cut(s, "-")
	if lo, err = parsePartition(loStr); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return lo, lo, nil
	}
	if hi, err = parsePartition(hiStr); err != nil {
		return 0, 0, err
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("partition range %q ends before it starts", s)
	}
	return lo, hi, nil
}

func parsePartition(s string) (int32, error) {
	p, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
	if err != nil || p < 0 {
		return 0, fmt.Errorf("partition %q is not a non-negative integer", s)
	}
	return int32(p), nil
}
