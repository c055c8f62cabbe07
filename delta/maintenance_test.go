package delta

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

func appendSimple(t *testing.T, tbl *Table, batch, n int, txn *Txn) CommitResult {
	t.Helper()
	rows := make([]Row, n)
	for i := range rows {
		rows[i] = Row{fmt.Sprintf("b%d-r%d", batch, i), int32(0), int32(batch), []any{"even", "odd"}[i%2]}
	}
	req := AppendRequest{Rows: rows}
	if txn != nil {
		req.Txns = []Txn{*txn}
	}
	res, err := tbl.Append(context.Background(), req)
	must(t, err)
	return res
}

func dataFiles(t *testing.T, st storage.Store) []string {
	t.Helper()
	objs, err := st.List(context.Background(), "")
	must(t, err)
	var out []string
	for _, o := range objs {
		if strings.HasSuffix(o.Path, ".parquet") && !strings.HasPrefix(o.Path, "_delta_log/") {
			out = append(out, o.Path)
		}
	}
	return out
}

func TestCheckpointEveryN(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	tbl := mustCreate(t, st, simpleSchema(), []string{"part"}, nil, OpenOptions{CheckpointInterval: 3})
	for b := 1; b <= 10; b++ {
		res := appendSimple(t, tbl, b, 10, &Txn{AppID: "x", Version: int64(b)})
		eq(t, fmt.Sprintf("checkpointed at %d", res.Version), res.Checkpointed, res.Version%3 == 0)
	}
	for _, v := range []int64{3, 6, 9} {
		if _, err := st.Stat(ctx, checkpointPath(v)); err != nil {
			t.Errorf("checkpoint %d: %v", v, err)
		}
	}
	b, err := st.Get(ctx, lastCheckpointPath)
	must(t, err)
	lc, err := ParseLastCheckpoint(b)
	must(t, err)
	eq(t, "_last_checkpoint version", lc.Version, int64(9))
	// protocol + metaData + 1 txn + 18 adds (9 batches × 2 partitions).
	eq(t, "_last_checkpoint size", lc.Size, int64(2+1+18))
	// The table property applies when the option is unset.
	st2 := newLocal(t)
	tbl2 := mustCreate(t, st2, simpleSchema(), nil, map[string]string{"delta.checkpointInterval": "2"}, OpenOptions{})
	appendSimple(t, tbl2, 1, 1, nil)
	res := appendSimple(t, tbl2, 2, 1, nil)
	eq(t, "property interval", res.Checkpointed, true)
}

