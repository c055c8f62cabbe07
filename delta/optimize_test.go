package delta

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claimx/claimx-connect/delta/storage"
)

// appendOne appends one row (id, part) as its own commit.
func appendOne(t testing.TB, tbl *Table, id int, part string) {
	t.Helper()
	_, err := tbl.Append(context.Background(), AppendRequest{Rows: []Row{{fmt.Sprintf("r%05d", id), int32(0), int32(id), part}}})
	must(t, err)
}

func partOf(part string) map[string]*string { return map[string]*string{"part": &part} }

// TestAutoCompactTieredBoundsFiles: compacting after every one-row commit,
// level by level, keeps the files of a partition under
// (MinFiles-1) per level, rewrites each row only once per level, and loses
// or duplicates no row.
func TestAutoCompactTieredBoundsFiles(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	tbl := mustCreate(t, st, simpleSchema(), []string{"part"}, nil, OpenOptions{})
	const n, minFiles = 300, 4
	var rewritten int64
	maxFiles := 0
	for i := 0; i < n; i++ {
		part := []string{"a", "b"}[i%2]
		appendOne(t, tbl, i, part)
		res, err := tbl.Optimize(ctx, OptimizeOptions{Tiered: true, MinFiles: minFiles, Partitions: []map[string]*string{partOf(part)}})
		must(t, err)
		rewritten += res.Rows
		for _, b := range res.Bins {
			for _, f := range b.Removed {
				if f.PartitionValues["part"] == nil || *f.PartitionValues["part"] != part {
					t.Fatalf("compaction of partition %s removed %s of another partition", part, f.Path)
				}
			}
		}
		_, perPart := tbl.FileCounts()
		maxFiles = max(maxFiles, perPart)
	}
	// 150 rows a partition, levels of 4: level sizes 1, 4, 16, 64 rows, so
	// at most 3 files of each of 4 levels (and one of level 4).
	if maxFiles > 3*4+1 {
		t.Errorf("a partition held %d files; tiered compaction should keep it at most %d", maxFiles, 3*4+1)
	}
	// Each row is rewritten at most once per level it climbs (4 here).
	if rewritten > int64(n*4) {
		t.Errorf("%d rows rewritten for %d written: more than one rewrite per level", rewritten, n)
	}
	if rewritten == 0 {
		t.Fatal("nothing was compacted")
	}
	levels := map[int]bool{}
	for _, f := range tbl.Snapshot().Files() {
		levels[compactionLevel(f)] = true
	}
	if !levels[2] {
		t.Errorf("no file reached level 2: %v", levels)
	}
	_, rows := readAll(t, st)
	eq(t, "rows", len(rows), n)
	seen := map[string]bool{}
	for _, r := range rows {
		id := r[0].(string)
		if seen[id] {
			t.Fatalf("row %s twice", id)
		}
		seen[id] = true
	}
}

// TestOptimizePartitionFilter: only the named partitions are compacted.
func TestOptimizePartitionFilter(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	tbl := mustCreate(t, st, simpleSchema(), []string{"part"}, nil, OpenOptions{})
	for i := 0; i < 6; i++ {
		appendOne(t, tbl, i, []string{"a", "b"}[i%2])
	}
	res, err := tbl.Optimize(ctx, OptimizeOptions{Partitions: []map[string]*string{partOf("b")}})
	must(t, err)
	eq(t, "partitions", res.Partitions, 1)
	eq(t, "files removed", res.FilesRemoved, 3)
	for _, p := range res.RemovedPaths {
		if !strings.HasPrefix(p, "part=b/") {
			t.Errorf("removed %s outside partition b", p)
		}
	}
	eq(t, "live files", tbl.Snapshot().NumFiles(), 4)
	// Manual compaction of levels: everything small goes into one file.
	res, err = tbl.Optimize(ctx, OptimizeOptions{})
	must(t, err)
	eq(t, "files after", tbl.Snapshot().NumFiles(), 2)
	for _, b := range res.Bins {
		for _, a := range b.Added {
			if a.Tags[CompactionLevelTag] == "" {
				t.Errorf("compacted file %s has no %s tag", a.Path, CompactionLevelTag)
			}
		}
	}
}

// gateStore blocks the first Get of a data file until release is closed,
// and reports that it is blocked: it holds a compaction in its read phase.
type gateStore struct {
	storage.Store
	once    sync.Once
	blocked chan struct{}
	release chan struct{}
}

func (g *gateStore) Get(ctx context.Context, p string) ([]byte, error) {
	if strings.HasSuffix(p, ".parquet") && !strings.HasPrefix(p, "_delta_log/") {
		g.once.Do(func() {
			close(g.blocked)
			<-g.release
		})
	}
	return g.Store.Get(ctx, p)
}

// gatedTable creates a table with four one-row files in partition "a" and
// returns its local store, and a handle on it through a gateStore (the
// first data file read blocks until release).
func gatedTable(t *testing.T) (*storage.Local, *gateStore, *Table) {
	t.Helper()
	local := newLocal(t)
	g := &gateStore{Store: local, blocked: make(chan struct{}), release: make(chan struct{})}
	mustCreate(t, local, simpleSchema(), []string{"part"}, nil, OpenOptions{})
	tbl, err := Open(context.Background(), g, OpenOptions{})
	must(t, err)
	for i := 0; i < 4; i++ {
		appendOne(t, tbl, i, "a")
	}
	return local, g, tbl
}

