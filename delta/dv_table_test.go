package delta

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2/roaring64"
	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/google/uuid"
)

// deleteRows commits what Spark's DELETE with deletion vectors commits:
// remove(path, no DV) + add(path, new DV) in one commit, the add first.
func deleteRows(t *testing.T, st storage.Store, tbl *Table, f AddFile, rows ...uint64) *DeletionVector {
	t.Helper()
	ctx := context.Background()
	data, off, size, err := EncodeDeletionVectorFile(roaring64.BitmapOf(rows...))
	must(t, err)
	id := uuid.New()
	enc, err := Z85Encode(id[:])
	must(t, err)
	dv := &DeletionVector{StorageType: "u", PathOrInlineDv: "xy" + enc, Offset: &off, SizeInBytes: size, Cardinality: int64(len(rows))}
	p, err := dv.RelativePath()
	must(t, err)
	must(t, st.Put(ctx, p, data))
	add := f
	add.DeletionVector = dv
	rm := &RemoveFile{Path: f.Path, DeletionTimestamp: ptr(time.Now().UnixMilli()), DataChange: true, Size: ptr(f.Size)}
	c, err := EncodeCommit([]Action{{CommitInfo: map[string]any{"timestamp": time.Now().UnixMilli(), "operation": "DELETE"}}, {Add: &add}, {Remove: rm}})
	must(t, err)
	must(t, st.PutIfAbsent(ctx, commitPath(tbl.Version()+1), c))
	must(t, tbl.Refresh(ctx))
	return dv
}

func TestDeletionVectorsTable(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	clock := time.Now()
	oo := OpenOptions{Now: func() time.Time { return clock }, CheckpointInterval: 1000}
	tbl := mustCreate(t, st, simpleSchema(), nil, nil, oo)
	upgrade(t, st, tbl, Protocol{MinReaderVersion: 3, MinWriterVersion: 7, ReaderFeatures: []string{"deletionVectors"}, WriterFeatures: []string{"deletionVectors"}},
		map[string]string{"delta.enableDeletionVectors": "true"})
	r1, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows("a", 5)})
	must(t, err)
	r2, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows("b", 3)})
	must(t, err)
	eq(t, "append writes no DV", r1.Files[0].DeletionVector == nil, true)
	dv := deleteRows(t, st, tbl, r1.Files[0], 1, 3)
	deleteRows(t, st, tbl, r2.Files[0], 0, 1, 2) // every row of file 2

	snap := tbl.Snapshot()
	eq(t, "files", snap.NumFiles(), 2)
	f1 := snap.files[pathKey(r1.Files[0].Path)]
	eq(t, "live DV", f1.DeletionVector.UniqueID(), dv.UniqueID())
	rows, err := snap.ReadFile(ctx, st, *f1)
	must(t, err)
	var ids []string
	for _, r := range rows {
		ids = append(ids, r[0].(string))
	}
	eq(t, "rows left", strings.Join(ids, ","), "aa,ac,ae")
	d := tbl.Describe()
	eq(t, "describe rows", d.NumRows, int64(3))
	eq(t, "describe deleted", d.DeletedRows, int64(5))
	eq(t, "features shown", slices.Contains(d.Features, FeatureDeletionVectors), true)

	// A checkpoint keeps the DVs.
	must(t, tbl.Checkpoint(ctx))
	re, err := Open(ctx, st, OpenOptions{ReadOnly: true})
	must(t, err)
	eq(t, "DV after checkpoint", re.Snapshot().files[pathKey(f1.Path)].DeletionVector.UniqueID(), dv.UniqueID())
	eq(t, "tombstones after checkpoint", len(re.Snapshot().Tombstones()), 2)

	// Vacuum keeps referenced DV files and deletes an orphan one.
	orphan := "xy/deletion_vector_" + uuid.NewString() + ".bin"
	must(t, st.Put(ctx, orphan, []byte{1}))
	clock = time.Now().Add(8 * 24 * time.Hour)
	vr, err := tbl.Vacuum(ctx, VacuumOptions{DryRun: true})
	must(t, err)
	dvPath, _ := dv.RelativePath()
	eq(t, "orphan DV vacuumed", slices.Contains(vr.Deleted, orphan), true)
	eq(t, "live DV kept", slices.Contains(vr.Deleted, dvPath), false)

	// Optimize rewrites the DV files: the removes carry the DVs, the fully
	// deleted file is only removed.
	or, err := tbl.Optimize(ctx, OptimizeOptions{})
	must(t, err)
	eq(t, "removed", or.FilesRemoved, 2)
	eq(t, "added", or.FilesAdded, 1)
	eq(t, "rows", or.Rows, int64(3))
	b, err := st.Get(ctx, commitPath(or.Version))
	must(t, err)
	acts, err := ParseCommit(b)
	must(t, err)
	for _, a := range acts {
		if a.Remove != nil && a.Remove.DeletionVector == nil {
			t.Errorf("remove %s lacks its DV", a.Remove.Path)
		}
		if a.Add != nil && a.Add.DeletionVector != nil {
			t.Errorf("add %s has a DV", a.Add.Path)
		}
	}
	_, all := readAll(t, st)
	eq(t, "table rows", len(all), 3)
	eq(t, "describe rows after optimize", tbl.Describe().NumRows, int64(3))
	// Once the tombstones expire, the DV files go too.
	clock = time.Now().Add(20 * 24 * time.Hour)
	vr, err = tbl.Vacuum(ctx, VacuumOptions{})
	must(t, err)
	eq(t, "DV vacuumed after its tombstone expired", slices.Contains(vr.Deleted, dvPath), true)
}

