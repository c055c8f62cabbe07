package delta

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// commitInfoAt returns the commitInfo of version v.
func commitInfoAt(t *testing.T, tbl *Table, v int64) map[string]any {
	t.Helper()
	acts, err := readCommit(context.Background(), tbl.Store(), v)
	must(t, err)
	for _, a := range acts {
		if a.CommitInfo != nil {
			return a.CommitInfo
		}
	}
	t.Fatalf("version %d has no commitInfo", v)
	return nil
}

func TestRestoreToOlderVersion(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	tbl := mustCreate(t, st, simpleSchema(), nil, nil, OpenOptions{CheckpointInterval: 1000})
	a, b, c := simpleRows("a", 3), simpleRows("b", 2), simpleRows("c", 4)
	var sizes []int64
	for _, rows := range [][]Row{a, b, c} {
		res, err := tbl.Append(ctx, AppendRequest{Rows: rows})
		must(t, err)
		sizes = append(sizes, res.Bytes)
	}
	cases := []struct {
		name                   string
		opts                   func() RestoreOptions
		restored               int64
		want                   []Row
		removed, restoredFiles int
		removedSize, addedSize int64
		wantTimestampParam     bool
	}{
		{name: "back to version 2", opts: func() RestoreOptions { return RestoreOptions{Version: ptr(int64(2))} }, restored: 2,
			want: concatRows(a, b), removed: 1, removedSize: sizes[2]},
		{name: "forward again to version 3", opts: func() RestoreOptions { return RestoreOptions{Version: ptr(int64(3))} }, restored: 3,
			want: concatRows(a, b, c), restoredFiles: 1, addedSize: sizes[2]},
		{name: "by timestamp to version 1", opts: func() RestoreOptions {
			times, err := CommitTimes(ctx, st)
			must(t, err)
			return RestoreOptions{Timestamp: &times[1].Time}
		}, restored: 1, want: a, removed: 2, removedSize: sizes[1] + sizes[2], wantTimestampParam: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tbl.Version()
			res, err := tbl.Restore(ctx, tc.opts())
			must(t, err)
			eq(t, "new version", res.Version, before+1)
			eq(t, "restored version", res.RestoredVersion, tc.restored)
			eq(t, "removed", res.NumRemovedFiles, tc.removed)
			eq(t, "restored", res.NumRestoredFiles, tc.restoredFiles)
			eq(t, "removed size", res.RemovedFilesSize, tc.removedSize)
			eq(t, "restored size", res.RestoredFilesSize, tc.addedSize)
			_, rows := readAll(t, st)
			sameRows(t, rows, tc.want)
			snap := tbl.Snapshot()
			var size int64
			for _, f := range snap.Files() {
				size += f.Size
			}
			eq(t, "files after", res.NumOfFilesAfterRestore, snap.NumFiles())
			eq(t, "size after", res.TableSizeAfterRestore, size)
			ci := commitInfoAt(t, tbl, res.Version)
			eq(t, "operation", ci["operation"], any(OperationRestore))
			params := ci["operationParameters"].(map[string]any)
			eq(t, "version param", params["version"], any(itoa(tc.restored)))
			eq(t, "timestamp param set", params["timestamp"] != nil, tc.wantTimestampParam)
			metrics := ci["operationMetrics"].(map[string]any)
			for k, v := range map[string]int64{"numRemovedFiles": int64(tc.removed), "numRestoredFiles": int64(tc.restoredFiles),
				"removedFilesSize": tc.removedSize, "restoredFilesSize": tc.addedSize,
				"numOfFilesAfterRestore": int64(snap.NumFiles()), "tableSizeAfterRestore": size} {
				eq(t, "metric "+k, metrics[k], any(itoa(v)))
			}
			// Every change is a data change (streaming readers see it).
			acts, err := readCommit(ctx, st, res.Version)
			must(t, err)
			for _, a := range acts {
				if (a.Add != nil && !a.Add.DataChange) || (a.Remove != nil && !a.Remove.DataChange) {
					t.Errorf("action without dataChange: %+v", a)
				}
			}
		})
	}
	for _, tc := range []struct {
		name string
		opts RestoreOptions
		err  error
	}{
		{"future version", RestoreOptions{Version: ptr(int64(99))}, ErrVersionNotAvailable},
		{"future timestamp", RestoreOptions{Timestamp: ptr(time.Now().Add(time.Hour))}, ErrTimestampOutOfRange},
	} {
		v := tbl.Version()
		if _, err := tbl.Restore(ctx, tc.opts); !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
		eq(t, tc.name+": nothing committed", tbl.Version(), v)
	}
	if _, err := tbl.Restore(ctx, RestoreOptions{}); err == nil {
		t.Error("restore without a version or timestamp succeeded")
	}
}