func TestOpenFindsCheckpoints(t *testing.T) {
	ctx := context.Background()
	build := func(t *testing.T) (*storage.Local, []Row) {
		st := newLocal(t)
		tbl := mustCreate(t, st, simpleSchema(), []string{"part"}, nil, OpenOptions{CheckpointInterval: 5})
		for b := 1; b <= 12; b++ {
			appendSimple(t, tbl, b, 4, &Txn{AppID: "x", Version: int64(b)})
		}
		_, rows := readAll(t, st)
		return st, rows
	}
	tests := []struct {
		name    string
		damage  func(t *testing.T, st *storage.Local)
		wantCP  int64
		makeUp  bool
		wantErr bool
	}{
		{name: "hint current", damage: func(*testing.T, *storage.Local) {}, wantCP: 10},
		{name: "hint stale", damage: func(t *testing.T, st *storage.Local) {
			must(t, st.Put(ctx, lastCheckpointPath, []byte(`{"version":5,"size":3}`)))
		}, wantCP: 10},
		{name: "hint missing", damage: func(t *testing.T, st *storage.Local) { must(t, st.Delete(ctx, lastCheckpointPath)) }, wantCP: 10},
		{name: "hint garbage", damage: func(t *testing.T, st *storage.Local) { must(t, st.Put(ctx, lastCheckpointPath, []byte(`{nope`))) }, wantCP: 10},
		{name: "hint ahead of the log", damage: func(t *testing.T, st *storage.Local) {
			must(t, st.Put(ctx, lastCheckpointPath, []byte(`{"version":99,"size":3}`)))
		}, wantCP: 10},
		{name: "newest checkpoint corrupt falls back", damage: func(t *testing.T, st *storage.Local) {
			must(t, st.Put(ctx, checkpointPath(10), []byte("PAR1 garbage PAR1")))
		}, wantCP: 12, makeUp: true}, // read 5 + commits, then made up the checkpoint boundary 10 lacked
		{name: "all checkpoints gone replays json", damage: func(t *testing.T, st *storage.Local) {
			must(t, st.Delete(ctx, checkpointPath(10)))
			must(t, st.Delete(ctx, checkpointPath(5)))
			must(t, st.Delete(ctx, lastCheckpointPath))
		}, wantCP: 12, makeUp: true},
		{name: "checkpoint only, early commits cleaned up", damage: func(t *testing.T, st *storage.Local) {
			for v := int64(0); v <= 10; v++ {
				must(t, st.Delete(ctx, commitPath(v)))
			}
		}, wantCP: 10},
		{name: "gap in the log", damage: func(t *testing.T, st *storage.Local) { must(t, st.Delete(ctx, commitPath(11))) }, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, want := build(t)
			tc.damage(t, st)
			tbl, err := Open(ctx, st, OpenOptions{CheckpointInterval: 5})
			if tc.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			must(t, err)
			s := tbl.Snapshot()
			eq(t, "version", s.Version(), int64(12))
			eq(t, "checkpoint used", s.CheckpointVersion(), tc.wantCP)
			v, _ := s.TxnVersion("x")
			eq(t, "txn", v, int64(12))
			if tc.makeUp {
				// Open made up the checkpoint the boundary (10) needed.
				if _, err := st.Stat(ctx, checkpointPath(12)); err != nil {
					t.Fatalf("make-up checkpoint not written: %v", err)
				}
				lcb, err := st.Get(ctx, lastCheckpointPath)
				must(t, err)
				if !strings.Contains(string(lcb), `"version":12`) {
					t.Errorf("_last_checkpoint %s", lcb)
				}
			}
			_, rows := readAll(t, st)
			sameRows(t, rows, want)
		})
	}
}

func TestTxnReplayAddsNothing(t *testing.T) {
	tests := []struct {
		name           string
		stored         int64
		found          bool
		version        int64
		alreadyApplied bool
	}{
		{"no txn yet", 0, false, 0, false},
		{"same version is a replay", 5, true, 5, true},
		{"older version is a replay", 5, true, 3, true},
		{"next version is new", 5, true, 6, false},
		{"gap is new", 5, true, 60, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eq(t, "TxnApplied", TxnApplied(tc.stored, tc.found, tc.version), tc.alreadyApplied)
		})
	}
	ctx := context.Background()
	st := newLocal(t)
	tbl := mustCreate(t, st, simpleSchema(), nil, nil, OpenOptions{})
	appendSimple(t, tbl, 1, 10, &Txn{AppID: "kafka-0", Version: 5})
	files := len(dataFiles(t, st))
	eq(t, "helper", tbl.TxnApplied("kafka-0", 5), true)
	_, err := tbl.Append(ctx, AppendRequest{Rows: []Row{{"dup", int32(0), int32(0), nil}}, Txns: []Txn{{AppID: "kafka-0", Version: 5}}})
	if !errors.Is(err, ErrTxnAlreadyApplied) {
		t.Fatalf("replay: want ErrTxnAlreadyApplied, got %v", err)
	}
	eq(t, "version after replay", tbl.Version(), int64(1))
	eq(t, "data files after replay", len(dataFiles(t, st)), files)
	_, err = tbl.Append(ctx, AppendRequest{Txns: []Txn{{AppID: "a", Version: 1}, {AppID: "a", Version: 2}}})
	if err == nil || !strings.Contains(err.Error(), "two txns") {
		t.Fatalf("two txns for one appId: %v", err)
	}
	// A txn-only commit records progress without data.
	res, err := tbl.Append(ctx, AppendRequest{Txns: []Txn{{AppID: "kafka-0", Version: 9}}})
	must(t, err)
	eq(t, "txn-only version", res.Version, int64(2))
	t2, err := Open(ctx, st, OpenOptions{})
	must(t, err)
	v, _ := t2.TxnVersion("kafka-0")
	eq(t, "txn after reopen", v, int64(9))
}

