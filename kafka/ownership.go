package kafka

import "sync"

// partitionOwners records which partitions of which topics the consumer
// groups of this process currently own, as their kafka_franz inputs are
// assigned and revoked them. A component that must act on a key with no
// message in hand (the state_changes deadline timer) asks it whether this
// replica owns the key's partition, so that exactly one replica of a group
// acts on each key: the group hands a partition to a new owner only after
// the old owner's revoke callback has run, and that callback releases it
// here first.
type partitionOwners struct {
	mu    sync.Mutex
	owned map[string]map[topicPartition]*franzReader // group → partition → the reader owning it
}

var groupOwners = &partitionOwners{owned: map[string]map[topicPartition]*franzReader{}}

func (o *partitionOwners) assign(group string, r *franzReader, tps map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	g := o.owned[group]
	if g == nil {
		g = map[topicPartition]*franzReader{}
		o.owned[group] = g
	}
	for topic, ps := range tps {
		for _, p := range ps {
			g[topicPartition{topic: topic, partition: p}] = r
		}
	}
}

// release forgets the partitions r owned among tps (nil: all of r's).
func (o *partitionOwners) release(group string, r *franzReader, tps map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	g := o.owned[group]
	if tps == nil {
		for tp, owner := range g {
			if owner == r {
				delete(g, tp)
			}
		}
		return
	}
	for topic, ps := range tps {
		for _, p := range ps {
			tp := topicPartition{topic: topic, partition: p}
			if g[tp] == r {
				delete(g, tp)
			}
		}
	}
}

// owns says whether an input of this process in group owns the partition.
func (o *partitionOwners) owns(group, topic string, partition int32) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.owned[group][topicPartition{topic: topic, partition: partition}]
	return ok
}
