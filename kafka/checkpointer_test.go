package kafka

import (
	"math/rand/v2"
	"testing"
)

func TestCheckpointerOutOfOrder(t *testing.T) {
	type step struct {
		resolve        int   // index of the tracked batch to acknowledge
		wantCommit     int64 // -1: nothing committable yet
		wantInFlight   int
		wantAdvanced   bool
		wantPendingNum int
	}
	// Batches of sizes 1, 2, 3, 4 ending at offsets 0, 2, 5, 9.
	sizes := []int{1, 2, 3, 4}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "in order",
			steps: []step{
				{resolve: 0, wantCommit: 1, wantInFlight: 9, wantAdvanced: true, wantPendingNum: 3},
				{resolve: 1, wantCommit: 3, wantInFlight: 7, wantAdvanced: true, wantPendingNum: 2},
				{resolve: 2, wantCommit: 6, wantInFlight: 4, wantAdvanced: true, wantPendingNum: 1},
				{resolve: 3, wantCommit: 10, wantInFlight: 0, wantAdvanced: true, wantPendingNum: 0},
			},
		},
		{
			name: "reverse order holds until the first is acked",
			steps: []step{
				{resolve: 3, wantCommit: -1, wantInFlight: 10, wantPendingNum: 4},
				{resolve: 2, wantCommit: -1, wantInFlight: 10, wantPendingNum: 4},
				{resolve: 1, wantCommit: -1, wantInFlight: 10, wantPendingNum: 4},
				{resolve: 0, wantCommit: 10, wantInFlight: 0, wantAdvanced: true, wantPendingNum: 0},
			},
		},
		{
			name: "gap in the middle",
			steps: []step{
				{resolve: 0, wantCommit: 1, wantInFlight: 9, wantAdvanced: true, wantPendingNum: 3},
				{resolve: 2, wantCommit: 1, wantInFlight: 9, wantPendingNum: 3},
				{resolve: 3, wantCommit: 1, wantInFlight: 9, wantPendingNum: 3},
				{resolve: 1, wantCommit: 10, wantInFlight: 0, wantAdvanced: true, wantPendingNum: 0},
			},
		},
		{
			name: "double ack is a no-op",
			steps: []step{
				{resolve: 1, wantCommit: -1, wantInFlight: 10, wantPendingNum: 4},
				{resolve: 1, wantCommit: -1, wantInFlight: 10, wantPendingNum: 4},
				{resolve: 0, wantCommit: 3, wantInFlight: 7, wantAdvanced: true, wantPendingNum: 2},
				{resolve: 0, wantCommit: 3, wantInFlight: 7, wantPendingNum: 2},
			},
		},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			var c checkpointer
			var cps []*checkpoint
			next := int64(0)
			for _, s := range sizes {
				next += int64(s)
				cps = append(cps, c.track(next, 0, s))
			}
			for i, s := range test.steps {
				advanced := c.resolve(cps[s.resolve])
				got := int64(-1)
				if c.hasCommittable {
					got = c.committable
				}
				if got != s.wantCommit || c.inFlight != s.wantInFlight || advanced != s.wantAdvanced || c.pending() != s.wantPendingNum {
					t.Fatalf("step %d (ack batch %d): commit=%d inFlight=%d advanced=%v pending=%d, want commit=%d inFlight=%d advanced=%v pending=%d",
						i, s.resolve, got, c.inFlight, advanced, c.pending(), s.wantCommit, s.wantInFlight, s.wantAdvanced, s.wantPendingNum)
				}
			}
		})
	}
}

// TestCheckpointerRandomNeverPassesUnacked acks many single-message batches
// in random order and checks after every ack that the committable offset is
// exactly the first unacked offset.
func TestCheckpointerRandomNeverPassesUnacked(t *testing.T) {
	const n = 5000
	rng := rand.New(rand.NewPCG(1, 2))
	var c checkpointer
	cps := make([]*checkpoint, n)
	for i := range cps {
		cps[i] = c.track(int64(i)+1, 0, 1)
	}
	acked := make([]bool, n)
	firstUnacked := 0
	for _, i := range rng.Perm(n) {
		c.resolve(cps[i])
		acked[i] = true
		for firstUnacked < n && acked[firstUnacked] {
			firstUnacked++
		}
		if firstUnacked == 0 {
			if c.hasCommittable {
				t.Fatalf("offset %d committable while offset 0 is unacked", c.committable)
			}
			continue
		}
		if !c.hasCommittable || c.committable != int64(firstUnacked) {
			t.Fatalf("after acking %d: committable=%d (set=%v), want %d", i, c.committable, c.hasCommittable, firstUnacked)
		}
		if c.inFlight != n-firstUnacked {
			t.Fatalf("inFlight=%d, want %d", c.inFlight, n-firstUnacked)
		}
	}
	if c.pending() != 0 || len(c.queue) > 64 {
		t.Fatalf("queue not drained/compacted: pending=%d len=%d", c.pending(), len(c.queue))
	}
}
