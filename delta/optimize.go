package delta

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
)

// CompactionLevelTag is the add-action tag that records how many times a
// file's rows have been compacted (absent: 0, a file as written). Tiered
// compaction merges files of one level into the next, so a row is
// rewritten about log_MinFiles(rows) times, not once per compaction.
const CompactionLevelTag = "claimx.compactionLevel"

// OptimizeOptions tune compaction.
type OptimizeOptions struct {
	// TargetFileSize is the size compacted files aim for and the size below
	// which a file counts as small. Default: the handle's
	// Writer.TargetFileSize.
	TargetFileSize int64
	// MinFiles is how many small files a partition (in Tiered mode: one
	// level of a partition) needs before it is compacted. Default 2.
	MinFiles int
	// Partitions limits compaction to these partitions, each given by its
	// partitionValues as in the add actions (physical names under column
	// mapping); nil compacts every partition.
	Partitions []map[string]*string
	// Tiered compacts the small files of one compaction level at a time
	// (CompactionLevelTag) into the next level: what auto compaction does
	// after every commit, so a partition that keeps receiving small files
	// rewrites each row a few times rather than at every compaction. Off,
	// every small file of a partition goes into one rewrite.
	Tiered bool
	// DryRun reports what would be compacted without writing.
	DryRun bool
}

// CompactedBin is one rewrite: the files removed and the files that hold
// their rows now.
type CompactedBin struct {
	Removed []AddFile
	Added   []AddFile
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
	Bins                 []CompactedBin
	CheckpointErr        error
	Checkpointed, DryRun bool
}