func TestV2Checkpoint(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	clock := time.Now()
	oo := OpenOptions{Now: func() time.Time { return clock }, CheckpointInterval: 1000}
	tbl := mustCreate(t, st, simpleSchema(), nil, nil, oo)
	upgrade(t, st, tbl, fullProtocol, map[string]string{"delta.checkpointPolicy": "v2", "delta.enableDeletionVectors": "true"})
	r1, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows("a", 4)})
	must(t, err)
	_, err = tbl.Append(ctx, AppendRequest{Rows: simpleRows("b", 2)})
	must(t, err)
	dv := deleteRows(t, st, tbl, r1.Files[0], 0)
	must(t, tbl.Checkpoint(ctx))
	l, err := listLog(ctx, st)
	must(t, err)
	paths := l.checkpoints[tbl.Version()]
	if len(paths) != 1 || !isUUIDCheckpoint(strings.TrimPrefix(paths[0], fmt.Sprintf("_delta_log/%020d", tbl.Version()))) {
		t.Fatalf("want a UUID-named checkpoint, got %v", paths)
	}
	lcb, err := st.Get(ctx, lastCheckpointPath)
	must(t, err)
	lc, err := ParseLastCheckpoint(lcb)
	must(t, err)
	eq(t, "_last_checkpoint v2", lc.V2Checkpoint != nil && "_delta_log/"+lc.V2Checkpoint.Path == paths[0], true)
	re, err := Open(ctx, st, OpenOptions{ReadOnly: true})
	must(t, err)
	s := re.Snapshot()
	eq(t, "checkpoint version", s.CheckpointVersion(), tbl.Version())
	eq(t, "files", s.NumFiles(), 2)
	eq(t, "dv", s.files[pathKey(r1.Files[0].Path)].DeletionVector.UniqueID(), dv.UniqueID())
	hwm, _ := s.RowIDHighWaterMark()
	eq(t, "domain in checkpoint", hwm, int64(5))

	// A Spark-style JSON V2 checkpoint with its file actions in a sidecar.
	v := tbl.Version()
	rows := checkpointRows(tbl.Snapshot(), clock, time.Hour)
	var fileRows, other []cpRow
	for _, r := range rows {
		if r.Add != nil || r.Remove != nil {
			fileRows = append(fileRows, r)
		} else {
			other = append(other, r)
		}
	}
	side, err := encodeParquetRows(fileRows)
	must(t, err)
	sideName := uuid.NewString() + ".parquet"
	must(t, st.Put(ctx, sidecarDir+sideName, side))
	must(t, st.Put(ctx, sidecarDir+"old-unreferenced.parquet", side))
	acts := []Action{{CheckpointMetadata: &CheckpointMetadata{Version: v}}}
	for _, r := range other {
		a, err := r.action()
		must(t, err)
		acts = append(acts, *a)
	}
	acts = append(acts, Action{Sidecar: &Sidecar{Path: sideName, SizeInBytes: int64(len(side)), ModificationTime: 1}})
	js, err := EncodeCommit(acts)
	must(t, err)
	for _, p := range paths {
		must(t, st.Delete(ctx, p))
	}
	must(t, st.Delete(ctx, lastCheckpointPath))
	jsonCP := fmt.Sprintf("_delta_log/%020d.checkpoint.%s.json", v, uuid.NewString())
	must(t, st.Put(ctx, jsonCP, js))
	// Drop the commits the checkpoint covers, so it must be used.
	for i := int64(0); i <= v; i++ {
		must(t, st.Delete(ctx, commitPath(i)))
	}
	re, err = Open(ctx, st, OpenOptions{ReadOnly: true})
	must(t, err)
	s = re.Snapshot()
	eq(t, "sidecar files", s.NumFiles(), 2)
	eq(t, "sidecar dv", s.files[pathKey(r1.Files[0].Path)].DeletionVector.UniqueID(), dv.UniqueID())

	// Log cleanup keeps the referenced sidecar, deletes the other.
	refs, err := checkpointSidecars(ctx, st, jsonCP)
	must(t, err)
	eq(t, "referenced", len(refs) == 1 && refs[0] == sidecarDir+sideName, true)
	re.opts.Now = func() time.Time { return time.Now().Add(40 * 24 * time.Hour) }
	re.opts.ReadOnly = false
	del, err := re.CleanupLog(ctx, LogCleanupOptions{DryRun: true})
	must(t, err)
	eq(t, "unreferenced sidecar deleted", slices.Contains(del, sidecarDir+"old-unreferenced.parquet"), true)
	eq(t, "referenced sidecar kept", slices.Contains(del, sidecarDir+sideName), false)
}

