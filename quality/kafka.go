package quality

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// topicDayCounts counts a topic's records in each day [starts[i],
// starts[i+1]) without consuming: per partition, the first offset at or
// after each boundary (ListOffsets by timestamp), differenced. A day whose
// start the log no longer reaches (retention deleted records of it) is
// marked partial.
func topicDayCounts(ctx context.Context, brokers []string, extra []kgo.Opt, topic string, starts []time.Time) ([]int64, []bool, error) {
	opts := append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID("claimx-connect-quality")}, extra...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("creating Kafka client for %v: %w", brokers, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	logStart, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, nil, fmt.Errorf("listing start offsets: %w", err)
	}
	if err := logStart.Error(); err != nil {
		return nil, nil, fmt.Errorf("listing start offsets: %w", err)
	}
	if _, ok := logStart[topic]; !ok {
		return nil, nil, fmt.Errorf("topic %s not found", topic)
	}
	at := make([]kadm.ListedOffsets, len(starts))
	for i, b := range starts {
		lo, err := adm.ListOffsetsAfterMilli(ctx, b.UnixMilli(), topic)
		if err != nil {
			return nil, nil, fmt.Errorf("listing offsets at %s: %w", b.UTC().Format(time.RFC3339), err)
		}
		if err := lo.Error(); err != nil {
			return nil, nil, fmt.Errorf("listing offsets at %s: %w", b.UTC().Format(time.RFC3339), err)
		}
		at[i] = lo
	}
	counts := make([]int64, len(starts)-1)
	partial := make([]bool, len(starts)-1)
	for p, so := range logStart[topic] {
		for i := range counts {
			from, ok1 := at[i].Lookup(topic, p)
			to, ok2 := at[i+1].Lookup(topic, p)
			if !ok1 || !ok2 {
				return nil, nil, fmt.Errorf("partition %d missing from the offsets listed", p)
			}
			if to.Offset > from.Offset {
				counts[i] += to.Offset - from.Offset
			}
			// The first offset at or after the day's start is the log start:
			// records of the day (or all of it) may have been deleted.
			if so.Offset > 0 && from.Offset <= so.Offset {
				partial[i] = true
			}
		}
	}
	return counts, partial, nil
}
