package delta

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2/roaring64"
	"github.com/claimx/claimx-connect/delta/storage"
)

// cloneSource builds a partitioned table with column mapping, deletion
// vectors (one "u", one "p" with a file name of its own), row tracking, a
// txn and a file named by an absolute path. It returns the table and the
// rows it holds.
func cloneSource(t *testing.T) (*storage.Local, *Table, []Row) {
	t.Helper()
	ctx := context.Background()
	st := newLocal(t)
	sc := MustSchema(Field{Name: "id", Type: "long"}, Field{Name: "name", Type: "string", Nullable: true}, Field{Name: "region", Type: "string"})
	tbl := mustCreate(t, st, sc, []string{"region"}, map[string]string{"delta.columnMapping.mode": "name",
		"delta.enableDeletionVectors": "true", "delta.enableRowTracking": "true"}, OpenOptions{CheckpointInterval: 1000})
	batch := func(lo, hi int) []Row {
		var rows []Row
		for i := lo; i < hi; i++ {
			rows = append(rows, Row{int64(i), fmt.Sprintf("n%d", i), []string{"east", "west"}[i%2]})
		}
		return rows
	}
	r1, err := tbl.Append(ctx, AppendRequest{Rows: batch(0, 6), Txns: []Txn{{AppID: "app", Version: 1}}}) // 1
	must(t, err)
	r2, err := tbl.Append(ctx, AppendRequest{Rows: batch(6, 10)}) // 2
	must(t, err)
	eq(t, "files per batch", len(r1.Files), 2)
	deleteRows(t, st, tbl, r1.Files[0], 0) // 3: a "u" DV

	// 4: a "p" DV in a file whose name is not a DV UUID name.
	data, off, size, err := EncodeDeletionVectorFile(roaring64.BitmapOf(1))
	must(t, err)
	must(t, st.Put(ctx, "custom/dv-file.bin", data))
	f := r1.Files[1]
	add := f
	add.DeletionVector = &DeletionVector{StorageType: "p", PathOrInlineDv: st.URI() + "/custom/dv-file.bin", Offset: &off, SizeInBytes: size, Cardinality: 1}
	commitActions(t, tbl, Action{Add: &add}, Action{Remove: &RemoveFile{Path: f.Path, DataChange: true, DeletionTimestamp: ptr(time.Now().UnixMilli())}})
	_, rows := readAll(t, st)
	eq(t, "source rows", len(rows), 8)

	// 5: the same file named by its absolute URI (our reader does not
	// read those; a clone makes it relative).
	g := r2.Files[0]
	abs := g
	abs.Path = st.URI() + "/" + g.Path
	commitActions(t, tbl, Action{Remove: &RemoveFile{Path: g.Path, DataChange: false, DeletionTimestamp: ptr(time.Now().UnixMilli())}}, Action{Add: &abs})
	return st, tbl, rows
}

// commitActions commits actions as the next version of tbl, as another
// writer would.
func commitActions(t *testing.T, tbl *Table, acts ...Action) {
	t.Helper()
	ctx := context.Background()
	all := append([]Action{{CommitInfo: map[string]any{"timestamp": time.Now().UnixMilli(), "operation": "MANUAL"}}}, acts...)
	b, err := EncodeCommit(all)
	must(t, err)
	must(t, tbl.Store().PutIfAbsent(ctx, commitPath(tbl.Version()+1), b))
	must(t, tbl.Refresh(ctx))
}

func listing(t *testing.T, st storage.Store) map[string]int64 {
	t.Helper()
	objs, err := st.List(context.Background(), "")
	must(t, err)
	out := map[string]int64{}
	for _, o := range objs {
		out[o.Path] = o.Size
	}
	return out
}