func TestCrashBeforeCommitLeavesOrphan(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	tbl := mustCreate(t, st, simpleSchema(), []string{"part"}, nil, OpenOptions{})
	appendSimple(t, tbl, 1, 10, nil)
	_, before := readAll(t, st)
	// The first half of an append: data files uploaded, then the process
	// dies before the commit.
	layout, err := newDataLayout(tbl.Schema(), tbl.PartitionColumns(), nil)
	must(t, err)
	orphans, err := writeDataFiles(ctx, st, layout, []Row{{"lost", int32(0), int32(9), "even"}}, WriterOptions{}.withDefaults(), time.Now)
	must(t, err)
	eq(t, "orphans", len(orphans), 1)
	snap, after := readAll(t, st)
	sameRows(t, after, before)
	for _, f := range snap.Files() {
		if pathKey(f.Path) == orphans[0].storePath {
			t.Fatal("orphan is in the snapshot")
		}
	}
	// Vacuum keeps it within the retention, removes it after.
	now := time.Now()
	v, err := Open(ctx, st, OpenOptions{Now: func() time.Time { return now }})
	must(t, err)
	res, err := v.Vacuum(ctx, VacuumOptions{})
	must(t, err)
	eq(t, "deleted within retention", len(res.Deleted), 0)
	if _, err := v.Vacuum(ctx, VacuumOptions{Retention: time.Hour}); err == nil {
		t.Fatal("retention under 168h must be refused without Force")
	}
	later, err := Open(ctx, st, OpenOptions{Now: func() time.Time { return now.Add(8 * 24 * time.Hour) }})
	must(t, err)
	dry, err := later.Vacuum(ctx, VacuumOptions{DryRun: true})
	must(t, err)
	eq(t, "dry run lists the orphan", strings.Join(dry.Deleted, ","), orphans[0].storePath)
	if _, err := st.Stat(ctx, orphans[0].storePath); err != nil {
		t.Fatal("dry run deleted the orphan")
	}
	res, err = later.Vacuum(ctx, VacuumOptions{})
	must(t, err)
	eq(t, "vacuum deletes the orphan", strings.Join(res.Deleted, ","), orphans[0].storePath)
	_, rows := readAll(t, st)
	sameRows(t, rows, before)
}

func TestOptimizeAndVacuumKeepRows(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	now := time.Now()
	clock := now
	tbl := mustCreate(t, st, simpleSchema(), []string{"part"}, nil, OpenOptions{Now: func() time.Time { return clock }})
	for b := 1; b <= 8; b++ {
		appendSimple(t, tbl, b, 20, nil)
	}
	_, before := readAll(t, st)
	eq(t, "files before", tbl.Snapshot().NumFiles(), 16)
	dry, err := tbl.Optimize(ctx, OptimizeOptions{DryRun: true})
	must(t, err)
	eq(t, "dry run removes", dry.FilesRemoved, 16)
	eq(t, "dry run version", tbl.Version(), int64(8))
	res, err := tbl.Optimize(ctx, OptimizeOptions{})
	must(t, err)
	eq(t, "removed", res.FilesRemoved, 16)
	eq(t, "added", res.FilesAdded, 2)
	eq(t, "partitions", res.Partitions, 2)
	eq(t, "rows", res.Rows, int64(160))
	snap, after := readAll(t, st)
	sameRows(t, after, before)
	eq(t, "files after", snap.NumFiles(), 2)
	for _, f := range snap.Files() {
		if f.DataChange {
			t.Errorf("compacted file %s has dataChange=true", f.Path)
		}
	}
	acts, err := readCommit(ctx, st, res.Version)
	must(t, err)
	removes := 0
	for _, a := range acts {
		if a.Remove != nil {
			removes++
			if a.Remove.DataChange || a.Remove.DeletionTimestamp == nil {
				t.Errorf("remove %+v", a.Remove)
			}
		}
	}
	eq(t, "remove actions", removes, 16)
	again, err := tbl.Optimize(ctx, OptimizeOptions{})
	must(t, err)
	eq(t, "second optimize is a no-op", again.NoOp, true)
	// Tombstones protect the old files until the retention passes.
	res2, err := tbl.Vacuum(ctx, VacuumOptions{Retention: time.Nanosecond, Force: true})
	must(t, err)
	eq(t, "vacuum right after optimize (files too new)", len(res2.Deleted), 0)
	clock = now.Add(8 * 24 * time.Hour)
	res3, err := tbl.Vacuum(ctx, VacuumOptions{})
	must(t, err)
	eq(t, "vacuum after retention", len(res3.Deleted), 16)
	eq(t, "data files left", len(dataFiles(t, st)), 2)
	_, final := readAll(t, st)
	sameRows(t, final, before)
	h, err := tbl.History(ctx, 1)
	must(t, err)
	eq(t, "history op", h[0].Operation, "OPTIMIZE")
}

