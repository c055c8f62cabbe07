package delta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

// ErrNotATable is returned (wrapped) when the location holds no Delta log.
var ErrNotATable = errors.New("not a Delta table (no _delta_log commits)")

// ErrUnsupportedFeature is returned (wrapped) when a table needs a protocol
// feature this engine does not implement; writing would corrupt it.
var ErrUnsupportedFeature = errors.New("table uses a Delta feature this writer does not implement")

// Snapshot is the state of a table at one version. A Snapshot returned by
// Table.Snapshot is a private copy: later commits do not change it.
type Snapshot struct {
	version  int64
	protocol Protocol
	metadata Metadata
	schema   *Schema
	// files are the live adds by decoded path: a path has at most one live
	// logical file (one DV) at a time.
	files map[string]*AddFile
	// tombstones are keyed by fileKey (decoded path + DV unique id): the
	// same data file can be a tombstone with several DVs.
	tombstones map[string]*RemoveFile
	txns       map[string]Txn
	// domains are the live (not removed) domainMetadata actions by domain.
	domains map[string]DomainMetadata
	// ict is the inCommitTimestamp of the commit at version, when known.
	ict *int64
	// checkpointVersion is the newest checkpoint the log holds (-1: none).
	checkpointVersion int64
	// lastCommitTime is the commitInfo timestamp (or file time) of version.
	lastCommitTime time.Time
}

func newEmptySnapshot() *Snapshot {
	return &Snapshot{
		version:           -1,
		files:             map[string]*AddFile{},
		tombstones:        map[string]*RemoveFile{},
		txns:              map[string]Txn{},
		domains:           map[string]DomainMetadata{},
		checkpointVersion: -1,
	}
}

// Version returns the table version of the snapshot.
func (s *Snapshot) Version() int64 { return s.version }

// Protocol returns the protocol action in force.
func (s *Snapshot) Protocol() Protocol { return s.protocol }

// Metadata returns the metaData action in force.
func (s *Snapshot) Metadata() Metadata { return s.metadata }

// Schema returns the table schema (partition columns included).
func (s *Snapshot) Schema() *Schema { return s.schema }

// PartitionColumns returns the partition column names in order.
func (s *Snapshot) PartitionColumns() []string {
	return append([]string(nil), s.metadata.PartitionColumns...)
}

// Configuration returns a copy of the table properties.
func (s *Snapshot) Configuration() map[string]string {
	out := make(map[string]string, len(s.metadata.Configuration))
	for k, v := range s.metadata.Configuration {
		out[k] = v
	}
	return out
}

// NumFiles returns the number of live data files.
func (s *Snapshot) NumFiles() int { return len(s.files) }

