package kafka

import "testing"

func TestPartitionOwners(t *testing.T) {
	o := &partitionOwners{owned: map[string]map[topicPartition]*franzReader{}}
	r1, r2 := &franzReader{}, &franzReader{}
	o.assign("g", r1, map[string][]int32{"t": {0, 1}})
	o.assign("other", r2, map[string][]int32{"t": {2}})
	for _, c := range []struct {
		group string
		p     int32
		want  bool
	}{{"g", 0, true}, {"g", 1, true}, {"g", 2, false}, {"other", 2, true}, {"other", 0, false}} {
		if got := o.owns(c.group, "t", c.p); got != c.want {
			t.Fatalf("owns(%s, t, %d) = %v, want %v", c.group, c.p, got, c.want)
		}
	}
	// A partition moved to another reader of the group is not released by
	// the old one's late revoke.
	o.assign("g", r2, map[string][]int32{"t": {1}})
	o.release("g", r1, map[string][]int32{"t": {1}})
	if !o.owns("g", "t", 1) {
		t.Fatal("r1's revoke released the partition r2 now owns")
	}
	o.release("g", r1, nil)
	if o.owns("g", "t", 0) || !o.owns("g", "t", 1) {
		t.Fatalf("after r1 closed: owns 0 %v, owns 1 %v", o.owns("g", "t", 0), o.owns("g", "t", 1))
	}
}
