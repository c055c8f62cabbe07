package delta

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

// Errors of time travel, returned wrapped (test with errors.Is).
var (
	// ErrVersionNotAvailable: the log cannot rebuild the requested version:
	// it is newer than the newest commit, or log cleanup removed the
	// commits (and no checkpoint at or below it remains) it needs.
	ErrVersionNotAvailable = errors.New("table version not available")
	// ErrTimestampOutOfRange: the timestamp is before the earliest version
	// the log still holds or after the latest commit.
	ErrTimestampOutOfRange = errors.New("timestamp outside the table's history")
)

// LoadSnapshotAt rebuilds the table in store as of version: the newest
// readable checkpoint at or below version, then the commits after it up
// to version. It reads; it never writes. The error wraps
// ErrVersionNotAvailable when the log no longer holds (or never held) the
// version.
func LoadSnapshotAt(ctx context.Context, store storage.Store, version int64) (*Snapshot, error) {
	l, err := listLog(ctx, store)
	if err != nil {
		return nil, err
	}
	return loadSnapshotAt(ctx, store, l, version)
}

func loadSnapshotAt(ctx context.Context, store storage.Store, l *logListing, version int64) (*Snapshot, error) {
	if l.maxCommit < 0 && len(l.checkpoints) == 0 {
		return nil, fmt.Errorf("time travel in %s: %w", store.URI(), ErrNotATable)
	}
	latest := l.latest()
	if version < 0 || version > latest {
		return nil, fmt.Errorf("time travel in %s: version %d: the table's versions are %d to %d: %w",
			store.URI(), version, l.earliest(), latest, ErrVersionNotAvailable)
	}
	var errs []error
	for _, cv := range l.checkpointCandidates() {
		if cv > version {
			continue
		}
		snap, err := readCheckpoint(ctx, store, cv, l.checkpoints[cv])
		if err != nil {
			errs = append(errs, err) // a broken checkpoint: try an older one
			continue
		}
		snap.checkpointVersion = cv
		if err := replayRange(ctx, store, snap, l, cv+1, version); err != nil {
			return nil, err
		}
		if snap.ict == nil && snap.inCommitTimestamps() {
			// The checkpoint holds no commitInfo: take the version's own.
			if ict, ok := commitICT(ctx, store, version); ok {
				snap.ict = &ict
				snap.lastCommitTime = time.UnixMilli(ict)
			}
		}
		return snap, nil
	}
	if _, ok := l.commits[0]; !ok {
		err := fmt.Errorf("time travel in %s: version %d: no checkpoint at or below it and version 0 is gone (log cleanup); the earliest version is %d: %w",
			store.URI(), version, l.earliest(), ErrVersionNotAvailable)
		if len(errs) > 0 {
			err = fmt.Errorf("%w (unreadable checkpoints: %w)", err, errors.Join(errs...))
		}
		return nil, err
	}
	snap := newEmptySnapshot()
	if err := replayRange(ctx, store, snap, l, 0, version); err != nil {
		return nil, err
	}
	return snap, nil
}

// replayRange applies the commits from..to, which must all be listed.
func replayRange(ctx context.Context, store storage.Store, snap *Snapshot, l *logListing, from, to int64) error {
	for v := from; v <= to; v++ {
		if _, ok := l.commits[v]; !ok {
			return fmt.Errorf("time travel in %s: version %d needs commit %d, which is gone: %w", store.URI(), to, v, ErrVersionNotAvailable)
		}
		acts, err := readCommit(ctx, store, v)
		if err != nil {
			return fmt.Errorf("time travel in %s to version %d: %w", store.URI(), to, err)
		}
		if err := snap.apply(v, acts); err != nil {
			return fmt.Errorf("time travel in %s to version %d: %w", store.URI(), to, err)
		}
	}
	if snap.schema == nil {
		return fmt.Errorf("time travel in %s: no metaData action up to version %d", store.URI(), to)
	}
	return nil
}

// commitICT reads the inCommitTimestamp of commit v, if it has one.
func commitICT(ctx context.Context, store storage.Store, v int64) (int64, bool) {
	acts, err := readCommit(ctx, store, v)
	if err != nil {
		return 0, false
	}
	for _, a := range acts {
		if a.CommitInfo != nil {
			return inCommitTimestamp(a.CommitInfo)
		}
	}
	return 0, false
}

// latest is the newest version the listing shows (commit or checkpoint).
func (l *logListing) latest() int64 {
	v := l.maxCommit
	for cv := range l.checkpoints {
		v = max(v, cv)
	}
	return v
}

// earliest is the oldest version the log can rebuild: 0 while commit 0
// exists, else the oldest complete checkpoint.
func (l *logListing) earliest() int64 {
	if _, ok := l.commits[0]; ok {
		return 0
	}
	c := l.checkpointCandidates()
	if len(c) == 0 {
		return l.latest()
	}
	return c[len(c)-1]
}

