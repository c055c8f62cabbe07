package deltasink

import "sort"

// offsetRanges is a set of Kafka offsets kept as sorted, disjoint, closed
// intervals: a partition's written offsets merge into a few ranges, so the
// set stays small however long the process runs.
type offsetRanges struct {
	r [][2]int64
}

func (s *offsetRanges) contains(o int64) bool {
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i][1] >= o })
	return i < len(s.r) && s.r[i][0] <= o
}

func (s *offsetRanges) add(o int64) {
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i][1] >= o-1 })
	switch {
	case i < len(s.r) && s.r[i][0] <= o && o <= s.r[i][1]:
		return // present
	case i < len(s.r) && s.r[i][1] == o-1:
		s.r[i][1] = o
		if i+1 < len(s.r) && s.r[i+1][0] == o+1 { // bridges two ranges
			s.r[i][1] = s.r[i+1][1]
			s.r = append(s.r[:i+1], s.r[i+2:]...)
		}
	case i < len(s.r) && s.r[i][0] == o+1:
		s.r[i][0] = o
	default:
		s.r = append(s.r, [2]int64{})
		copy(s.r[i+1:], s.r[i:])
		s.r[i] = [2]int64{o, o}
	}
}

// partitionState is what this process knows of one Kafka partition's offsets.
// Offsets at or below baseline were written before this process saw the
// partition, or by another writer since; written holds what this process
// wrote. Anything else is new, even below an offset already written: pipeline
// threads can deliver a partition's batches out of order.
type partitionState struct {
	written  offsetRanges
	baseline int64
	ourLast  int64 // txn version of this process's last commit, -1 for none
}

// observe folds the table's recorded offset in: a value this process did not
// write comes from another writer (a rebalance moved the partition).
func (p *partitionState) observe(recorded int64, found bool) {
	if found && recorded != p.ourLast && recorded > p.baseline {
		p.baseline = recorded
	}
}

func (p *partitionState) done(o int64) bool {
	return o <= p.baseline || p.written.contains(o)
}
