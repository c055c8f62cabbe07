package delta

import (
	"context"
	"reflect"
	"testing"
)

// ReadColumns must agree with ReadFile projected onto the same columns: flat
// columns with nulls, partition columns, a column added after the file was
// written, several row groups and pages, a deletion vector.
func TestReadColumnsMatchesReadFile(t *testing.T) {
	ctx := context.Background()
	st := newLocal(t)
	tbl := mustCreate(t, st, trackingSchema(t), trackingPartitions, nil,
		OpenOptions{Writer: WriterOptions{RowGroupBytes: 32 << 10}, CheckpointInterval: 1000})
	rows := make([]Row, 600)
	for i := range rows {
		rows[i] = trackingRow(i)
	}
	_, err := tbl.Append(ctx, AppendRequest{Rows: rows})
	must(t, err)
	// A column the first files lack.
	wider := MustSchema(append(trackingSchema(t).Fields(), Field{Name: "extra", Type: "long", Nullable: true})...)
	extra := make([]Row, 3)
	for i := range extra {
		extra[i] = append(trackingRow(1000+i), int64(i))
	}
	_, err = tbl.Append(ctx, AppendRequest{Rows: extra, Schema: wider, Mode: SchemaMerge})
	must(t, err)
	upgrade(t, st, tbl, Protocol{MinReaderVersion: 3, MinWriterVersion: 7, ReaderFeatures: []string{"deletionVectors"}, WriterFeatures: []string{"deletionVectors"}},
		map[string]string{"delta.enableDeletionVectors": "true"})
	deleteRows(t, st, tbl, tbl.Snapshot().Files()[0], 0, 1)

	snap := tbl.Snapshot()
	cases := []struct {
		name string
		cols []string
	}{
		{"one string column", []string{"event_id"}},
		{"nullable long and timestamp", []string{"assignment_id", "task_completed_at"}},
		{"partition columns between data columns", []string{"day", "task_status", "year"}},
		{"column added later", []string{"extra", "event_id"}},
		{"no columns", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range snap.Files() {
				full, err := snap.ReadFile(ctx, st, f)
				must(t, err)
				got, err := snap.ReadColumns(ctx, st, f, tc.cols)
				must(t, err)
				if len(got) != len(full) {
					t.Fatalf("%s: %d rows, ReadFile has %d", f.Path, len(got), len(full))
				}
				for r := range full {
					want := make(Row, len(tc.cols))
					for k, c := range tc.cols {
						want[k] = full[r][snap.Schema().Index(c)]
					}
					if !reflect.DeepEqual(got[r], want) {
						t.Fatalf("%s row %d: got %v, want %v", f.Path, r, got[r], want)
					}
				}
			}
		})
	}
	if _, err := snap.ReadColumns(ctx, st, snap.Files()[0], []string{"nope"}); err == nil {
		t.Fatal("an unknown column must fail")
	}
}