func TestSchemaEvolution(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	tbl := mustCreate(t, st, simpleSchema(), []string{"part"}, map[string]string{"k": "v"}, OpenOptions{})
	appendSimple(t, tbl, 1, 5, nil)
	md0 := tbl.Snapshot().Metadata()
	wide := MustSchema(append(simpleSchema().Fields(), Field{Name: "score", Type: "double", Nullable: false}, Field{Name: "note", Type: "string", Nullable: true})...)
	res, err := tbl.Append(ctx, AppendRequest{Schema: wide, Mode: SchemaMerge, Rows: []Row{{"n1", int32(0), int32(2), "even", 1.5, "hi"}}})
	must(t, err)
	eq(t, "schema changed", res.SchemaChanged, true)
	snap, rows := readAll(t, st)
	md := snap.Metadata()
	eq(t, "same id", md.ID, md0.ID)
	eq(t, "same partitions", strings.Join(md.PartitionColumns, ","), "part")
	eq(t, "same configuration", md.Configuration["k"], "v")
	eq(t, "schema", snap.Schema().String(), "id string not null, proc integer not null, batch integer not null, part string, score double, note string")
	eq(t, "rows", len(rows), 6)
	for _, r := range rows {
		if r[0] != "n1" && (r[4] != nil || r[5] != nil) {
			t.Errorf("old row %v must read the new columns as null", r)
		}
	}
	acts, err := readCommit(ctx, st, res.Version)
	must(t, err)
	metas := 0
	for _, a := range acts {
		if a.MetaData != nil {
			metas++
		}
	}
	eq(t, "one metaData in the commit", metas, 1)
	// Narrower batch (a subset) under none: missing nullable columns are null.
	_, err = tbl.Append(ctx, AppendRequest{Schema: simpleSchema(), Rows: []Row{{"n2", int32(0), int32(3), nil}}})
	must(t, err)

	files := len(dataFiles(t, st))
	version := tbl.Version()
	bad := []struct {
		name   string
		schema *Schema
		mode   SchemaMode
		row    Row
	}{
		{"type change", MustSchema(Field{Name: "id", Type: "string"}, Field{Name: "proc", Type: "long"}, Field{Name: "batch", Type: "integer"}), SchemaMerge, Row{"x", int64(1), int32(1)}},
		{"unknown column under none", MustSchema(append(wide.Fields(), Field{Name: "new", Type: "long", Nullable: true})...), SchemaNone, Row{"x", int32(0), int32(0), nil, 1.0, nil, int64(1)}},
		{"dropped non-nullable column", MustSchema(Field{Name: "id", Type: "string"}, Field{Name: "batch", Type: "integer"}), SchemaMerge, Row{"x", int32(1)}},
	}
	for _, b := range bad {
		_, err := tbl.Append(ctx, AppendRequest{Schema: b.schema, Mode: b.mode, Rows: []Row{b.row}})
		if !errors.Is(err, ErrSchemaMismatch) {
			t.Errorf("%s: want ErrSchemaMismatch, got %v", b.name, err)
		}
	}
	eq(t, "nothing committed", tbl.Version(), version)
	eq(t, "no data file written", len(dataFiles(t, st)), files)
}