func concatRows(parts ...[]Row) []Row {
	var out []Row
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestRestoreVacuumedVersionRefused: the files of the old version were
// compacted away and vacuumed; restore names them and commits nothing.
func TestRestoreVacuumedVersionRefused(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	clock := time.Now()
	tbl := mustCreate(t, st, simpleSchema(), nil, nil, OpenOptions{CheckpointInterval: 1000, Now: func() time.Time { return clock }})
	r1, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows("a", 3)})
	must(t, err)
	_, err = tbl.Append(ctx, AppendRequest{Rows: simpleRows("b", 3)})
	must(t, err)
	_, err = tbl.Optimize(ctx, OptimizeOptions{})
	must(t, err)
	clock = clock.Add(30 * 24 * time.Hour)
	vr, err := tbl.Vacuum(ctx, VacuumOptions{})
	must(t, err)
	if !slices.Contains(vr.Deleted, pathKey(r1.Files[0].Path)) {
		t.Fatalf("vacuum kept %s: %v", r1.Files[0].Path, vr.Deleted)
	}
	v := tbl.Version()
	_, err = tbl.Restore(ctx, RestoreOptions{Version: ptr(int64(1))})
	if !errors.Is(err, ErrFilesMissing) || !strings.Contains(err.Error(), pathKey(r1.Files[0].Path)) {
		t.Fatalf("restore of a vacuumed version: %v, want ErrFilesMissing naming %s", err, r1.Files[0].Path)
	}
	eq(t, "nothing committed", tbl.Version(), v)
}

// TestRestoreSchemaChange: restoring a version before a schema change
// brings back its metaData, and appends go on with the old schema.
func TestRestoreSchemaChange(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	tbl := mustCreate(t, st, simpleSchema(), nil, map[string]string{"owner": "a"}, OpenOptions{CheckpointInterval: 1000})
	a := simpleRows("a", 2)
	_, err := tbl.Append(ctx, AppendRequest{Rows: a})
	must(t, err)
	oldMeta := tbl.Snapshot().Metadata()
	wide := MustSchema(append(simpleSchema().Fields(), Field{Name: "extra", Type: "string", Nullable: true})...)
	_, err = tbl.Append(ctx, AppendRequest{Schema: wide, Mode: SchemaMerge, Rows: []Row{{"w", int32(1), int32(1), nil, "e"}}})
	must(t, err)
	eq(t, "widened", tbl.Schema().Len(), 5)

	res, err := tbl.Restore(ctx, RestoreOptions{Version: ptr(int64(1))})
	must(t, err)
	eq(t, "metadata restored", res.MetadataRestored, true)
	eq(t, "protocol kept", res.ProtocolUpgraded, false)
	md := tbl.Snapshot().Metadata()
	eq(t, "schema", md.SchemaString, oldMeta.SchemaString)
	eq(t, "table id kept", md.ID, oldMeta.ID)
	eq(t, "property", md.Configuration["owner"], "a")
	_, rows := readAll(t, st)
	sameRows(t, rows, a)
	b := simpleRows("b", 1)
	_, err = tbl.Append(ctx, AppendRequest{Rows: b})
	must(t, err)
	_, rows = readAll(t, st)
	sameRows(t, rows, concatRows(a, b))
}

