package delta

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

// ErrFilesMissing is returned (wrapped) when a version cannot be restored
// or cloned because files it references are gone (VACUUM deleted them).
var ErrFilesMissing = errors.New("files of the version are missing")

// OperationRestore is commitInfo.operation of Restore.
const OperationRestore = "RESTORE"

// RestoreOptions say which version to restore: exactly one of Version and
// Timestamp (the version as of the timestamp, see VersionAsOf).
type RestoreOptions struct {
	Version   *int64
	Timestamp *time.Time
}

// RestoreResult describes a restore commit. The counts are Spark's
// operationMetrics of RESTORE.
type RestoreResult struct {
	// Version is the commit the restore wrote; RestoredVersion the version
	// whose state it brought back.
	Version, RestoredVersion int64
	// NumRemovedFiles live files were removed (not in RestoredVersion), of
	// RemovedFilesSize bytes; NumRestoredFiles were added back, of
	// RestoredFilesSize bytes.
	NumRemovedFiles, NumRestoredFiles   int
	RemovedFilesSize, RestoredFilesSize int64
	// NumOfFilesAfterRestore and TableSizeAfterRestore describe the table
	// after the commit.
	NumOfFilesAfterRestore int
	TableSizeAfterRestore  int64
	// MetadataRestored: the restored version's metaData (schema,
	// properties) differed from the current one and was committed.
	MetadataRestored bool
	// ProtocolUpgraded: the restored version needed features the current
	// protocol lacks (a protocol is never downgraded).
	ProtocolUpgraded bool
	Checkpointed     bool
	CheckpointErr    error
}

// Restore brings the table back to the state of an older version, as
// Delta's RESTORE TABLE: one commit that removes the live files that
// version did not have and adds back the files it had that are not live
// now (a file being its path and deletion vector), both with
// dataChange=true, plus that version's metaData when it differs (keeping
// the current row tracking and in-commit timestamp properties when that
// version predates them, see stickyProperties). The protocol is never
// downgraded: when the old version's protocol is lower the current one
// stays; when it needs more, the two are merged. Restored files keep
// their row ids (row tracking). Before committing, every file to add back
// (data and deletion vector) is checked to exist: a version whose files
// VACUUM deleted is refused with ErrFilesMissing naming them.
//
// The commit goes through the table's commit (conflict checks, row
// tracking, in-commit timestamps) one attempt at a time: when another
// writer wins the version, the restore is planned again against the new
// current state, so a concurrent append is undone too and the table ends
// exactly as the restored version (at most OpenOptions.MaxCommitAttempts
// plans).
func (t *Table) Restore(ctx context.Context, opts RestoreOptions) (RestoreResult, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	uri := t.store.URI()
	if opts.Version == nil && opts.Timestamp == nil {
		return RestoreResult{}, fmt.Errorf("restoring %s: give the version or the timestamp to restore", uri)
	}
	if _, err := t.catchUp(ctx); err != nil {
		return RestoreResult{}, fmt.Errorf("restoring %s: %w", uri, err)
	}
	if err := checkWritable(t.snap.protocol, t.snap.metadata, t.snap.schema); err != nil {
		return RestoreResult{}, fmt.Errorf("restoring %s: %w", uri, err)
	}
	target, err := resolveVersion(ctx, t.store, opts.Version, opts.Timestamp, -1)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("restoring %s: %w", uri, err)
	}
	if target > t.snap.version {
		return RestoreResult{}, fmt.Errorf("restoring %s to version %d: the table is at version %d: %w", uri, target, t.snap.version, ErrVersionNotAvailable)
	}
	old, err := LoadSnapshotAt(ctx, t.store, target)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("restoring %s: %w", uri, err)
	}
	maxPlans := t.opts.MaxCommitAttempts
	for plan := 1; ; plan++ {
		res, acts, ci, err := t.planRestore(ctx, old, opts.Timestamp)
		if err != nil {
			return res, fmt.Errorf("restoring %s to version %d: %w", uri, target, err)
		}
		// One attempt per plan: a retry inside commit would commit this
		// plan on top of the winner's files and leave them live.
		v, _, err := t.commitWith(ctx, acts, ci, commitOptions{changesMeta: res.MetadataRestored || res.ProtocolUpgraded, maxAttempts: 1})
		if err == nil {
			res.Version = v
			res.Checkpointed, res.CheckpointErr = t.maybeCheckpoint(ctx)
			return res, nil
		}
		lost := errors.Is(err, ErrTooManyAttempts) || errors.Is(err, ErrConflict)
		if !lost || plan >= maxPlans {
			return res, fmt.Errorf("restoring %s to version %d: %w", uri, target, err)
		}
		// commit applied the winners to t.snap: plan again from there.
		if err := sleepCtx(ctx, backoffDelay(plan, t.opts.RetryBaseDelay, t.opts.RetryMaxDelay)); err != nil {
			return res, err
		}
	}
}

