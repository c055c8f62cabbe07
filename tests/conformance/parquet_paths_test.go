//go:build conformance

package conformance

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/claimx/claimx-connect/delta"
)

// TestParquetColumnPathsInEveryFile is the minimal form of a Spark failure:
// parquet-mr (Spark, Hive, Trino, Databricks) finds each column chunk by its
// footer's path_in_schema, and rejects a file whose chunks name no column
// ("InvalidRecordException: not found in message spark_schema"); pyarrow,
// delta-rs and DuckDB go by position and do not notice. One append over six
// partitions with one encoder makes the writer encode several files in a
// row; every chunk of every file must carry its column's path.
func TestParquetColumnPathsInEveryFile(t *testing.T) {
	dir := t.TempDir()
	sc := delta.MustSchema(
		delta.Field{Name: "event_id", Type: "string"},
		delta.Field{Name: "n", Type: "long", Nullable: true},
		delta.Field{Name: "day", Type: "integer", Nullable: true},
	)
	tbl, err := delta.Create(t.Context(), openLocal(t, dir), delta.CreateOptions{
		Schema: sc, PartitionColumns: []string{"day"},
		Open: delta.OpenOptions{Writer: delta.WriterOptions{Parallelism: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var rows []delta.Row
	for i := 0; i < 12; i++ {
		rows = append(rows, delta.Row{fmt.Sprintf("e%d", i), int64(i), int32(i % 6)})
	}
	if _, err := tbl.Append(t.Context(), delta.AppendRequest{Rows: rows}); err != nil {
		t.Fatal(err)
	}
	files := tbl.Snapshot().Files()
	if len(files) != 6 {
		t.Fatalf("%d files, want one per partition (6)", len(files))
	}
	bad := 0
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(unescapePath(t, f.Path))))
		if err != nil {
			t.Fatal(err)
		}
		pf, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("%s: %v", f.Path, err)
		}
		for _, rg := range pf.Metadata().RowGroups {
			var paths []string
			for _, c := range rg.Columns {
				paths = append(paths, strings.Join(c.MetaData.PathInSchema, "."))
			}
			if got := strings.Join(paths, ","); got != "event_id,n" {
				bad++
				t.Errorf("%s: column chunk paths %q, want \"event_id,n\"", f.Path, paths)
			}
		}
	}
	if bad > 0 {
		t.Logf("%d of %d files have column chunks without a path (Spark cannot read them)", bad, len(files))
	}
}

func unescapePath(t *testing.T, p string) string {
	t.Helper()
	s, err := url.PathUnescape(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