// TestRestoreDeletionVectors: restoring to before a DELETE brings the file
// back without its deletion vector; the protocol upgrade made after the
// restored version stays.
func TestRestoreDeletionVectors(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	tbl := mustCreate(t, st, simpleSchema(), nil, nil, OpenOptions{CheckpointInterval: 1000})
	a := simpleRows("a", 5)
	r1, err := tbl.Append(ctx, AppendRequest{Rows: a})
	must(t, err) // version 1
	dvProto := Protocol{MinReaderVersion: 3, MinWriterVersion: 7, ReaderFeatures: []string{"deletionVectors"}, WriterFeatures: []string{"deletionVectors"}}
	upgrade(t, st, tbl, dvProto, map[string]string{"delta.enableDeletionVectors": "true"}) // 2
	deleteRows(t, st, tbl, r1.Files[0], 0, 4)                                              // 3
	_, rows := readAll(t, st)
	eq(t, "rows after delete", len(rows), 3)
	deleteRows(t, st, tbl, tbl.Snapshot().Files()[0], 0, 1, 4) // 4: a second DV for the same file

	for _, tc := range []struct {
		version int64
		rows    int
	}{{3, 3}, {1, 5}, {4, 2}} {
		res, err := tbl.Restore(ctx, RestoreOptions{Version: ptr(tc.version)})
		must(t, err)
		eq(t, "one file removed", res.NumRemovedFiles, 1)
		eq(t, "one file restored", res.NumRestoredFiles, 1)
		_, rows = readAll(t, st)
		eq(t, "rows", len(rows), tc.rows)
		p := tbl.Snapshot().Protocol()
		eq(t, "protocol not downgraded", p.Supports(FeatureDeletionVectors), true)
		eq(t, "DV property kept", tbl.Snapshot().Configuration()["delta.enableDeletionVectors"] == "true", tc.version != 1)
	}
}

// TestRestoreKeepsRowIDs: files brought back keep their baseRowId and
// defaultRowCommitVersion; the high-water mark never goes down.
func TestRestoreKeepsRowIDs(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	tbl := mustCreate(t, st, simpleSchema(), nil, map[string]string{"delta.enableRowTracking": "true"}, OpenOptions{CheckpointInterval: 1000})
	_, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows("a", 3)})
	must(t, err)
	rb, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows("b", 4)})
	must(t, err)
	fb := rb.Files[0]
	hwm, err := tbl.Snapshot().RowIDHighWaterMark()
	must(t, err)
	_, err = tbl.Restore(ctx, RestoreOptions{Version: ptr(int64(1))})
	must(t, err)
	_, err = tbl.Append(ctx, AppendRequest{Rows: simpleRows("c", 2)})
	must(t, err)
	res, err := tbl.Restore(ctx, RestoreOptions{Version: ptr(rb.Version)})
	must(t, err)
	eq(t, "b restored", res.NumRestoredFiles, 1)
	var back *AddFile
	for _, f := range tbl.Snapshot().Files() {
		if f.Path == fb.Path {
			back = &f
		}
	}
	if back == nil {
		t.Fatalf("file %s not live after restore", fb.Path)
	}
	eq(t, "baseRowId kept", *back.BaseRowID, *fb.BaseRowID)
	eq(t, "defaultRowCommitVersion kept", *back.DefaultRowCommitVersion, *fb.DefaultRowCommitVersion)
	after, err := tbl.Snapshot().RowIDHighWaterMark()
	must(t, err)
	eq(t, "hwm includes c's rows", after, hwm+2)
	// A new append still gets fresh ids above the mark.
	rd, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows("d", 1)})
	must(t, err)
	eq(t, "fresh id", *rd.Files[0].BaseRowID, after+1)
}

func TestRestoreRefusesUnknownFeature(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	tbl := mustCreate(t, st, simpleSchema(), nil, nil, OpenOptions{CheckpointInterval: 1000})
	_, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows("a", 1)})
	must(t, err)
	upgrade(t, st, tbl, Protocol{MinReaderVersion: 1, MinWriterVersion: 7, WriterFeatures: []string{"someFutureFeature"}}, nil)
	if _, err := tbl.Restore(ctx, RestoreOptions{Version: ptr(int64(1))}); !errors.Is(err, ErrUnsupportedFeature) {
		t.Errorf("restore of a table with an unknown feature: %v", err)
	}
}

