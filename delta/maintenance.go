package delta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

// MinVacuumRetention is the shortest retention Vacuum accepts without
// Force: a shorter one can delete files that a reader of a slightly older
// version, or a writer that has not committed yet, still needs.
const MinVacuumRetention = 168 * time.Hour

// VacuumOptions tune Vacuum.
type VacuumOptions struct {
	// Retention: files younger than this are kept. 0 means the table
	// property delta.deletedFileRetentionDuration, or 168h.
	Retention time.Duration
	// Force allows a retention under MinVacuumRetention.
	Force bool
	// DryRun lists what would be deleted without deleting.
	DryRun bool
}

// VacuumResult lists the files deleted (or, in a dry run, to delete).
type VacuumResult struct {
	Deleted []string
	Bytes   int64
	DryRun  bool
}

// Vacuum deletes files under the table that the current snapshot does not
// reference (neither a live file nor a tombstone younger than the
// retention) and that are older than the retention: files of compacted or
// dropped data, and orphans of writers that crashed before committing.
// Directories whose name starts with '_' or '.' (the log, change data) are
// never touched.
func (t *Table) Vacuum(ctx context.Context, opts VacuumOptions) (VacuumResult, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := checkWritable(t.snap.protocol, t.snap.metadata, t.snap.schema); err != nil {
		return VacuumResult{}, fmt.Errorf("vacuuming %s: %w", t.store.URI(), err)
	}
	if _, err := t.catchUp(ctx); err != nil {
		return VacuumResult{}, fmt.Errorf("vacuuming %s: %w", t.store.URI(), err)
	}
	retention := opts.Retention
	if retention <= 0 {
		r, err := durationProperty(t.snap.metadata.Configuration, "delta.deletedFileRetentionDuration", MinVacuumRetention)
		if err != nil {
			return VacuumResult{}, fmt.Errorf("vacuuming %s: %w", t.store.URI(), err)
		}
		retention = r
	}
	if retention < MinVacuumRetention && !opts.Force {
		return VacuumResult{}, fmt.Errorf("vacuuming %s: retention %s is under %s, which can delete files that readers or uncommitted writers still need; set Force to do it anyway", t.store.URI(), retention, MinVacuumRetention)
	}
	now := t.opts.Now()
	cutoff := now.Add(-retention)
	keep := make(map[string]bool, len(t.snap.files)+len(t.snap.tombstones))
	keepDV := func(dv *DeletionVector) {
		if dv == nil || dv.StorageType == "i" {
			return
		}
		if p, err := dv.storePath(t.store); err == nil {
			keep[p] = true
		}
	}
	for k, f := range t.snap.files {
		keep[k] = true
		keepDV(f.DeletionVector)
	}
	for _, r := range t.snap.tombstones {
		if r.DeletionTimestamp != nil && *r.DeletionTimestamp > cutoff.UnixMilli() {
			keep[pathKey(r.Path)] = true
			keepDV(r.DeletionVector)
		}
	}
	objs, err := t.store.List(ctx, "")
	if err != nil {
		return VacuumResult{}, fmt.Errorf("vacuuming %s: listing files: %w", t.store.URI(), err)
	}
	res := VacuumResult{DryRun: opts.DryRun}
	for _, o := range objs {
		if hiddenPath(o.Path) || keep[o.Path] || !o.ModTime.Before(cutoff) {
			continue
		}
		res.Deleted = append(res.Deleted, o.Path)
		res.Bytes += o.Size
	}
	if opts.DryRun {
		return res, nil
	}
	for _, p := range res.Deleted {
		if err := t.store.Delete(ctx, p); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return res, fmt.Errorf("vacuuming %s: %w", t.store.URI(), err)
		}
	}
	return res, nil
}

// hiddenPath reports whether any directory (or the file) of p starts with
// '_' or '.', as Spark's VACUUM skips them; a partition directory such as
// "_col=1" is not hidden because it holds '='.
func hiddenPath(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if (strings.HasPrefix(seg, "_") || strings.HasPrefix(seg, ".")) && !strings.Contains(seg, "=") {
			return true
		}
	}
	return false
}

// LogCleanupOptions tune CleanupLog.
type LogCleanupOptions struct {
	// Retention: log files younger than this are kept. 0 means the table
	// property delta.logRetentionDuration, or 30 days.
	Retention time.Duration
	// DryRun lists what would be deleted.
	DryRun bool
}

