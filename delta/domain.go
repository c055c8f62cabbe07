package delta

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// Domains with a meaning to this engine.
const (
	// DomainRowTracking holds {"rowIdHighWaterMark": N}.
	DomainRowTracking = "delta.rowTracking"
	// DomainClustering holds the clustering columns; kept as it is.
	DomainClustering = "delta.clustering"
)

// DomainMetadata returns the live (not removed) domainMetadata action of a
// domain, and whether there is one.
func (s *Snapshot) DomainMetadata(domain string) (DomainMetadata, bool) {
	d, ok := s.domains[domain]
	return d, ok
}

// Domains returns the live domainMetadata actions, sorted by domain.
func (s *Snapshot) Domains() []DomainMetadata {
	out := make([]DomainMetadata, 0, len(s.domains))
	for _, d := range s.domains {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Domain < out[j].Domain })
	return out
}

// InCommitTimestamp returns the inCommitTimestamp (Unix ms) of the commit
// at the snapshot's version, when that commit has one.
func (s *Snapshot) InCommitTimestamp() (int64, bool) {
	if s.ict == nil {
		return 0, false
	}
	return *s.ict, true
}

// RowIDHighWaterMark returns the highest row id assigned so far (the
// delta.rowTracking domain), or -1 when none was.
func (s *Snapshot) RowIDHighWaterMark() (int64, error) {
	d, ok := s.domains[DomainRowTracking]
	if !ok {
		return -1, nil
	}
	var c struct {
		HWM *json.Number `json:"rowIdHighWaterMark"`
	}
	if err := json.Unmarshal([]byte(d.Configuration), &c); err != nil || c.HWM == nil {
		return 0, fmt.Errorf("domain %s has no readable rowIdHighWaterMark in %q", DomainRowTracking, d.Configuration)
	}
	n, err := c.HWM.Int64()
	if err != nil {
		return 0, fmt.Errorf("domain %s: rowIdHighWaterMark %q: %w", DomainRowTracking, c.HWM.String(), err)
	}
	return n, nil
}

// assignRowTracking returns acts with every add that has no row ids yet
// given consecutive base row ids above the snapshot's high-water mark and
// defaultRowCommitVersion = version, followed by the delta.rowTracking domain with the new high-water
// mark. The adds are copies: a retry recomputes them from the winner's
// high-water mark without touching the caller's actions.
func assignRowTracking(s *Snapshot, acts []Action, version int64) ([]Action, error) {
	hwm, err := s.RowIDHighWaterMark()
	if err != nil {
		return nil, err
	}
	next := hwm + 1
	out := make([]Action, 0, len(acts)+1)
	assigned := false
	for _, a := range acts {
		if a.Add != nil && a.Add.BaseRowID != nil && a.Add.DefaultRowCommitVersion != nil {
			// A file that already has row ids (RESTORE, CLONE brings it
			// back) keeps them: its rows are the rows they were.
			out = append(out, a)
			continue
		}
		if a.Add != nil {
			n, ok := statsNumRecords(a.Add.Stats)
			if !ok {
				return nil, fmt.Errorf("assigning row ids: add %s has no numRecords in its stats", a.Add.Path)
			}
			add := *a.Add
			add.BaseRowID = ptr(next)
			add.DefaultRowCommitVersion = ptr(version)
			next += n
			assigned = true
			a = Action{Add: &add}
		}
		out = append(out, a)
	}
	if assigned && next-1 > hwm {
		cfg, _ := json.Marshal(map[string]int64{"rowIdHighWaterMark": next - 1})
		out = append(out, Action{DomainMetadata: &DomainMetadata{Domain: DomainRowTracking, Configuration: string(cfg)}})
	}
	return out, nil
}

// nextInCommitTimestamp is the inCommitTimestamp of the commit after s: the
// attempt's clock, but at least one millisecond after the previous commit's
// (its inCommitTimestamp, or its commit time before the feature was on), so
// commit timestamps increase even when the clock goes back.
func nextInCommitTimestamp(s *Snapshot, now time.Time) int64 {
	ts := now.UnixMilli()
	prev := int64(-1 << 62)
	if s.ict != nil {
		prev = *s.ict
	} else if !s.lastCommitTime.IsZero() {
		prev = s.lastCommitTime.UnixMilli()
	}
	return max(ts, prev+1)
}

// materializedColumns returns the materialized row id and row commit
// version column names of a table with row tracking enabled.
func materializedColumns(conf map[string]string) (rowID, commitVersion string, err error) {
	rowID = conf["delta.rowTracking.materializedRowIdColumnName"]
	commitVersion = conf["delta.rowTracking.materializedRowCommitVersionColumnName"]
	if rowID == "" || commitVersion == "" {
		return "", "", fmt.Errorf("row tracking is enabled but the materialized column names are not in the table properties")
	}
	return rowID, commitVersion, nil
}