// planRestore returns the actions and commitInfo that turn the current
// snapshot into old, with the metrics.
func (t *Table) planRestore(ctx context.Context, old *Snapshot, ts *time.Time) (RestoreResult, []Action, map[string]any, error) {
	cur := t.snap
	if err := checkWritable(cur.protocol, cur.metadata, cur.schema); err != nil {
		return RestoreResult{}, nil, nil, err
	}
	proto, upgraded := mergeProtocols(cur.protocol, old.protocol)
	if err := checkWritable(proto, old.metadata, old.schema); err != nil {
		return RestoreResult{}, nil, nil, err
	}
	curFiles := liveByFileKey(cur)
	oldFiles := liveByFileKey(old)
	var removes, adds []*AddFile
	for k, f := range curFiles {
		if _, ok := oldFiles[k]; !ok {
			removes = append(removes, f)
		}
	}
	for k, f := range oldFiles {
		if _, ok := curFiles[k]; !ok {
			adds = append(adds, f)
		}
	}
	sort.Slice(removes, func(i, j int) bool { return removes[i].Path < removes[j].Path })
	sort.Slice(adds, func(i, j int) bool { return adds[i].Path < adds[j].Path })
	// An append-only table refuses any commit that removes data.
	if len(removes) > 0 && propertyTrue(cur.metadata.Configuration, "delta.appendOnly") {
		return RestoreResult{}, nil, nil, fmt.Errorf("the table is append-only (delta.appendOnly=true): restoring version %d would remove %d files", old.version, len(removes))
	}
	if err := checkFilesExist(ctx, t.store, adds); err != nil {
		return RestoreResult{}, nil, nil, err
	}

	now := t.opts.Now()
	res := RestoreResult{RestoredVersion: old.version, NumRemovedFiles: len(removes), NumRestoredFiles: len(adds), ProtocolUpgraded: upgraded}
	var acts []Action
	if upgraded {
		acts = append(acts, Action{Protocol: &proto})
	}
	if md := restoredMetadata(cur.metadata, old.metadata); !sameMetadata(cur.metadata, md) {
		acts = append(acts, Action{MetaData: &md})
		res.MetadataRestored = true
	}
	for _, f := range removes {
		acts = append(acts, Action{Remove: removeOf(*f, now, true)})
		res.RemovedFilesSize += f.Size
	}
	for _, f := range adds {
		add := *f
		add.DataChange = true
		acts = append(acts, Action{Add: &add})
		res.RestoredFilesSize += f.Size
	}
	for _, f := range oldFiles {
		res.NumOfFilesAfterRestore++
		res.TableSizeAfterRestore += f.Size
	}
	var tsParam any
	if ts != nil {
		tsParam = ts.UTC().Format(time.RFC3339Nano)
	}
	ci := map[string]any{
		"operation": OperationRestore,
		"operationParameters": map[string]any{
			"version":   strconv.FormatInt(old.version, 10),
			"timestamp": tsParam,
		},
		"operationMetrics": map[string]any{
			"tableSizeAfterRestore":  strconv.FormatInt(res.TableSizeAfterRestore, 10),
			"numOfFilesAfterRestore": strconv.Itoa(res.NumOfFilesAfterRestore),
			"numRemovedFiles":        strconv.Itoa(res.NumRemovedFiles),
			"numRestoredFiles":       strconv.Itoa(res.NumRestoredFiles),
			"removedFilesSize":       strconv.FormatInt(res.RemovedFilesSize, 10),
			"restoredFilesSize":      strconv.FormatInt(res.RestoredFilesSize, 10),
		},
		"isBlindAppend": false,
	}
	return res, acts, ci, nil
}

// liveByFileKey indexes the live files of s by (path, deletion vector).
func liveByFileKey(s *Snapshot) map[string]*AddFile {
	out := make(map[string]*AddFile, len(s.files))
	for _, f := range s.files {
		out[fileKey(f.Path, f.DeletionVector)] = f
	}
	return out
}

// stickyProperties are table properties a restore keeps from the current
// metaData when the current one enables the feature and the old one does
// not: the protocol keeps the feature, so its state must stay too (row ids
// are still assigned and need their materialized columns; commit
// timestamps must keep increasing by their in-commit timestamps).
var stickyProperties = map[string][]string{
	"delta.enableRowTracking": {"delta.enableRowTracking", "delta.rowTracking.materializedRowIdColumnName",
		"delta.rowTracking.materializedRowCommitVersionColumnName"},
	"delta.enableInCommitTimestamps": {"delta.enableInCommitTimestamps", "delta.inCommitTimestampEnablementVersion",
		"delta.inCommitTimestampEnablementTimestamp"},
}

