package delta

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
)

// OptimizeOptions tune compaction.
type OptimizeOptions struct {
	// TargetFileSize is the size compacted files aim for and the size below
	// which a file counts as small. Default: the handle's
	// Writer.TargetFileSize.
	TargetFileSize int64
	// MinFiles is how many small files a partition needs before it is
	// compacted. Default 2.
	MinFiles int
	// DryRun reports what would be compacted without writing.
	DryRun bool
}

// OptimizeResult describes a compaction.
type OptimizeResult struct {
	// Version is the OPTIMIZE commit, or the current version if nothing was
	// committed.
	Version              int64
	NoOp                 bool
	Partitions           int
	FilesRemoved         int
	FilesAdded           int
	BytesRemoved         int64
	BytesAdded           int64
	Rows                 int64
	RemovedPaths         []string
	CheckpointErr        error
	Checkpointed, DryRun bool
}

// Optimize compacts the small files of each partition into files of about
// TargetFileSize: one commit of remove + add actions, all with
// dataChange=false so streaming readers skip it. Rows are unchanged. A
// concurrent commit that removes one of the same files makes it fail with
// ErrConflict (nothing is committed; the written files are orphans Vacuum
// removes).
func (t *Table) Optimize(ctx context.Context, opts OptimizeOptions) (OptimizeResult, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := checkWritable(t.snap.protocol, t.snap.metadata, t.snap.schema); err != nil {
		return OptimizeResult{}, fmt.Errorf("optimizing %s: %w", t.store.URI(), err)
	}
	if _, err := t.catchUp(ctx); err != nil {
		return OptimizeResult{}, fmt.Errorf("optimizing %s: %w", t.store.URI(), err)
	}
	target := opts.TargetFileSize
	if target <= 0 {
		target = t.opts.Writer.TargetFileSize
	}
	minFiles := opts.MinFiles
	if minFiles < 2 {
		minFiles = 2
	}
	snap := t.snap
	// Group small files by partition.
	byPart := map[string][]AddFile{}
	var keys []string
	for _, f := range snap.Files() {
		// A file with a deletion vector is rewritten whatever its size,
		// so the deleted rows are dropped for good.
		if f.Size >= target && f.DeletionVector == nil {
			continue
		}
		kb, _ := json.Marshal(f.PartitionValues) // map keys are sorted
		k := string(kb)
		if _, ok := byPart[k]; !ok {
			keys = append(keys, k)
		}
		byPart[k] = append(byPart[k], f)
	}
	sort.Strings(keys)
	// Bin-pack each partition's small files into bins of about target.
	var bins [][]AddFile
	res := OptimizeResult{Version: snap.version, DryRun: opts.DryRun}
	for _, k := range keys {
		files := byPart[k]
		hasDV := slices.ContainsFunc(files, func(f AddFile) bool { return f.DeletionVector != nil })
		if len(files) < minFiles && !hasDV {
			continue
		}
		sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
		var cur []AddFile
		var size int64
		partBins := 0
		flush := func() {
			if len(cur) >= 2 || (len(cur) == 1 && cur[0].DeletionVector != nil) {
				bins = append(bins, cur)
				partBins++
			}
			cur, size = nil, 0
		}
		for _, f := range files {
			if size+f.Size > target && len(cur) > 0 {
				flush()
			}
			cur = append(cur, f)
			size += f.Size
		}
		flush()
		if partBins > 0 {
			res.Partitions++
		}
	}
	if len(bins) == 0 {
		res.NoOp = true
		return res, nil
	}
	for _, b := range bins {
		for _, f := range b {
			res.FilesRemoved++
			res.BytesRemoved += f.Size
			res.RemovedPaths = append(res.RemovedPaths, f.Path)
		}
	}
	if opts.DryRun {
		return res, nil
	}
	// With row tracking enabled, compaction preserves each row's stable
	// row id and commit version by materializing them in the hidden
	// columns the table names; the data files are read and written with
	// those two extra fields.
	readSchema := snap.schema
	preserve := snap.FeatureEnabled(FeatureRowTracking)
	if preserve {
		idCol, verCol, err := materializedColumns(snap.metadata.Configuration)
		if err != nil {
			return res, fmt.Errorf("optimizing %s: %w", t.store.URI(), err)
		}
		fields := append(snap.schema.Fields(), Field{Name: idCol, Type: "long", Nullable: true}, Field{Name: verCol, Type: "long", Nullable: true})
		if readSchema, err = NewSchema(fields); err != nil {
			return res, fmt.Errorf("optimizing %s: schema with the materialized row tracking columns: %w", t.store.URI(), err)
		}
	}
	layout, err := newDataLayout(readSchema, snap.metadata.PartitionColumns, snap.metadata.Configuration)
	if err != nil {
		return res, fmt.Errorf("optimizing %s: %w", t.store.URI(), err)
	}
	wopts := t.opts.Writer
	wopts.TargetFileSize = target
	now := t.opts.Now()
	var acts []Action
	for _, b := range bins {
		var rows []Row
		for _, f := range b {
			r, idx, err := snap.readFileRows(ctx, t.store, f, readSchema)
			if err != nil {
				return res, fmt.Errorf("optimizing %s: %w", t.store.URI(), err)
			}
			if preserve {
				if err := materializeRowTracking(f, r, idx); err != nil {
					return res, fmt.Errorf("optimizing %s: %w", t.store.URI(), err)
				}
			}
			rows = append(rows, r...)
		}
		// A bin whose rows are all deleted is only removed.
		var written []writtenFile
		if len(rows) > 0 {
			written, err = writeDataFiles(ctx, t.store, layout, rows, wopts, t.opts.Now)
			if err != nil {
				return res, fmt.Errorf("optimizing %s: writing compacted files: %w", t.store.URI(), err)
			}
		}
		for _, f := range b {
			// The remove names the logical file: path and DV, with the
			// row tracking fields of the add it removes.
			acts = append(acts, Action{Remove: &RemoveFile{
				Path:                    f.Path,
				DeletionTimestamp:       ptr(now.UnixMilli()),
				DataChange:              false,
				ExtendedFileMetadata:    ptr(true),
				PartitionValues:         f.PartitionValues,
				Size:                    ptr(f.Size),
				Stats:                   f.Stats,
				Tags:                    f.Tags,
				DeletionVector:          f.DeletionVector,
				BaseRowID:               f.BaseRowID,
				DefaultRowCommitVersion: f.DefaultRowCommitVersion,
			}})
		}
		for _, w := range written {
			add := w.add
			add.DataChange = false
			acts = append(acts, Action{Add: &add})
			res.FilesAdded++
			res.BytesAdded += add.Size
			res.Rows += w.rows
		}
	}
	ci := map[string]any{
		"operation": "OPTIMIZE",
		"operationParameters": map[string]any{
			"predicate": "[]",
			"zOrderBy":  "[]",
		},
		"operationMetrics": map[string]any{
			"numRemovedFiles": strconv.Itoa(res.FilesRemoved),
			"numAddedFiles":   strconv.Itoa(res.FilesAdded),
			"numRemovedBytes": strconv.FormatInt(res.BytesRemoved, 10),
			"numAddedBytes":   strconv.FormatInt(res.BytesAdded, 10),
		},
		"isBlindAppend": false,
	}
	if preserve {
		ci["tags"] = map[string]string{"delta.rowTracking.preserved": "true"}
	}
	v, _, err := t.commit(ctx, acts, ci, false)
	if err != nil {
		return res, fmt.Errorf("optimizing %s: %w", t.store.URI(), err)
	}
	res.Version = v
	res.Checkpointed, res.CheckpointErr = t.maybeCheckpoint(ctx)
	return res, nil
}

// materializeRowTracking fills the two trailing columns of rows (the
// materialized row id and row commit version) with each row's stable
// values: the materialized value when present, else baseRowId + the row's
// physical index (idx[i], or i when no row was deleted) and
// defaultRowCommitVersion.
func materializeRowTracking(f AddFile, rows []Row, idx []int64) error {
	for i, r := range rows {
		n := len(r)
		if r[n-2] == nil {
			if f.BaseRowID == nil {
				return fmt.Errorf("row tracking is enabled but %s has no baseRowId", f.Path)
			}
			phys := int64(i)
			if idx != nil {
				phys = idx[i]
			}
			r[n-2] = *f.BaseRowID + phys
		}
		if r[n-1] == nil {
			if f.DefaultRowCommitVersion == nil {
				return fmt.Errorf("row tracking is enabled but %s has no defaultRowCommitVersion", f.Path)
			}
			r[n-1] = *f.DefaultRowCommitVersion
		}
	}
	return nil
}