func TestCreate(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	opts := CreateOptions{Schema: trackingSchema(t), PartitionColumns: trackingPartitions, Properties: map[string]string{"delta.enableChangeDataFeed": "true"}}
	plan, err := PlanCreate(ctx, st, opts)
	must(t, err)
	eq(t, "dry run exists", plan.Exists, false)
	if objs, _ := st.List(ctx, ""); len(objs) != 0 {
		t.Fatalf("dry run wrote %d objects", len(objs))
	}
	if !strings.Contains(plan.String(), "minWriterVersion=4") {
		t.Errorf("plan: %s", plan)
	}
	tbl, err := Create(ctx, st, opts)
	must(t, err)
	acts, err := readCommit(ctx, st, 0)
	must(t, err)
	var sawCI, sawP, sawM bool
	for _, a := range acts {
		switch {
		case a.CommitInfo != nil:
			sawCI = true
		case a.Protocol != nil:
			sawP = true
			eq(t, "reader", a.Protocol.MinReaderVersion, 1)
			eq(t, "writer", a.Protocol.MinWriterVersion, 4)
		case a.MetaData != nil:
			sawM = true
			eq(t, "format", a.MetaData.Format.Provider, "parquet")
			if len(a.MetaData.ID) != 36 || a.MetaData.CreatedTime == nil {
				t.Errorf("metaData %+v", a.MetaData)
			}
		}
	}
	eq(t, "actions", sawCI && sawP && sawM, true)
	rows := []Row{trackingRow(1)}
	_, err = tbl.Append(ctx, AppendRequest{Rows: rows})
	must(t, err)
	_, err = Create(ctx, st, opts)
	if !errors.Is(err, ErrTableExists) {
		t.Fatalf("want ErrTableExists, got %v", err)
	}
	plan, err = PlanCreate(ctx, st, opts)
	must(t, err)
	eq(t, "exists", plan.Exists, true)
	eq(t, "existing version", plan.ExistingVersion, int64(1))
	opts.DropExisting = true
	opts.Properties = nil
	tbl2, err := Create(ctx, st, opts)
	must(t, err)
	eq(t, "recreated version", tbl2.Version(), int64(0))
	eq(t, "plain protocol", tbl2.Snapshot().Protocol().MinWriterVersion, 2)
	eq(t, "old data gone", len(dataFiles(t, st)), 0)
	_, err = Create(ctx, newLocal(t), CreateOptions{Schema: simpleSchema(), PartitionColumns: []string{"nope"}})
	if err == nil {
		t.Fatal("unknown partition column must fail")
	}
}

func TestRefuseUnsupportedFeatures(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		action string
		ok     bool
	}{
		{"deletion vectors", `{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors"],"writerFeatures":["deletionVectors"]}}`, true},
		{"column mapping by version", `{"protocol":{"minReaderVersion":2,"minWriterVersion":5}}`, true},
		{"identity columns by version", `{"protocol":{"minReaderVersion":1,"minWriterVersion":6}}`, true},
		{"row tracking", `{"protocol":{"minReaderVersion":1,"minWriterVersion":7,"writerFeatures":["rowTracking","domainMetadata"]}}`, true},
		{"in-commit timestamps", `{"protocol":{"minReaderVersion":1,"minWriterVersion":7,"writerFeatures":["inCommitTimestamp"]}}`, true},
		{"catalog managed", `{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["catalogManaged"],"writerFeatures":["catalogManaged"]}}`, false},
		{"iceberg compat", `{"protocol":{"minReaderVersion":1,"minWriterVersion":7,"writerFeatures":["icebergCompatV2","columnMapping"]}}`, false},
		{"check constraints", `{"protocol":{"minReaderVersion":1,"minWriterVersion":7,"writerFeatures":["checkConstraints"]}}`, true},
		{"appendOnly and changeDataFeed features", `{"protocol":{"minReaderVersion":1,"minWriterVersion":7,"writerFeatures":["appendOnly","changeDataFeed"]}}`, true},
		{"writer 4", `{"protocol":{"minReaderVersion":1,"minWriterVersion":4}}`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newLocal(t)
			tbl := mustCreate(t, st, simpleSchema(), nil, nil, OpenOptions{})
			must(t, st.PutIfAbsent(ctx, commitPath(1), []byte(tc.action+"\n")))
			tbl, err := Open(ctx, st, OpenOptions{})
			must(t, err) // reading is always allowed
			_, err = tbl.Append(ctx, AppendRequest{Rows: []Row{{"x", int32(0), int32(0), nil}}})
			if tc.ok {
				must(t, err)
				return
			}
			if !errors.Is(err, ErrUnsupportedFeature) {
				t.Fatalf("want ErrUnsupportedFeature, got %v", err)
			}
			eq(t, "no data written", len(dataFiles(t, st)), 0)
		})
	}
}