// restoredMetadata is the old version's metaData with the sticky
// properties of the current one, and the higher column mapping id
// high-water mark (ids are never reused).
func restoredMetadata(cur, old Metadata) Metadata {
	md := old
	md.Configuration = maps.Clone(old.Configuration)
	if md.Configuration == nil {
		md.Configuration = map[string]string{}
	}
	for enable, keys := range stickyProperties {
		if propertyTrue(cur.Configuration, enable) && !propertyTrue(old.Configuration, enable) {
			for _, k := range keys {
				if v, ok := cur.Configuration[k]; ok {
					md.Configuration[k] = v
				}
			}
		}
	}
	cm, _ := strconv.ParseInt(cur.Configuration[ColumnMappingMaxIDKey], 10, 64)
	om, err := strconv.ParseInt(old.Configuration[ColumnMappingMaxIDKey], 10, 64)
	if err == nil && cm > om {
		md.Configuration[ColumnMappingMaxIDKey] = strconv.FormatInt(cm, 10)
	}
	return md
}

// sameMetadata compares what RESTORE brings back of a metaData action.
func sameMetadata(a, b Metadata) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Description == b.Description &&
		a.SchemaString == b.SchemaString && slices.Equal(a.PartitionColumns, b.PartitionColumns) &&
		maps.Equal(a.Configuration, b.Configuration) && a.Format.Provider == b.Format.Provider &&
		maps.Equal(a.Format.Options, b.Format.Options)
}

// mergeProtocols returns a protocol supporting everything cur and old
// support, and whether it differs from cur. Legacy protocols are compared
// by version; once either lists table features, the result lists the
// union (legacy versions' implied features included).
func mergeProtocols(cur, old Protocol) (Protocol, bool) {
	legacy := func(p Protocol) bool { return p.MinWriterVersion < 7 && p.MinReaderVersion < 3 }
	if legacy(cur) && legacy(old) {
		if old.MinReaderVersion <= cur.MinReaderVersion && old.MinWriterVersion <= cur.MinWriterVersion {
			return cur, false
		}
		return Protocol{MinReaderVersion: max(cur.MinReaderVersion, old.MinReaderVersion),
			MinWriterVersion: max(cur.MinWriterVersion, old.MinWriterVersion)}, true
	}
	missing := false
	for _, f := range old.Features() {
		if !cur.Supports(f) {
			missing = true
			break
		}
	}
	if !missing {
		return cur, false
	}
	out := Protocol{MinReaderVersion: max(cur.MinReaderVersion, old.MinReaderVersion), MinWriterVersion: 7}
	writer := map[string]bool{}
	reader := map[string]bool{}
	for _, p := range []Protocol{cur, old} {
		for _, f := range p.Features() {
			writer[f] = true
		}
		for _, f := range p.ReaderFeatures {
			reader[f] = true
		}
		if p.MinReaderVersion == 2 {
			reader[FeatureColumnMapping] = true
		}
	}
	if out.MinReaderVersion == 3 {
		out.ReaderFeatures = slices.Sorted(maps.Keys(reader))
	}
	out.WriterFeatures = slices.Sorted(maps.Keys(writer))
	return out, true
}

// filePaths returns the store paths of a file and its on-disk deletion
// vector (empty when inline or absent).
func filePaths(store storage.Store, f *AddFile) (data, dv string, err error) {
	data, err = addStorePath(store, f.Path)
	if err != nil {
		return "", "", err
	}
	if d := f.DeletionVector; d != nil && d.StorageType != "i" {
		if dv, err = d.storePath(store); err != nil {
			return "", "", fmt.Errorf("file %s: %w", f.Path, err)
		}
	}
	return data, dv, nil
}

// addStorePath maps an add's path (relative and URI-encoded, or an
// absolute URI under the table) to a store path.
func addStorePath(store storage.Store, p string) (string, error) {
	if isAbsolutePath(p) {
		return absoluteToStorePath(store.URI(), p)
	}
	return pathKey(p), nil
}

// checkFilesExist stats every data and deletion vector file of files
// (a few at a time) and fails with ErrFilesMissing naming the first
// missing ones.
func checkFilesExist(ctx context.Context, store storage.Store, files []*AddFile) error {
	var paths []string
	seen := map[string]bool{}
	for _, f := range files {
		data, dv, err := filePaths(store, f)
		if err != nil {
			return err
		}
		for _, p := range []string{data, dv} {
			if p != "" && !seen[p] {
				seen[p] = true
				paths = append(paths, p)
			}
		}
	}
	missing := make([]bool, len(paths))
	errs := make([]error, len(paths))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, p := range paths {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, err := store.Stat(ctx, p)
			if errors.Is(err, storage.ErrNotFound) {
				missing[i] = true
			} else if err != nil {
				errs[i] = fmt.Errorf("checking %s: %w", p, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var gone []string
	for i, m := range missing {
		if m {
			gone = append(gone, paths[i])
		}
	}
	if len(gone) == 0 {
		return nil
	}
	shown := gone
	if len(shown) > 5 {
		shown = shown[:5]
	}
	more := ""
	if len(gone) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(gone)-len(shown))
	}
	return fmt.Errorf("%d of %d files are gone (vacuumed?): %s%s: %w", len(gone), len(paths), strings.Join(shown, ", "), more, ErrFilesMissing)
}
