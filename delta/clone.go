package delta

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/google/uuid"
)

// OperationClone is commitInfo.operation of Clone.
const OperationClone = "CLONE"

// cloneWorkers bounds the files copied at once. Each worker holds one
// whole file in memory (storage.Store has only Get and Put), so memory is
// about cloneWorkers times the largest data file.
const cloneWorkers = 4

// CloneOptions tune Clone.
type CloneOptions struct {
	// Version or Timestamp (at most one) select the source version; with
	// neither the newest is cloned.
	Version   *int64
	Timestamp *time.Time
	// Name is the clone's metaData.name (empty: the source's).
	Name string
	// Properties override (or add) table properties of the clone.
	Properties map[string]string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// CloneResult describes a clone.
type CloneResult struct {
	// SourceVersion is the version of the source that was cloned.
	SourceVersion int64
	// TableID is the clone's new metaData.id.
	TableID string
	// NumFiles and TableSize are the clone's live data files (sourceNumOfFiles
	// and sourceTableSize of Spark's metrics).
	NumFiles  int
	TableSize int64
	// NumCopiedFiles objects (data files and deletion vector files) of
	// CopiedBytes bytes were copied.
	NumCopiedFiles int
	CopiedBytes    int64
}

// copyJob is one object to copy from the source store into the clone.
type copyJob struct {
	from storage.Store
	src  string
	dst  string
	// size is the expected size; -1 when the log does not tell it (deletion
	// vector files).
	size int64
}

// Clone makes a deep clone of the table in src (at the selected version)
// in dst, which may be another backend: every live data file and deletion
// vector file is copied to the same relative path (files the log names by
// an absolute path, and deletion vectors of storage type "p", are copied
// in under the clone's root and referenced relatively), then version 0 of
// dst is written with the source's protocol, a metaData with a new table
// id (same schema, partitioning and configuration, column mapping
// included, with opts.Properties applied), the adds (dataChange=true,
// stats, deletion vectors and row ids kept), the source's metadata
// domains (the row tracking high-water mark among them) and a commitInfo
// with operation CLONE. Txn actions are not copied, as Spark does not.
// A table already in dst is refused with ErrTableExists before anything
// is copied. Copies run cloneWorkers at a time, each holding one whole
// file in memory, and each copy's size is checked. A failure leaves the
// files copied so far but no log: dst is still not a table, and a retry
// overwrites them.
func Clone(ctx context.Context, src, dst storage.Store, opts CloneOptions) (CloneResult, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	fail := func(err error) (CloneResult, error) {
		return CloneResult{}, fmt.Errorf("cloning %s into %s: %w", src.URI(), dst.URI(), err)
	}
	if err := refuseExistingTable(ctx, dst); err != nil {
		return fail(err)
	}
	l, err := listLog(ctx, src)
	if err != nil {
		return fail(err)
	}
	version, err := resolveVersion(ctx, src, opts.Version, opts.Timestamp, l.latest())
	if err != nil {
		return fail(err)
	}
	snap, err := loadSnapshotAt(ctx, src, l, version)
	if err != nil {
		return fail(err)
	}
	md := snap.metadata
	md.ID = uuid.NewString()
	md.CreatedTime = ptr(now().UnixMilli())
	if opts.Name != "" {
		md.Name = opts.Name
	}
	md.Configuration = maps.Clone(md.Configuration)
	if md.Configuration == nil {
		md.Configuration = map[string]string{}
	}
	// In-commit timestamps are on from the clone's version 0: the source's
	// enablement point means nothing in the new log.
	delete(md.Configuration, "delta.inCommitTimestampEnablementVersion")
	delete(md.Configuration, "delta.inCommitTimestampEnablementTimestamp")
	for _, k := range []string{"delta.columnMapping.mode", "delta.enableRowTracking", ColumnMappingMaxIDKey} {
		// The copied schema and files carry the source's state of these.
		if v, ok := opts.Properties[k]; ok && v != md.Configuration[k] {
			return fail(fmt.Errorf("property %s cannot be changed by a clone (the source has %q)", k, md.Configuration[k]))
		}
	}
	maps.Copy(md.Configuration, opts.Properties)
	proto, _ := mergeProtocols(snap.protocol, createProtocol(md.Configuration, snap.schema))
	if err := checkWritable(proto, md, snap.schema); err != nil {
		return fail(err)
	}

	files := snap.Files()
	adds, jobs, err := planClone(ctx, src, files)
	if err != nil {
		return fail(fmt.Errorf("version %d: %w", version, err))
	}
	res := CloneResult{SourceVersion: version, TableID: md.ID, NumFiles: len(adds)}
	for _, a := range adds {
		res.TableSize += a.Size
	}
	copied, err := copyObjects(ctx, dst, jobs)
	if err != nil {
		return fail(fmt.Errorf("version %d: %w", version, err))
	}
	res.NumCopiedFiles, res.CopiedBytes = len(jobs), copied

	ts := now().UnixMilli()
	ci := map[string]any{
		"timestamp": ts,
		"operation": OperationClone,
		"operationParameters": map[string]any{
			"source":        src.URI(),
			"sourceVersion": strconv.FormatInt(version, 10),
			"isShallow":     "false",
		},
		"operationMetrics": map[string]any{
			"sourceTableSize":  strconv.FormatInt(res.TableSize, 10),
			"sourceNumOfFiles": strconv.Itoa(res.NumFiles),
			"numRemovedFiles":  "0",
			"numCopiedFiles":   strconv.Itoa(res.NumCopiedFiles),
			"copiedFilesSize":  strconv.FormatInt(res.CopiedBytes, 10),
			"removedFilesSize": "0",
		},
		"isBlindAppend": false,
		"engineInfo":    EngineInfo,
		"clientVersion": EngineInfo,
	}
	if proto.Supports(FeatureInCommitTimestamp) && propertyTrue(md.Configuration, "delta.enableInCommitTimestamps") {
		ci["inCommitTimestamp"] = ts
	}
	acts := []Action{{CommitInfo: ci}, {Protocol: &proto}, {MetaData: &md}}
	for _, d := range snap.Domains() {
		d := d
		acts = append(acts, Action{DomainMetadata: &d})
	}
	for i := range adds {
		acts = append(acts, Action{Add: &adds[i]})
	}
	data, err := EncodeCommit(acts)
	if err != nil {
		return fail(err)
	}
	if err := dst.PutIfAbsent(ctx, commitPath(0), data); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return fail(fmt.Errorf("another writer created a table there concurrently: %w", ErrTableExists))
		}
		return fail(fmt.Errorf("writing version 0: %w", err))
	}
	return res, nil
}