func TestLogCleanupAndHistory(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	now := time.Now()
	clock := now
	tbl := mustCreate(t, st, simpleSchema(), nil, nil, OpenOptions{CheckpointInterval: 4, Now: func() time.Time { return clock }})
	for b := 1; b <= 10; b++ {
		appendSimple(t, tbl, b, 2, nil)
	}
	_, before := readAll(t, st)
	del, err := tbl.CleanupLog(ctx, LogCleanupOptions{})
	must(t, err)
	eq(t, "nothing old enough", len(del), 0)
	clock = now.Add(31 * 24 * time.Hour)
	dry, err := tbl.CleanupLog(ctx, LogCleanupOptions{DryRun: true})
	must(t, err)
	// Behind checkpoint 8: commits 0..7 and checkpoint 4.
	eq(t, "dry run", len(dry), 9)
	del, err = tbl.CleanupLog(ctx, LogCleanupOptions{})
	must(t, err)
	eq(t, "deleted", len(del), 9)
	for _, p := range del {
		if lf := parseLogName(p); lf.version >= 8 {
			t.Errorf("deleted %s at or after the checkpoint", p)
		}
	}
	_, after := readAll(t, st)
	sameRows(t, after, before)
	h, err := tbl.History(ctx, 0)
	must(t, err)
	eq(t, "history after cleanup", len(h), 3) // versions 10, 9, 8
	eq(t, "newest first", h[0].Version, int64(10))
	d := tbl.Describe()
	eq(t, "describe files", d.NumFiles, 10)
	eq(t, "describe rows", d.NumRows, int64(20))
}

// TestCheckpointExpiresTxns checks delta.setTransactionRetentionDuration: a
// checkpoint leaves out txns last updated before now minus the retention
// (a results table's one appId per run would otherwise grow without end),
// keeps the others and those with no lastUpdated, and keeps all without the
// property. A bad value is refused at creation.
func TestCheckpointExpiresTxns(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *int64 { ms := now.Add(-d).UnixMilli(); return &ms }
	txns := []Txn{
		{AppID: "run-old", Version: 0, LastUpdated: at(31 * 24 * time.Hour)},
		{AppID: "run-edge", Version: 0, LastUpdated: at(30*24*time.Hour - time.Minute)},
		{AppID: "run-new", Version: 0, LastUpdated: at(time.Hour)},
		{AppID: "run-undated", Version: 3},
	}
	for _, tc := range []struct {
		name  string
		props map[string]string
		kept  []string
	}{
		{"30 days", map[string]string{TxnRetentionProperty: "interval 30 days"}, []string{"run-edge", "run-new", "run-undated"}},
		{"unset", nil, []string{"run-edge", "run-new", "run-old", "run-undated"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newLocal(t)
			tbl := mustCreate(t, st, simpleSchema(), nil, tc.props, OpenOptions{Now: func() time.Time { return now }})
			for i, tx := range txns {
				res, err := tbl.Append(ctx, AppendRequest{Txns: []Txn{tx}})
				must(t, err)
				if tx.LastUpdated == nil {
					// Append stamps it with the clock: take it back out so
					// this txn has none, as another engine may write it.
					tbl.snap.txns[tx.AppID] = Txn{AppID: tx.AppID, Version: tx.Version}
				}
				eq(t, fmt.Sprintf("version %d", i), res.Version, int64(i+1))
			}
			must(t, tbl.Checkpoint(ctx))
			// Read the checkpoint only: the commits still hold every txn.
			for v := int64(1); v <= tbl.Version(); v++ {
				must(t, st.Delete(ctx, commitPath(v)))
			}
			t2, err := Open(ctx, st, OpenOptions{})
			must(t, err)
			var kept []string
			for _, id := range []string{"run-edge", "run-new", "run-old", "run-undated"} {
				if _, ok := t2.TxnVersion(id); ok {
					kept = append(kept, id)
				}
			}
			eq(t, "txns in the checkpoint", strings.Join(kept, ","), strings.Join(tc.kept, ","))
		})
	}
	_, err := Create(ctx, newLocal(t), CreateOptions{Schema: simpleSchema(), Properties: map[string]string{TxnRetentionProperty: "soon"}})
	if err == nil || !strings.Contains(err.Error(), TxnRetentionProperty) {
		t.Fatalf("a bad retention: %v", err)
	}
}