// CommitTime is the timestamp time travel uses for one version.
type CommitTime struct {
	Version int64
	Time    time.Time
	// InCommitTimestamp: Time is the commit's inCommitTimestamp, not the
	// commit file's modification time.
	InCommitTimestamp bool
}

// CommitTimes returns the time-travel timestamp of every version the log
// can still rebuild and has a commit file for, oldest first, with Spark's
// rules: a version's timestamp is its inCommitTimestamp when the table has
// in-commit timestamps from that version on, else the commit file's
// modification time in whole milliseconds, made strictly increasing (a file time not after the
// previous one becomes the previous one plus 1 ms, as Spark's
// DeltaHistoryManager does).
func CommitTimes(ctx context.Context, store storage.Store) ([]CommitTime, error) {
	l, err := listLog(ctx, store)
	if err != nil {
		return nil, err
	}
	return commitTimes(ctx, store, l)
}

func commitTimes(ctx context.Context, store storage.Store, l *logListing) ([]CommitTime, error) {
	if l.maxCommit < 0 {
		return nil, fmt.Errorf("reading commit times of %s: %w", store.URI(), ErrNotATable)
	}
	// Which versions carry an inCommitTimestamp: decided by the newest
	// snapshot's properties (ICT is enabled once and for good).
	latest, err := loadSnapshotAt(ctx, store, l, l.latest())
	if err != nil {
		return nil, fmt.Errorf("reading commit times of %s: %w", store.URI(), err)
	}
	ictFrom := int64(-1)
	if latest.inCommitTimestamps() {
		ictFrom = 0
		if s := latest.metadata.Configuration["delta.inCommitTimestampEnablementVersion"]; s != "" {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				ictFrom = n
			}
		}
	}
	versions := make([]int64, 0, len(l.commits))
	for v := range l.commits {
		if v >= l.earliest() {
			versions = append(versions, v)
		}
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
	out := make([]CommitTime, 0, len(versions))
	var prev time.Time
	for _, v := range versions {
		// Milliseconds, as Hadoop's file times that Spark compares with.
		ct := CommitTime{Version: v, Time: l.commits[v].ModTime.Truncate(time.Millisecond)}
		if ictFrom >= 0 && v >= ictFrom {
			// One read per ICT version; the ICT versions are the newest, so
			// for most tables this is every commit since enablement.
			ict, ok := commitICT(ctx, store, v)
			if !ok {
				return nil, fmt.Errorf("reading commit times of %s: version %d has no inCommitTimestamp though the table has in-commit timestamps since version %d", store.URI(), v, ictFrom)
			}
			ct.Time, ct.InCommitTimestamp = time.UnixMilli(ict), true
		} else if !prev.IsZero() && !ct.Time.After(prev) {
			ct.Time = prev.Add(time.Millisecond)
		}
		prev = ct.Time
		out = append(out, ct)
	}
	return out, nil
}

// VersionAsOf returns the version a reader of the table "as of" ts sees,
// as Spark's TIMESTAMP AS OF: the newest version whose commit timestamp
// (see CommitTimes) is at or before ts. The error wraps
// ErrTimestampOutOfRange when ts is before the earliest version the log
// holds or after the latest commit.
func VersionAsOf(ctx context.Context, store storage.Store, ts time.Time) (int64, error) {
	times, err := CommitTimes(ctx, store)
	if err != nil {
		return 0, err
	}
	if len(times) == 0 {
		return 0, fmt.Errorf("time travel in %s to %s: the log holds no commit: %w", store.URI(), ts.UTC().Format(time.RFC3339Nano), ErrTimestampOutOfRange)
	}
	first, last := times[0], times[len(times)-1]
	if ts.Before(first.Time) {
		return 0, fmt.Errorf("time travel in %s: timestamp %s is before the earliest available version %d (%s): %w",
			store.URI(), ts.UTC().Format(time.RFC3339Nano), first.Version, first.Time.UTC().Format(time.RFC3339Nano), ErrTimestampOutOfRange)
	}
	if ts.After(last.Time) {
		return 0, fmt.Errorf("time travel in %s: timestamp %s is after the latest commit, version %d (%s): %w",
			store.URI(), ts.UTC().Format(time.RFC3339Nano), last.Version, last.Time.UTC().Format(time.RFC3339Nano), ErrTimestampOutOfRange)
	}
	// The first version after ts, minus one.
	i := sort.Search(len(times), func(i int) bool { return times[i].Time.After(ts) })
	return times[i-1].Version, nil
}

// resolveVersion turns an optional version or timestamp into a version;
// with neither it returns def.
func resolveVersion(ctx context.Context, store storage.Store, version *int64, ts *time.Time, def int64) (int64, error) {
	switch {
	case version != nil && ts != nil:
		return 0, errors.New("give a version or a timestamp, not both")
	case version != nil:
		return *version, nil
	case ts != nil:
		return VersionAsOf(ctx, store, *ts)
	}
	return def, nil
}