// CleanupLog deletes commits and checkpoints that are older than the
// retention and behind a checkpoint, the way Spark's metadata cleanup
// does: it finds the newest checkpoint C such that every log file of a
// version below C is older than the retention, and deletes those files.
// Every version from C on stays readable.
func (t *Table) CleanupLog(ctx context.Context, opts LogCleanupOptions) ([]string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// vacuumProtocolCheck: maintenance that deletes files checks the write
	// protocol first, for every table.
	if err := checkWritable(t.snap.protocol, t.snap.metadata, t.snap.schema); err != nil {
		return nil, fmt.Errorf("cleaning up the log of %s: %w", t.store.URI(), err)
	}
	retention := opts.Retention
	if retention <= 0 {
		r, err := durationProperty(t.snap.metadata.Configuration, "delta.logRetentionDuration", 30*24*time.Hour)
		if err != nil {
			return nil, fmt.Errorf("cleaning up the log of %s: %w", t.store.URI(), err)
		}
		retention = r
	}
	cutoff := t.opts.Now().Add(-retention)
	l, err := listLog(ctx, t.store)
	if err != nil {
		return nil, err
	}
	type vf struct {
		version int64
		info    storage.ObjectInfo
	}
	var files []vf
	for _, o := range l.files {
		lf := parseLogName(o.Path)
		name := strings.TrimPrefix(o.Path, "_delta_log/")
		if lf.kind == logOther {
			// .crc and compacted files still carry a version prefix.
			if len(name) >= 20 && strings.Trim(name[:20], "0123456789") == "" && !strings.Contains(name, "/") {
				n, _ := strconv.ParseInt(name[:20], 10, 64)
				files = append(files, vf{n, o})
			}
			continue
		}
		files = append(files, vf{lf.version, o})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].version < files[j].version })
	// Newest checkpoint C with every file below C older than the cutoff.
	var cps []int64
	for v := range l.checkpoints {
		if v <= t.snap.version {
			cps = append(cps, v)
		}
	}
	sort.Slice(cps, func(i, j int) bool { return cps[i] < cps[j] })
	var c int64 = -1
	for _, cv := range cps {
		ok := true
		for _, f := range files {
			if f.version >= cv {
				break
			}
			if !f.info.ModTime.Before(cutoff) {
				ok = false
				break
			}
		}
		if !ok {
			break
		}
		c = cv
	}
	var del []string
	for _, f := range files {
		if f.version < c {
			del = append(del, f.info.Path)
		}
	}
	// Sidecars: delete those no kept checkpoint references and older than
	// the cutoff (a younger one may belong to a checkpoint being written).
	if c >= 0 {
		referenced := map[string]bool{}
		for _, o := range l.files {
			lf := parseLogName(o.Path)
			// Classic-named checkpoints can follow the V2 spec too.
			if lf.version < c || (lf.kind != logCheckpoint && lf.kind != logCheckpointV2) {
				continue
			}
			sc, err := checkpointSidecars(ctx, t.store, o.Path)
			if err != nil {
				// An unreadable kept checkpoint: delete nothing.
				return nil, fmt.Errorf("cleaning up the log of %s: reading checkpoint %s for its sidecars: %w", t.store.URI(), o.Path, err)
			}
			for _, s := range sc {
				referenced[s] = true
			}
		}
		for _, o := range l.files {
			if strings.HasPrefix(o.Path, sidecarDir) && !referenced[o.Path] && o.ModTime.Before(cutoff) {
				del = append(del, o.Path)
			}
		}
	}
	if opts.DryRun {
		return del, nil
	}
	for _, p := range del {
		if err := t.store.Delete(ctx, p); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return del, fmt.Errorf("cleaning up the log of %s: %w", t.store.URI(), err)
		}
	}
	return del, nil
}

// HistoryEntry is one version's commitInfo.
type HistoryEntry struct {
	Version int64
	// Timestamp is the inCommitTimestamp when the commit has one, else
	// commitInfo.timestamp, else the commit file's modification time.
	Timestamp time.Time
	// InCommitTimestamp: Timestamp is the commit's inCommitTimestamp.
	InCommitTimestamp bool
	Operation         string
	CommitInfo        map[string]any
}