// TestRestoreKeepsLaterFeatureState: restoring a version from before row
// tracking and in-commit timestamps were enabled keeps them enabled (the
// protocol keeps the features), and keeps the higher column id mark.
func TestRestoreKeepsLaterFeatureState(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	tbl := mustCreate(t, st, simpleSchema(), nil, nil, OpenOptions{CheckpointInterval: 1000})
	_, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows("a", 2)}) // 1
	must(t, err)
	later := map[string]string{"delta.enableRowTracking": "true", "delta.enableInCommitTimestamps": "true",
		"delta.rowTracking.materializedRowIdColumnName": "_row-id-col-x", "delta.rowTracking.materializedRowCommitVersionColumnName": "_row-commit-version-col-x",
		"delta.inCommitTimestampEnablementVersion": "2", "delta.inCommitTimestampEnablementTimestamp": "1"}
	conf := maps.Clone(later)
	conf["owner"] = "x"                                               // not sticky: the restore drops it
	upgrade(t, st, tbl, fullProtocol, conf)                           // 2
	_, err = tbl.Append(ctx, AppendRequest{Rows: simpleRows("b", 2)}) // 3
	must(t, err)
	res, err := tbl.Restore(ctx, RestoreOptions{Version: ptr(int64(1))})
	must(t, err)
	eq(t, "metadata committed", res.MetadataRestored, true)
	conf = tbl.Snapshot().Configuration()
	eq(t, "owner dropped", conf["owner"], "")
	for k, v := range later {
		eq(t, "kept "+k, conf[k], v)
	}
	if _, ok := tbl.Snapshot().InCommitTimestamp(); !ok {
		t.Error("the restore commit has no inCommitTimestamp")
	}
	r, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows("c", 1)})
	must(t, err)
	eq(t, "row ids still assigned", r.Files[0].BaseRowID != nil, true)
	_, rows := readAll(t, st)
	sameRows(t, rows, concatRows(simpleRows("a", 2), simpleRows("c", 1)))
}

// TestRestoreConcurrentAppend: another writer commits between the
// restore's plan and its commit; the restore plans again, so the table
// ends exactly as the restored version (the winner's rows undone).
func TestRestoreConcurrentAppend(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	var race func()
	now := func() time.Time {
		if f := race; f != nil {
			race = nil // once
			f()
		}
		return time.Now()
	}
	tbl := mustCreate(t, st, simpleSchema(), nil, nil, OpenOptions{CheckpointInterval: 1000, Now: now})
	a := simpleRows("a", 2)
	_, err := tbl.Append(ctx, AppendRequest{Rows: a}) // 1
	must(t, err)
	_, err = tbl.Append(ctx, AppendRequest{Rows: simpleRows("b", 2)}) // 2
	must(t, err)
	other, err := Open(ctx, st, OpenOptions{CheckpointInterval: 1000})
	must(t, err)
	// The first clock read of the restore is in its plan, after it caught
	// up: the winner's version 3 lands before the restore's commit.
	race = func() {
		_, err := other.Append(ctx, AppendRequest{Rows: simpleRows("w", 3)})
		must(t, err)
	}
	res, err := tbl.Restore(ctx, RestoreOptions{Version: ptr(int64(1))})
	must(t, err)
	eq(t, "restore version after the winner", res.Version, int64(4))
	eq(t, "winner's file removed too", res.NumRemovedFiles, 2)
	_, rows := readAll(t, st)
	sameRows(t, rows, a)
}

// TestRestoreAppendOnlyRefused: restoring an append-only table to a version
// with fewer files would remove data, which the table forbids; restoring
// forward (adds only) is allowed.
func TestRestoreAppendOnlyRefused(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	tbl := mustCreate(t, st, simpleSchema(), nil, map[string]string{"delta.appendOnly": "true"}, OpenOptions{})
	for _, p := range []string{"a", "b"} {
		_, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows(p, 2)})
		must(t, err)
	}
	v := tbl.Version()
	_, err := tbl.Restore(ctx, RestoreOptions{Version: ptr(int64(1))})
	if err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("restore of an append-only table to fewer files: %v, want a refusal naming append-only", err)
	}
	eq(t, "version unchanged", tbl.Version(), v)
}