// compactionLevel is the file's CompactionLevelTag, 0 when absent or not a
// number (files other engines wrote).
func compactionLevel(f AddFile) int {
	n, err := strconv.Atoi(f.Tags[CompactionLevelTag])
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// PartitionKey renders partition values (as in add actions) as one
// comparable string: equal values give equal keys whatever the map order.
func PartitionKey(pv map[string]*string) string {
	kb, _ := json.Marshal(pv) // map keys are sorted
	return string(kb)
}

// planBins groups the small files of the snapshot into rewrites: per
// partition (and per level when tiered), bin-packed to about target.
func planBins(snap *Snapshot, opts OptimizeOptions, target int64, minFiles int) ([][]AddFile, int) {
	var want map[string]bool
	if opts.Partitions != nil {
		want = make(map[string]bool, len(opts.Partitions))
		for _, p := range opts.Partitions {
			want[PartitionKey(p)] = true
		}
	}
	type group struct {
		part  string
		level int
	}
	byGroup := map[group][]AddFile{}
	var groups []group
	for _, f := range snap.Files() {
		// A file with a deletion vector is rewritten whatever its size,
		// so the deleted rows are dropped for good.
		if f.Size >= target && f.DeletionVector == nil {
			continue
		}
		g := group{part: PartitionKey(f.PartitionValues)}
		if want != nil && !want[g.part] {
			continue
		}
		if opts.Tiered {
			g.level = compactionLevel(f)
		}
		if _, ok := byGroup[g]; !ok {
			groups = append(groups, g)
		}
		byGroup[g] = append(byGroup[g], f)
	}
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].part != groups[j].part {
			return groups[i].part < groups[j].part
		}
		return groups[i].level < groups[j].level
	})
	var bins [][]AddFile
	parts := map[string]bool{}
	for _, g := range groups {
		files := byGroup[g]
		// Tiered (auto) compaction waits for MinFiles even with deletion
		// vectors: a manual Optimize is what purges them at once.
		hasDV := !opts.Tiered && slices.ContainsFunc(files, func(f AddFile) bool { return f.DeletionVector != nil })
		if len(files) < minFiles && !hasDV {
			continue
		}
		sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
		var cur []AddFile
		var size int64
		flush := func() {
			if len(cur) >= 2 || (len(cur) == 1 && cur[0].DeletionVector != nil) {
				bins = append(bins, cur)
				parts[g.part] = true
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
	}
	return bins, len(parts)
}

// Optimize compacts the small files of each partition into files of about
// TargetFileSize: one commit of remove + add actions, all with
// dataChange=false so streaming readers skip it. Rows are unchanged.
//
// Only planning and the commit hold the handle's lock; reading and
// rewriting the files does not, so appends through the same handle go on
// meanwhile. Appends never conflict with a compaction (they remove
// nothing). The compaction fails with ErrConflict, committing nothing, when
// a file it rewrites was removed or given a new deletion vector in the
// meantime (by a concurrent compaction, retention, restore or DELETE), or
// when the protocol or the partitioning changed or a column was dropped or
// retyped (columns added by schema evolution are fine: they read as null
// in the rewritten files); the files it wrote are then orphans Vacuum
// removes. Optimize calls on one handle run
// one at a time.
func (t *Table) Optimize(ctx context.Context, opts OptimizeOptions) (OptimizeResult, error) {
	t.optMu.Lock()
	defer t.optMu.Unlock()
	snap, bins, nparts, target, err := t.optimizePlan(ctx, opts)
	if err != nil {
		return OptimizeResult{}, err
	}
	res := OptimizeResult{Version: snap.version, DryRun: opts.DryRun, Partitions: nparts}
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
	acts, err := t.rewriteBins(ctx, snap, bins, target, &res)
	if err != nil {
		return res, fmt.Errorf("optimizing %s: %w", t.store.URI(), err)
	}
	ci := map[string]any{
		"operation": "OPTIMIZE",
		"operationParameters": map[string]any{
			"predicate": "[]",
			"zOrderBy":  "[]",
			"auto":      strconv.FormatBool(opts.Tiered),
		},
		"operationMetrics": map[string]any{
			"numRemovedFiles": strconv.Itoa(res.FilesRemoved),
			"numAddedFiles":   strconv.Itoa(res.FilesAdded),
			"numRemovedBytes": strconv.FormatInt(res.BytesRemoved, 10),
			"numAddedBytes":   strconv.FormatInt(res.BytesAdded, 10),
		},
		"isBlindAppend": false,
	}
	if snap.FeatureEnabled(FeatureRowTracking) {
		ci["tags"] = map[string]string{"delta.rowTracking.preserved": "true"}
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	if _, err := t.catchUp(ctx); err != nil {
		return res, fmt.Errorf("optimizing %s: %w", t.store.URI(), err)
	}
	if err := t.stillCompactable(snap, bins); err != nil {
		return res, fmt.Errorf("optimizing %s: %w", t.store.URI(), err)
	}
	v, _, err := t.commitWith(ctx, acts, ci, commitOptions{rewriteOf: &snap.metadata})
	if err != nil {
		return res, fmt.Errorf("optimizing %s: %w", t.store.URI(), err)
	}
	res.Version = v
	// Report the adds as committed (row tracking fills fields per attempt).
	for i := range res.Bins {
		for j, a := range res.Bins[i].Added {
			if f, ok := t.snap.files[pathKey(a.Path)]; ok {
				res.Bins[i].Added[j] = *f
			}
		}
	}
	res.Checkpointed, res.CheckpointErr = t.maybeCheckpoint(ctx)
	return res, nil
}

// optimizePlan catches up and plans the rewrites under the lock. It returns
// the snapshot's header (version, protocol, metadata, schema, without the
// file maps, which later commits mutate) to read the files with outside the
// lock, the bins, how many partitions they cover, and the effective target.
func (t *Table) optimizePlan(ctx context.Context, opts OptimizeOptions) (*Snapshot, [][]AddFile, int, int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := checkWritable(t.snap.protocol, t.snap.metadata, t.snap.schema); err != nil {
		return nil, nil, 0, 0, fmt.Errorf("optimizing %s: %w", t.store.URI(), err)
	}
	if _, err := t.catchUp(ctx); err != nil {
		return nil, nil, 0, 0, fmt.Errorf("optimizing %s: %w", t.store.URI(), err)
	}
	target := opts.TargetFileSize
	if target <= 0 {
		target = t.opts.Writer.TargetFileSize
	}
	bins, nparts := planBins(t.snap, opts, target, max(opts.MinFiles, 2))
	s := t.snap
	hdr := &Snapshot{version: s.version, protocol: s.protocol, metadata: s.metadata, schema: s.schema, checkpointVersion: s.checkpointVersion}
	return hdr, bins, nparts, target, nil
}

// AutoCompactEnabled reports whether the table asks its writers to compact
// small files after their commits: delta.autoOptimize.autoCompact set to
// true, auto or legacy, the values Databricks accepts.
func AutoCompactEnabled(conf map[string]string) bool {
	switch strings.ToLower(strings.TrimSpace(conf["delta.autoOptimize.autoCompact"])) {
	case "true", "auto", "legacy":
		return true
	}
	return false
}

// Properties returns the table's configuration (a copy).
func (t *Table) Properties() map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.snap.Configuration()
}

// FileCounts returns the number of live files and the most files any one
// partition holds (the whole table counts as one partition when it has no
// partition columns): what auto compaction keeps bounded.
func (t *Table) FileCounts() (files, maxPerPartition int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.snap.metadata.PartitionColumns) == 0 {
		return len(t.snap.files), len(t.snap.files)
	}
	per := map[string]int{}
	for _, f := range t.snap.files {
		per[PartitionKey(f.PartitionValues)]++
	}
	for _, n := range per {
		maxPerPartition = max(maxPerPartition, n)
	}
	return len(t.snap.files), maxPerPartition
}