// History returns the commitInfo of the newest versions, newest first, at
// most limit (0: all still in the log; versions removed by log cleanup end
// the history).
func (t *Table) History(ctx context.Context, limit int) ([]HistoryEntry, error) {
	t.mu.Lock()
	top := t.snap.version
	t.mu.Unlock()
	var out []HistoryEntry
	for v := top; v >= 0 && (limit <= 0 || len(out) < limit); v-- {
		b, err := t.store.Get(ctx, commitPath(v))
		if errors.Is(err, storage.ErrNotFound) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("reading history of %s: version %d: %w", t.store.URI(), v, err)
		}
		acts, err := ParseCommit(b)
		if err != nil {
			return out, fmt.Errorf("reading history of %s: version %d: %w", t.store.URI(), v, err)
		}
		e := HistoryEntry{Version: v}
		for _, a := range acts {
			if a.CommitInfo != nil {
				e.CommitInfo = a.CommitInfo
				if ts, ok := commitTimestamp(a.CommitInfo); ok {
					e.Timestamp = ts
				}
				// With in-commit timestamps the commit's own timestamp is
				// the authoritative one (monotonic, unlike file times).
				if ict, ok := inCommitTimestamp(a.CommitInfo); ok {
					e.Timestamp = time.UnixMilli(ict)
					e.InCommitTimestamp = true
				}
				e.Operation, _ = a.CommitInfo["operation"].(string)
			}
		}
		if e.Timestamp.IsZero() {
			if oi, err := t.store.Stat(ctx, commitPath(v)); err == nil {
				e.Timestamp = oi.ModTime
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// Description summarises a table for `delta describe`.
type Description struct {
	URI              string
	ID               string
	Name             string
	Description      string
	Version          int64
	CreatedTime      time.Time
	Protocol         Protocol
	Schema           *Schema
	PartitionColumns []string
	Properties       map[string]string
	NumFiles         int
	SizeBytes        int64
	// NumRows is the sum of numRecords, less the rows deletion vectors
	// delete, over files with stats; RowsExact is false when some file has
	// none.
	NumRows           int64
	RowsExact         bool
	NumPartitions     int
	CheckpointVersion int64
	Txns              map[string]int64
	// Features are the table features the protocol supports (explicit or
	// implied by legacy versions), sorted.
	Features []string
	// DeletedRows is the sum of the cardinalities of the live files'
	// deletion vectors; FilesWithDeletionVectors counts those files.
	DeletedRows              int64
	FilesWithDeletionVectors int
	// Domains are the names of the live metadata domains.
	Domains []string
	// RowIDHighWaterMark is the highest row id assigned (-1: none).
	RowIDHighWaterMark int64
	// InCommitTimestamp is the Unix ms inCommitTimestamp of the current
	// version, 0 when it has none.
	InCommitTimestamp int64
	// TargetFileSize is the handle's writer target (OpenOptions.Writer);
	// a file under it counts as small. SmallFiles counts them over the
	// table.
	TargetFileSize int64
	SmallFiles     int
	// Partitions are the partitions with live files, sorted by their
	// values in partition column order (one entry with no values for an
	// unpartitioned table).
	Partitions []PartitionDescription
}

// PartitionDescription summarises the live files of one partition.
type PartitionDescription struct {
	// Values are the partition values by logical column name (nil: null).
	Values    map[string]*string
	NumFiles  int
	SizeBytes int64
	// NumRows is numRecords less deletion-vector cardinality over the
	// files with stats; RowsExact is false when some file has none.
	NumRows   int64
	RowsExact bool
	// SmallFiles counts files under Description.TargetFileSize.
	SmallFiles int
}

// Describe summarises the current snapshot.
func (t *Table) Describe() Description {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.snap
	d := Description{
		URI:               t.store.URI(),
		ID:                s.metadata.ID,
		Name:              s.metadata.Name,
		Description:       s.metadata.Description,
		Version:           s.version,
		Protocol:          s.protocol,
		Schema:            s.schema,
		PartitionColumns:  s.PartitionColumns(),
		Properties:        s.Configuration(),
		NumFiles:          len(s.files),
		RowsExact:         true,
		CheckpointVersion: s.checkpointVersion,
		Txns:              s.Txns(),
		Features:          s.protocol.Features(),
		TargetFileSize:    t.opts.Writer.TargetFileSize,
	}
	for _, dm := range s.Domains() {
		d.Domains = append(d.Domains, dm.Domain)
	}
	d.RowIDHighWaterMark, _ = s.RowIDHighWaterMark()
	d.InCommitTimestamp, _ = s.InCommitTimestamp()
	if s.metadata.CreatedTime != nil {
		d.CreatedTime = time.UnixMilli(*s.metadata.CreatedTime)
	}
	partCols := s.metadata.PartitionColumns
	parts := map[string]*PartitionDescription{}
	for _, f := range s.files {
		d.SizeBytes += f.Size
		if f.DeletionVector != nil {
			d.DeletedRows += f.DeletionVector.Cardinality
			d.FilesWithDeletionVectors++
		}
		vals := logicalPartitionValues(s.schema, partCols, f.PartitionValues)
		kb, _ := json.Marshal(vals) // map keys are sorted
		p := parts[string(kb)]
		if p == nil {
			p = &PartitionDescription{Values: vals, RowsExact: true}
			parts[string(kb)] = p
		}
		p.NumFiles++
		p.SizeBytes += f.Size
		if n, ok := liveRecords(f); ok {
			d.NumRows += n
			p.NumRows += n
		} else {
			d.RowsExact = false
			p.RowsExact = false
		}
		if f.Size < d.TargetFileSize {
			d.SmallFiles++
			p.SmallFiles++
		}
	}
	if len(partCols) > 0 {
		d.NumPartitions = len(parts)
	}
	for _, p := range parts {
		d.Partitions = append(d.Partitions, *p)
	}
	sort.Slice(d.Partitions, func(i, j int) bool {
		return comparePartitionValues(partCols, d.Partitions[i].Values, d.Partitions[j].Values) < 0
	})
	return d
}

func statsNumRecords(stats string) (int64, bool) {
	if stats == "" {
		return 0, false
	}
	var s struct {
		NumRecords *int64 `json:"numRecords"`
	}
	if err := json.Unmarshal([]byte(stats), &s); err != nil || s.NumRecords == nil {
		return 0, false
	}
	return *s.NumRecords, true
}