func TestCloneDeep(t *testing.T) {
	ctx := context.Background()
	src, tbl, want := cloneSource(t)
	srcSnap := tbl.Snapshot()
	before := listing(t, src)

	for _, tc := range []struct {
		name string
		dst  storage.Store
	}{{"local to local", newLocal(t)}, {"local to memory", newMemStore()}} {
		t.Run(tc.name, func(t *testing.T) {
			dst := tc.dst
			res, err := Clone(ctx, src, dst, CloneOptions{Name: "copy", Properties: map[string]string{"owner": "ops"}})
			must(t, err)
			eq(t, "source version", res.SourceVersion, srcSnap.Version())
			eq(t, "files", res.NumFiles, 4)
			eq(t, "copied: 4 data files and 2 DV files", res.NumCopiedFiles, 6)

			snap, rows := readAll(t, dst)
			sameRows(t, rows, want)
			eq(t, "clone version", snap.Version(), int64(0))
			md, smd := snap.Metadata(), srcSnap.Metadata()
			if md.ID == smd.ID || md.ID != res.TableID {
				t.Errorf("clone id %s, source %s, result %s: want a new id", md.ID, smd.ID, res.TableID)
			}
			eq(t, "name", md.Name, "copy")
			eq(t, "schema (physical names included)", md.SchemaString, smd.SchemaString)
			eq(t, "partitioning", strings.Join(md.PartitionColumns, ","), "region")
			wantConf := srcSnap.Configuration()
			wantConf["owner"] = "ops"
			if !reflect.DeepEqual(md.Configuration, wantConf) {
				t.Errorf("configuration %v, want %v", md.Configuration, wantConf)
			}
			if !reflect.DeepEqual(snap.Protocol(), srcSnap.Protocol()) {
				t.Errorf("protocol %+v, want the source's %+v", snap.Protocol(), srcSnap.Protocol())
			}
			eq(t, "txns not copied", len(snap.Txns()), 0)
			hwm, err := snap.RowIDHighWaterMark()
			must(t, err)
			shwm, _ := srcSnap.RowIDHighWaterMark()
			eq(t, "high-water mark", hwm, shwm)
			srcByName := map[string]AddFile{}
			for _, f := range srcSnap.Files() {
				srcByName[pathKey(f.Path)[strings.LastIndex(pathKey(f.Path), "/")+1:]] = f
			}
			for _, f := range snap.Files() {
				if isAbsolutePath(f.Path) {
					t.Errorf("clone add %s is absolute", f.Path)
				}
				if f.DeletionVector != nil && f.DeletionVector.StorageType != "u" {
					t.Errorf("clone add %s has a %q DV", f.Path, f.DeletionVector.StorageType)
				}
				s := srcByName[pathKey(f.Path)[strings.LastIndex(pathKey(f.Path), "/")+1:]]
				if s.BaseRowID == nil || *f.BaseRowID != *s.BaseRowID || *f.DefaultRowCommitVersion != *s.DefaultRowCommitVersion {
					t.Errorf("clone add %s row ids %v/%v, source %v/%v", f.Path, f.BaseRowID, f.DefaultRowCommitVersion, s.BaseRowID, s.DefaultRowCommitVersion)
				}
				eq(t, "dataChange", f.DataChange, true)
			}
			acts, err := readCommit(ctx, dst, 0)
			must(t, err)
			ci := acts[0].CommitInfo
			eq(t, "operation", ci["operation"], any(OperationClone))
			params := ci["operationParameters"].(map[string]any)
			eq(t, "source param", params["source"], any(src.URI()))
			eq(t, "sourceVersion param", params["sourceVersion"], any(itoa(srcSnap.Version())))
			eq(t, "isShallow param", params["isShallow"], any("false"))

			// The clone is a table of its own: appends get fresh row ids.
			ct, err := Open(ctx, dst, OpenOptions{})
			must(t, err)
			ar, err := ct.Append(ctx, AppendRequest{Rows: []Row{{int64(100), "new", "east"}}})
			must(t, err)
			eq(t, "fresh row id", *ar.Files[0].BaseRowID, hwm+1)

			// A second clone into the same place is refused.
			if _, err := Clone(ctx, src, dst, CloneOptions{}); !errors.Is(err, ErrTableExists) {
				t.Errorf("clone into an existing table: %v, want ErrTableExists", err)
			}
		})
	}
	if got := listing(t, src); !reflect.DeepEqual(got, before) {
		t.Errorf("the source changed: %v, was %v", got, before)
	}

	// An older version, by version number.
	dst := newLocal(t)
	res, err := Clone(ctx, src, dst, CloneOptions{Version: ptr(int64(2))})
	must(t, err)
	eq(t, "older source version", res.SourceVersion, int64(2))
	_, rows := readAll(t, dst)
	eq(t, "rows at version 2", len(rows), 10)
	if _, err := Clone(ctx, src, newLocal(t), CloneOptions{Version: ptr(int64(42))}); !errors.Is(err, ErrVersionNotAvailable) {
		t.Errorf("clone of a version beyond the newest: %v", err)
	}
	for _, k := range []string{"delta.columnMapping.mode", "delta.enableRowTracking"} {
		if _, err := Clone(ctx, src, newLocal(t), CloneOptions{Properties: map[string]string{k: "none"}}); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("clone changing %s: %v", k, err)
		}
	}
}

// TestCloneMissingFile: a file the version needs is gone; the clone fails
// naming it and writes no log.
func TestCloneMissingFile(t *testing.T) {
	ctx := context.Background()
	src := newLocal(t)
	tbl := mustCreate(t, src, simpleSchema(), nil, nil, OpenOptions{})
	res, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows("a", 2)})
	must(t, err)
	must(t, src.Delete(ctx, pathKey(res.Files[0].Path)))
	dst := newLocal(t)
	_, err = Clone(ctx, src, dst, CloneOptions{})
	if !errors.Is(err, ErrFilesMissing) || !strings.Contains(err.Error(), pathKey(res.Files[0].Path)) {
		t.Fatalf("clone with a missing file: %v", err)
	}
	if _, err := dst.Stat(ctx, commitPath(0)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a failed clone wrote version 0: %v", err)
	}
}
