package deltasink

import (
	"math/rand/v2"
	"testing"
)

func TestOffsetRanges(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		var s offsetRanges
		want := map[int64]bool{}
		for i := 0; i < 60; i++ {
			o := int64(r.IntN(80))
			s.add(o)
			want[o] = true
		}
		for o := int64(-2); o < 84; o++ {
			if s.contains(o) != want[o] {
				t.Fatalf("round %d: contains(%d) = %v, want %v (ranges %v)", round, o, s.contains(o), want[o], s.r)
			}
		}
		for i := 1; i < len(s.r); i++ {
			if s.r[i-1][1]+1 >= s.r[i][0] {
				t.Fatalf("ranges not disjoint and merged: %v", s.r)
			}
		}
	}
}