// Files returns the live data files (add actions), sorted by path.
func (s *Snapshot) Files() []AddFile {
	out := make([]AddFile, 0, len(s.files))
	for _, f := range s.files {
		out = append(out, *f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Tombstones returns the remove actions the snapshot keeps, sorted by path.
func (s *Snapshot) Tombstones() []RemoveFile {
	out := make([]RemoveFile, 0, len(s.tombstones))
	for _, f := range s.tombstones {
		out = append(out, *f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// TxnVersion returns the last version committed by appID, and whether any
// was.
func (s *Snapshot) TxnVersion(appID string) (int64, bool) {
	t, ok := s.txns[appID]
	return t.Version, ok
}

// Txns returns a copy of the txn versions by appId.
func (s *Snapshot) Txns() map[string]int64 {
	out := make(map[string]int64, len(s.txns))
	for k, t := range s.txns {
		out[k] = t.Version
	}
	return out
}

// CheckpointVersion returns the version of the newest checkpoint known to
// the snapshot, or -1.
func (s *Snapshot) CheckpointVersion() int64 { return s.checkpointVersion }

// clone returns a deep enough copy: maps are copied, actions are shared
// because they are never modified once applied.
func (s *Snapshot) clone() *Snapshot {
	c := *s
	c.files = make(map[string]*AddFile, len(s.files))
	for k, v := range s.files {
		c.files[k] = v
	}
	c.tombstones = make(map[string]*RemoveFile, len(s.tombstones))
	for k, v := range s.tombstones {
		c.tombstones[k] = v
	}
	c.txns = make(map[string]Txn, len(s.txns))
	for k, v := range s.txns {
		c.txns[k] = v
	}
	c.domains = make(map[string]DomainMetadata, len(s.domains))
	for k, v := range s.domains {
		c.domains[k] = v
	}
	return &c
}

// pathKey is the map key for a log path: add and remove may encode the same
// file differently, so compare decoded paths.
func pathKey(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	if d, err := url.PathUnescape(p); err == nil {
		return d
	}
	return p
}

// apply applies one version's actions to the snapshot. A remove only drops
// the live add of its path when their DVs match, so Spark's DELETE commit
// (remove(path, old DV) + add(path, new DV)) keeps the new add whatever the
// order of the two actions.
func (s *Snapshot) apply(version int64, actions []Action) error {
	if version != s.version {
		s.ict = nil
	}
	for i := range actions {
		a := &actions[i]
		switch {
		case a.Add != nil:
			s.files[pathKey(a.Add.Path)] = a.Add
			delete(s.tombstones, fileKey(a.Add.Path, a.Add.DeletionVector))
		case a.Remove != nil:
			pk := pathKey(a.Remove.Path)
			if f, ok := s.files[pk]; ok && f.DeletionVector.UniqueID() == a.Remove.DeletionVector.UniqueID() {
				delete(s.files, pk)
			}
			s.tombstones[fileKey(a.Remove.Path, a.Remove.DeletionVector)] = a.Remove
		case a.DomainMetadata != nil:
			if a.DomainMetadata.Removed {
				delete(s.domains, a.DomainMetadata.Domain)
			} else {
				s.domains[a.DomainMetadata.Domain] = *a.DomainMetadata
			}
		case a.Txn != nil:
			s.txns[a.Txn.AppID] = *a.Txn
		case a.Protocol != nil:
			s.protocol = *a.Protocol
		case a.MetaData != nil:
			sc, err := ParseSchemaString(a.MetaData.SchemaString)
			if err != nil {
				return fmt.Errorf("version %d: %w", version, err)
			}
			s.metadata = *a.MetaData
			s.schema = sc
		case a.CommitInfo != nil:
			if ts, ok := commitTimestamp(a.CommitInfo); ok {
				s.lastCommitTime = ts
			}
			if ict, ok := inCommitTimestamp(a.CommitInfo); ok {
				s.ict = &ict
				s.lastCommitTime = time.UnixMilli(ict)
			}
		}
	}
	s.version = version
	return nil
}

// inCommitTimestamp returns commitInfo.inCommitTimestamp in milliseconds.
func inCommitTimestamp(ci map[string]any) (int64, bool) {
	switch v := ci["inCommitTimestamp"].(type) {
	case float64:
		return int64(v), true
	case int64:
		return v, true
	case json.Number:
		n, err := v.Int64()
		return n, err == nil
	}
	return 0, false
}

func commitTimestamp(ci map[string]any) (time.Time, bool) {
	switch v := ci["timestamp"].(type) {
	case float64:
		return time.UnixMilli(int64(v)), true
	case int64:
		return time.UnixMilli(v), true
	}
	return time.Time{}, false
}

// logListing is what one listing of _delta_log tells.
type logListing struct {
	commits     map[int64]storage.ObjectInfo
	checkpoints map[int64][]string // version -> paths of a complete checkpoint
	maxCommit   int64
	files       []storage.ObjectInfo
}

func listLog(ctx context.Context, store storage.Store) (*logListing, error) {
	objs, err := store.List(ctx, "_delta_log/")
	if err != nil {
		return nil, fmt.Errorf("listing the log of %s: %w", store.URI(), err)
	}
	l := &logListing{commits: map[int64]storage.ObjectInfo{}, checkpoints: map[int64][]string{}, maxCommit: -1, files: objs}
	type partSet struct {
		parts int
		paths map[int]string
	}
	multi := map[int64]map[int]*partSet{}
	for _, o := range objs {
		lf := parseLogName(o.Path)
		switch lf.kind {
		case logCommit:
			l.commits[lf.version] = o
			if lf.version > l.maxCommit {
				l.maxCommit = lf.version
			}
		case logCheckpoint:
			if _, ok := l.checkpoints[lf.version]; !ok {
				l.checkpoints[lf.version] = []string{o.Path}
			}
		case logCheckpointV2:
			// A UUID-named checkpoint is preferred over a classic one of
			// the same version: it is what a v2Checkpoint table writes.
			l.checkpoints[lf.version] = []string{o.Path}
		case logCheckpointPart:
			byParts := multi[lf.version]
			if byParts == nil {
				byParts = map[int]*partSet{}
				multi[lf.version] = byParts
			}
			ps := byParts[lf.parts]
			if ps == nil {
				ps = &partSet{parts: lf.parts, paths: map[int]string{}}
				byParts[lf.parts] = ps
			}
			ps.paths[lf.part] = o.Path
		}
	}
	for v, byParts := range multi {
		if _, ok := l.checkpoints[v]; ok {
			continue
		}
		for _, ps := range byParts {
			if len(ps.paths) != ps.parts {
				continue // incomplete: a writer crashed mid-checkpoint
			}
			paths := make([]string, ps.parts)
			for i := 1; i <= ps.parts; i++ {
				paths[i-1] = ps.paths[i]
			}
			l.checkpoints[v] = paths
			break
		}
	}
	return l, nil
}

// checkpointCandidates returns complete checkpoint versions, newest first.
func (l *logListing) checkpointCandidates() []int64 {
	out := make([]int64, 0, len(l.checkpoints))
	for v := range l.checkpoints {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] > out[j] })
	return out
}

// loadSnapshot builds the newest snapshot: the newest readable checkpoint
// (from _last_checkpoint, or the listing when that file is missing, stale or
// broken), then the JSON commits after it.
func loadSnapshot(ctx context.Context, store storage.Store) (*Snapshot, error) {
	l, err := listLog(ctx, store)
	if err != nil {
		return nil, err
	}
	if l.maxCommit < 0 && len(l.checkpoints) == 0 {
		return nil, fmt.Errorf("opening %s: %w", store.URI(), ErrNotATable)
	}
	// _last_checkpoint is only a hint: the listing is authoritative, so a
	// stale hint (a crash after the checkpoint but before the hint) or a
	// missing one costs nothing. Read it so a hint pointing past the listing
	// (an eventually consistent list) is still honoured.
	candidates := l.checkpointCandidates()
	if b, err := store.Get(ctx, lastCheckpointPath); err == nil {
		if lc, err := ParseLastCheckpoint(b); err == nil {
			if _, listed := l.checkpoints[lc.Version]; !listed {
				paths := []string{checkpointPath(lc.Version)}
				if lc.V2Checkpoint != nil && lc.V2Checkpoint.Path != "" {
					p := lc.V2Checkpoint.Path
					if !strings.Contains(p, "/") {
						p = "_delta_log/" + p
					}
					paths = []string{p}
				}
				if lc.Parts != nil && *lc.Parts > 1 {
					paths = paths[:0]
					for i := int64(1); i <= *lc.Parts; i++ {
						paths = append(paths, fmt.Sprintf("_delta_log/%020d.checkpoint.%010d.%010d.parquet", lc.Version, i, *lc.Parts))
					}
				}
				l.checkpoints[lc.Version] = paths
				candidates = l.checkpointCandidates()
			}
		}
	}
	var errs []error
	for _, cv := range candidates {
		snap, err := readCheckpoint(ctx, store, cv, l.checkpoints[cv])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if cv > l.maxCommit {
			// A readable checkpoint ahead of every listed commit: the
			// listing lagged behind the writer.
			l.maxCommit = cv
		}
		snap.checkpointVersion = cv
		if err := replayCommits(ctx, store, snap, cv+1, l); err != nil {
			return nil, err
		}
		if snap.ict == nil && snap.inCommitTimestamps() {
			// Checkpoints keep no commitInfo: the next commit's timestamp
			// must still follow this one's.
			if acts, err := readCommit(ctx, store, snap.version); err == nil {
				for _, a := range acts {
					if a.CommitInfo != nil {
						if ict, ok := inCommitTimestamp(a.CommitInfo); ok {
							snap.ict = &ict
							snap.lastCommitTime = time.UnixMilli(ict)
						}
					}
				}
			}
		}
		return snap, nil
	}
	if _, ok := l.commits[0]; !ok {
		if len(errs) > 0 {
			return nil, fmt.Errorf("opening %s: no readable checkpoint and version 0 is gone: %w", store.URI(), errors.Join(errs...))
		}
		return nil, fmt.Errorf("opening %s: version 0 is missing and there is no checkpoint", store.URI())
	}
	snap := newEmptySnapshot()
	if err := replayCommits(ctx, store, snap, 0, l); err != nil {
		return nil, err
	}
	return snap, nil
}

// replayCommits applies the listed commits from version `from` to the end
// of the listing, which must be contiguous.
func replayCommits(ctx context.Context, store storage.Store, snap *Snapshot, from int64, l *logListing) error {
	for v := from; v <= l.maxCommit; v++ {
		if _, ok := l.commits[v]; !ok {
			return fmt.Errorf("opening %s: commit %d is missing (the log has a gap before %d)", store.URI(), v, l.maxCommit)
		}
		acts, err := readCommit(ctx, store, v)
		if err != nil {
			return err
		}
		if err := snap.apply(v, acts); err != nil {
			return fmt.Errorf("opening %s: %w", store.URI(), err)
		}
	}
	if snap.schema == nil {
		return fmt.Errorf("opening %s: no metaData action up to version %d", store.URI(), snap.version)
	}
	return nil
}

func readCommit(ctx context.Context, store storage.Store, v int64) ([]Action, error) {
	b, err := store.Get(ctx, commitPath(v))
	if err != nil {
		return nil, fmt.Errorf("reading commit %d: %w", v, err)
	}
	acts, err := ParseCommit(b)
	if err != nil {
		return nil, fmt.Errorf("parsing commit %d (%s): %w", v, commitPath(v), err)
	}
	return acts, nil
}

// durationProperty parses a Delta interval property such as
// "interval 7 days" (also "7 days", "168 hours", or a Go duration).
func durationProperty(conf map[string]string, key string, def time.Duration) (time.Duration, error) {
	v, ok := conf[key]
	if !ok || strings.TrimSpace(v) == "" {
		return def, nil
	}
	d, err := parseInterval(v)
	if err != nil {
		return 0, fmt.Errorf("table property %s=%q: %w", key, v, err)
	}
	return d, nil
}

func parseInterval(v string) (time.Duration, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	s = strings.TrimPrefix(s, "interval")
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	parts := strings.Fields(s)
	if len(parts)%2 != 0 || len(parts) == 0 {
		return 0, errors.New("not an interval like \"interval 7 days\"")
	}
	var total time.Duration
	for i := 0; i < len(parts); i += 2 {
		n, err := strconv.ParseInt(parts[i], 10, 64)
		if err != nil {
			return 0, errors.New("not an interval like \"interval 7 days\"")
		}
		unit := strings.TrimSuffix(parts[i+1], "s")
		var d time.Duration
		switch unit {
		case "week":
			d = 7 * 24 * time.Hour
		case "day":
			d = 24 * time.Hour
		case "hour":
			d = time.Hour
		case "minute":
			d = time.Minute
		case "second":
			d = time.Second
		case "millisecond":
			d = time.Millisecond
		default:
			return 0, fmt.Errorf("unknown interval unit %q", parts[i+1])
		}
		total += time.Duration(n) * d
	}
	return total, nil
}