// TestOptimizeDoesNotBlockAppends: while a compaction reads and rewrites
// files, appends through the same handle commit (the lock is held only to
// plan and to commit), and the compaction still commits afterwards.
func TestOptimizeDoesNotBlockAppends(t *testing.T) {
	ctx := context.Background()
	local, g, tbl := gatedTable(t)
	done := make(chan error, 1)
	var res OptimizeResult
	go func() {
		var err error
		res, err = tbl.Optimize(ctx, OptimizeOptions{})
		done <- err
	}()
	<-g.blocked
	appended := make(chan struct{})
	go func() {
		appendOne(t, tbl, 100, "a")
		close(appended)
	}()
	select {
	case <-appended:
	case <-time.After(10 * time.Second):
		t.Fatal("an append waited for a compaction in progress")
	}
	close(g.release)
	must(t, <-done)
	eq(t, "removed", res.FilesRemoved, 4)
	if res.Version != tbl.Version() || res.Version != 6 {
		t.Errorf("compaction committed version %d, table at %d; want 6 after the concurrent append", res.Version, tbl.Version())
	}
	_, rows := readAll(t, local)
	eq(t, "rows", len(rows), 5)
}

// TestOptimizeConflictsWithConcurrentRemoval: a file the compaction
// rewrites is removed by another writer meanwhile: ErrConflict, nothing
// committed, and the winner's table is intact.
func TestOptimizeConflictsWithConcurrentRemoval(t *testing.T) {
	ctx := context.Background()
	local, g, slow := gatedTable(t)
	done := make(chan error, 1)
	go func() {
		_, err := slow.Optimize(ctx, OptimizeOptions{})
		done <- err
	}()
	<-g.blocked
	other, err := Open(ctx, local, OpenOptions{})
	must(t, err)
	if _, err := other.Optimize(ctx, OptimizeOptions{}); err != nil {
		t.Fatal(err)
	}
	won := other.Version()
	close(g.release)
	err = <-done
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("want ErrConflict, got %v", err)
	}
	must(t, slow.Refresh(ctx))
	eq(t, "version", slow.Version(), won)
	_, rows := readAll(t, local)
	eq(t, "rows", len(rows), 4)
}

func TestAutoCompactEnabled(t *testing.T) {
	for v, want := range map[string]bool{"true": true, "auto": true, "legacy": true, "TRUE": true, "false": false, "": false, "maybe": false} {
		if got := AutoCompactEnabled(map[string]string{"delta.autoOptimize.autoCompact": v}); got != want {
			t.Errorf("%q: got %v", v, got)
		}
	}
}

// TestOptimizeSurvivesSchemaEvolution: another writer adds a column while
// a compaction reads and rewrites; the compaction still commits (its files
// read the new column as null), and every row is there once.
func TestOptimizeSurvivesSchemaEvolution(t *testing.T) {
	ctx := context.Background()
	local, g, slow := gatedTable(t)
	done := make(chan error, 1)
	go func() {
		_, err := slow.Optimize(ctx, OptimizeOptions{})
		done <- err
	}()
	<-g.blocked
	other, err := Open(ctx, local, OpenOptions{})
	must(t, err)
	wider := MustSchema(append(simpleSchema().Fields(), Field{Name: "note", Type: "string", Nullable: true})...)
	_, err = other.Append(ctx, AppendRequest{Schema: wider, Mode: SchemaMerge, Rows: []Row{{"r100", int32(0), int32(100), "a", "new"}}})
	must(t, err)
	close(g.release)
	must(t, <-done)
	snap, rows := readAll(t, local)
	eq(t, "rows", len(rows), 5)
	eq(t, "columns", snap.Schema().Len(), 5)
	eq(t, "files", snap.NumFiles(), 2)
}

func TestRewriteCompatible(t *testing.T) {
	base := simpleSchema()
	md := func(sc *Schema, parts []string, conf map[string]string) Metadata {
		return Metadata{SchemaString: sc.SchemaString(), PartitionColumns: parts, Configuration: conf}
	}
	old := md(base, []string{"part"}, nil)
	added := MustSchema(append(base.Fields(), Field{Name: "note", Type: "string", Nullable: true})...)
	fields := base.Fields()
	fields[2].Type, fields[2].DataType = "long", nil
	retyped := MustSchema(fields...)
	dropped := MustSchema(base.Fields()[:3]...)
	for _, tc := range []struct {
		name string
		nw   Metadata
		want bool
	}{
		{"same", old, true},
		{"column added", md(added, []string{"part"}, nil), true},
		{"column retyped", md(retyped, []string{"part"}, nil), false},
		{"column dropped", md(dropped, nil, nil), false},
		{"partitioning changed", md(base, nil, nil), false},
		{"column mapping turned on", md(base, []string{"part"}, map[string]string{ColumnMappingModeKey: "name"}), false},
	} {
		if got := rewriteCompatible(old, tc.nw); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