func TestOptimizePreservesRowTracking(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	tbl := mustCreate(t, st, simpleSchema(), nil, nil, OpenOptions{CheckpointInterval: 1000})
	upgrade(t, st, tbl, fullProtocol, map[string]string{
		"delta.enableRowTracking":                                  "true",
		"delta.enableDeletionVectors":                              "true",
		"delta.rowTracking.materializedRowIdColumnName":            "_row_id_mat",
		"delta.rowTracking.materializedRowCommitVersionColumnName": "_row_ver_mat",
	})
	ra, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows("a", 3)})
	must(t, err)
	rb, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows("b", 2)})
	must(t, err)
	eq(t, "base of b", *rb.Files[0].BaseRowID, int64(3))
	deleteRows(t, st, tbl, *tbl.Snapshot().files[pathKey(ra.Files[0].Path)], 1)
	or, err := tbl.Optimize(ctx, OptimizeOptions{})
	must(t, err)
	eq(t, "added", or.FilesAdded, 1)
	snap := tbl.Snapshot()
	var out AddFile
	for _, f := range snap.Files() {
		out = f
	}
	eq(t, "fresh base row id", *out.BaseRowID, int64(5))
	wide, err := NewSchema(append(simpleSchema().Fields(), Field{Name: "_row_id_mat", Type: "long", Nullable: true}, Field{Name: "_row_ver_mat", Type: "long", Nullable: true}))
	must(t, err)
	rows, _, err := snap.readFileRows(ctx, st, out, wide)
	must(t, err)
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s:%d@%d", r[0], r[4], r[5]))
	}
	slices.Sort(got) // bins are in path order, which is random
	want := fmt.Sprintf("aa:0@%d,ac:2@%d,ba:3@%d,bb:4@%d", ra.Version, ra.Version, rb.Version, rb.Version)
	eq(t, "stable row ids and versions", strings.Join(got, ","), want)
}

func TestCreateWithFeatures(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	props := map[string]string{
		"delta.enableDeletionVectors":    "true",
		"delta.enableRowTracking":        "true",
		"delta.enableInCommitTimestamps": "true",
		"delta.checkpointPolicy":         "v2",
	}
	tbl := mustCreate(t, st, simpleSchema(), nil, props, OpenOptions{CheckpointInterval: 2})
	p := tbl.Snapshot().Protocol()
	eq(t, "reader", p.MinReaderVersion, 3)
	eq(t, "writer", p.MinWriterVersion, 7)
	for _, f := range []string{FeatureDeletionVectors, FeatureV2Checkpoint, FeatureRowTracking, FeatureDomainMetadata, FeatureInCommitTimestamp, FeatureAppendOnly, FeatureInvariants} {
		eq(t, "supports "+f, p.Supports(f), true)
	}
	must(t, p.CheckSupported())
	ict0, ok := tbl.Snapshot().InCommitTimestamp()
	eq(t, "ict at creation", ok, true)
	res, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows("a", 2)})
	must(t, err)
	ict1, _ := tbl.Snapshot().InCommitTimestamp()
	eq(t, "ict increases", ict1 > ict0, true)
	eq(t, "base row id", *res.Files[0].BaseRowID, int64(0))
	res, err = tbl.Append(ctx, AppendRequest{Rows: simpleRows("b", 2)})
	must(t, err)
	eq(t, "checkpointed", res.Checkpointed, true)
	l, err := listLog(ctx, st)
	must(t, err)
	eq(t, "v2 checkpoint", strings.Contains(l.checkpoints[2][0], ".checkpoint.") && !strings.HasSuffix(l.checkpoints[2][0], ".checkpoint.parquet"), true)
	or, err := tbl.Optimize(ctx, OptimizeOptions{})
	must(t, err)
	eq(t, "optimized", or.FilesAdded, 1)
	_, rows := readAll(t, st)
	eq(t, "rows", len(rows), 4)
}