// stillCompactable checks, under the lock and caught up, that what the
// rewrite relied on holds: every file it removes is live with the same
// deletion vector, the protocol is unchanged, and the files it wrote stay
// valid under the current metaData (columns may have been added).
func (t *Table) stillCompactable(planned *Snapshot, bins [][]AddFile) error {
	cur := t.snap
	if !protocolEqual(cur.protocol, planned.protocol) || !rewriteCompatible(planned.metadata, cur.metadata) {
		return fmt.Errorf("the table's protocol, partitioning or columns changed after version %d: %w", planned.version, ErrConflict)
	}
	for _, b := range bins {
		for _, f := range b {
			live, ok := cur.files[pathKey(f.Path)]
			if !ok || live.DeletionVector.UniqueID() != f.DeletionVector.UniqueID() {
				return fmt.Errorf("%s was removed or changed after version %d: %w", f.Path, planned.version, ErrConflict)
			}
		}
	}
	return nil
}

func protocolEqual(a, b Protocol) bool {
	return a.MinReaderVersion == b.MinReaderVersion && a.MinWriterVersion == b.MinWriterVersion &&
		slices.Equal(a.ReaderFeatures, b.ReaderFeatures) && slices.Equal(a.WriterFeatures, b.WriterFeatures)
}

// rewriteBins reads each bin's rows and writes them as new files, returning
// the remove and add actions; it fills res's added counts and bins.
func (t *Table) rewriteBins(ctx context.Context, snap *Snapshot, bins [][]AddFile, target int64, res *OptimizeResult) ([]Action, error) {
	// With row tracking enabled, compaction preserves each row's stable
	// row id and commit version by materializing them in the hidden
	// columns the table names; the data files are read and written with
	// those two extra fields.
	readSchema := snap.schema
	preserve := snap.FeatureEnabled(FeatureRowTracking)
	if preserve {
		idCol, verCol, err := materializedColumns(snap.metadata.Configuration)
		if err != nil {
			return nil, err
		}
		fields := append(snap.schema.Fields(), Field{Name: idCol, Type: "long", Nullable: true}, Field{Name: verCol, Type: "long", Nullable: true})
		if readSchema, err = NewSchema(fields); err != nil {
			return nil, fmt.Errorf("schema with the materialized row tracking columns: %w", err)
		}
	}
	layout, err := newDataLayout(readSchema, snap.metadata.PartitionColumns, snap.metadata.Configuration)
	if err != nil {
		return nil, err
	}
	wopts := t.opts.Writer
	wopts.TargetFileSize = target
	now := t.opts.Now()
	var acts []Action
	for _, b := range bins {
		written, err := t.rewriteBin(ctx, snap, layout, b, wopts, preserve)
		if err != nil {
			return nil, err
		}
		level := 0
		for _, f := range b {
			level = max(level, compactionLevel(f)+1)
			acts = append(acts, Action{Remove: removeOf(f, now, false)})
		}
		bin := CompactedBin{Removed: b}
		for _, w := range written {
			add := w.add
			add.DataChange = false
			add.Tags = map[string]string{CompactionLevelTag: strconv.Itoa(level)}
			acts = append(acts, Action{Add: &add})
			bin.Added = append(bin.Added, add)
			res.FilesAdded++
			res.BytesAdded += add.Size
			res.Rows += w.rows
		}
		res.Bins = append(res.Bins, bin)
	}
	return acts, nil
}

// rewriteBin streams the rows of one bin's files, a file at a time, into
// new files of the same partition: memory holds one input file's rows and
// the output file being encoded, not the whole bin. A bin whose rows are
// all deleted writes nothing.
func (t *Table) rewriteBin(ctx context.Context, snap *Snapshot, layout *dataLayout, bin []AddFile, wopts WriterOptions, preserve bool) ([]writtenFile, error) {
	pvals := bin[0].PartitionValues
	dir := ""
	if len(layout.partCols) > 0 {
		names := make([]string, len(layout.partCols))
		vals := make([]*string, len(layout.partCols))
		for k, ci := range layout.partCols {
			names[k] = PhysicalName(layout.schema.fields[ci].Name, layout.schema.fields[ci].Metadata)
			vals[k] = pvals[names[k]]
		}
		dir = partitionDir(names, vals)
	}
	var seq atomic.Int64
	fw, err := newFileWriter(layout, wopts, t.store, dir, pvals, t.opts.Now, &seq)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, f := range bin {
		rows, idx, err := snap.readFileRows(ctx, t.store, f, layout.schema)
		if err != nil {
			return nil, err
		}
		if preserve {
			if err := materializeRowTracking(f, rows, idx); err != nil {
				return nil, err
			}
		}
		for _, r := range rows {
			if err := fw.writeRow(ctx, n, r); err != nil {
				return nil, fmt.Errorf("writing compacted files: %s: %w", f.Path, err)
			}
			n++
		}
	}
	if n == 0 {
		return nil, nil
	}
	if err := fw.finishFile(ctx); err != nil {
		return nil, fmt.Errorf("writing compacted files: %w", err)
	}
	return fw.out, nil
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