// refuseExistingTable fails with ErrTableExists when store holds a log.
func refuseExistingTable(ctx context.Context, store storage.Store) error {
	objs, err := store.List(ctx, "_delta_log/")
	if err != nil {
		return fmt.Errorf("checking for a table at %s: %w", store.URI(), err)
	}
	for _, o := range objs {
		if lf := parseLogName(o.Path); lf.kind != logOther {
			return fmt.Errorf("%s holds %s: %w", store.URI(), o.Path, ErrTableExists)
		}
	}
	return nil
}

// planClone returns the clone's adds and the objects to copy: data files
// and on-disk deletion vectors, each once. Paths outside the source table
// are read through a store opened on their directory.
func planClone(ctx context.Context, src storage.Store, files []AddFile) ([]AddFile, []copyJob, error) {
	var jobs []copyJob
	byDst := map[string]string{} // clone path -> source object
	dvFiles := map[string]string{}
	stores := map[string]storage.Store{}
	addJob := func(j copyJob) error {
		key := j.from.URI() + "\x00" + j.src
		if prev, ok := byDst[j.dst]; ok {
			if prev != key {
				return fmt.Errorf("two source files would be copied to %s", j.dst)
			}
			return nil
		}
		byDst[j.dst] = key
		jobs = append(jobs, j)
		return nil
	}
	// resolve maps a log path to (store, path in store, clone path).
	resolve := func(p string) (storage.Store, string, string, error) {
		if !isAbsolutePath(p) {
			return src, pathKey(p), pathKey(p), nil
		}
		if rel, err := absoluteToStorePath(src.URI(), p); err == nil {
			return src, rel, rel, nil
		}
		dir, base := path.Split(strings.TrimRight(p, "/"))
		st, ok := stores[dir]
		if !ok {
			var err error
			if st, err = storage.Open(ctx, dir, storage.Options{}); err != nil {
				return nil, "", "", fmt.Errorf("opening the directory of %s: %w", p, err)
			}
			stores[dir] = st
		}
		name := pathKey(base)
		return st, name, name, nil
	}
	adds := make([]AddFile, 0, len(files))
	for _, f := range files {
		from, sp, dp, err := resolve(f.Path)
		if err != nil {
			return nil, nil, err
		}
		if err := addJob(copyJob{from: from, src: sp, dst: dp, size: f.Size}); err != nil {
			return nil, nil, err
		}
		add := f
		add.DataChange = true
		if isAbsolutePath(f.Path) {
			add.Path = escapePath(dp)
		}
		if d := f.DeletionVector; d != nil && d.StorageType != "i" {
			nd := *d
			switch d.StorageType {
			case "u":
				rel, err := d.RelativePath()
				if err != nil {
					return nil, nil, fmt.Errorf("file %s: %w", f.Path, err)
				}
				if err := addJob(copyJob{from: src, src: rel, dst: rel, size: -1}); err != nil {
					return nil, nil, err
				}
			case "p":
				from, sp, _, err := resolve(d.PathOrInlineDv)
				if err != nil {
					return nil, nil, fmt.Errorf("deletion vector of %s: %w", f.Path, err)
				}
				// A new "u" name under the clone's root; DVs sharing a
				// file share its copy.
				key := from.URI() + "\x00" + sp
				enc, ok := dvFiles[key]
				if !ok {
					id := uuid.New()
					if enc, err = Z85Encode(id[:]); err != nil {
						return nil, nil, err
					}
					dvFiles[key] = enc
				}
				nd = DeletionVector{StorageType: "u", PathOrInlineDv: enc, Offset: d.Offset, SizeInBytes: d.SizeInBytes,
					Cardinality: d.Cardinality, MaxRowIndex: d.MaxRowIndex}
				rel, err := nd.RelativePath()
				if err != nil {
					return nil, nil, err
				}
				if err := addJob(copyJob{from: from, src: sp, dst: rel, size: -1}); err != nil {
					return nil, nil, err
				}
			default:
				return nil, nil, fmt.Errorf("file %s: deletion vector of unknown storage type %q", f.Path, d.StorageType)
			}
			add.DeletionVector = &nd
		}
		adds = append(adds, add)
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].dst < jobs[j].dst })
	return adds, jobs, nil
}

// isAbsolutePath reports whether a log path is an absolute URI or path.
func isAbsolutePath(p string) bool {
	return strings.Contains(p, "://") || strings.HasPrefix(p, "file:") || strings.HasPrefix(p, "/")
}

// escapePath URI-encodes each segment of a store path for the log.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// copyObjects copies the jobs into dst, cloneWorkers at a time, checks
// each copy's size and returns the bytes copied. The first failure stops
// the copies not yet started.
func copyObjects(ctx context.Context, dst storage.Store, jobs []copyJob) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		total    int64
	)
	ch := make(chan copyJob)
	var wg sync.WaitGroup
	for range min(cloneWorkers, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				n, err := copyObject(ctx, dst, j)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				total += n
				mu.Unlock()
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case ch <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return total, firstErr
}

// copyObject copies one object and checks its size before and after.
func copyObject(ctx context.Context, dst storage.Store, j copyJob) (int64, error) {
	data, err := j.from.Get(ctx, j.src)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, fmt.Errorf("copying %s: %w: %w", j.src, ErrFilesMissing, err)
	}
	if err != nil {
		return 0, fmt.Errorf("copying %s: %w", j.src, err)
	}
	if j.size >= 0 && int64(len(data)) != j.size {
		return 0, fmt.Errorf("copying %s: it has %d bytes, the log says %d", j.src, len(data), j.size)
	}
	if err := dst.Put(ctx, j.dst, data); err != nil {
		return 0, fmt.Errorf("copying %s to %s: %w", j.src, j.dst, err)
	}
	info, err := dst.Stat(ctx, j.dst)
	if err != nil {
		return 0, fmt.Errorf("checking the copy %s: %w", j.dst, err)
	}
	if info.Size != int64(len(data)) {
		return 0, fmt.Errorf("the copy %s has %d bytes, the source %s %d", j.dst, info.Size, j.src, len(data))
	}
	return int64(len(data)), nil
}
