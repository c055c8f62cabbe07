package delta

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"testing"

	"github.com/claimx/claimx-connect/delta/storage"
)

// TestDeltaRSReadsRestoreAndClone: delta-rs (the quick suite's python)
// reads a table we restored across a schema change, and its deep clone,
// at the version and with exactly the rows expected.
func TestDeltaRSReadsRestoreAndClone(t *testing.T) {
	py := deltaRSPython(t)
	ctx := context.Background()
	root := t.TempDir()
	st, err := storage.NewLocal(filepath.Join(root, "src"))
	must(t, err)
	tbl := mustCreate(t, st, simpleSchema(), []string{"part"}, nil, OpenOptions{CheckpointInterval: 3})
	var want []Row
	for b := 0; b < 3; b++ {
		rows := simpleRows(fmt.Sprintf("b%d", b), 3)
		for i := range rows {
			rows[i][3] = []string{"x", "y"}[i%2]
		}
		_, err := tbl.Append(ctx, AppendRequest{Rows: rows})
		must(t, err)
		if b < 2 {
			want = append(want, rows...)
		}
	}
	wide := MustSchema(append(simpleSchema().Fields(), Field{Name: "extra", Type: "string", Nullable: true})...)
	_, err = tbl.Append(ctx, AppendRequest{Schema: wide, Mode: SchemaMerge, Rows: []Row{{"w", int32(1), int32(9), "x", "e"}}}) // 4
	must(t, err)
	_, err = tbl.Restore(ctx, RestoreOptions{Version: ptr(int64(2))}) // 5
	must(t, err)
	dst, err := storage.NewLocal(filepath.Join(root, "clone"))
	must(t, err)
	_, err = Clone(ctx, st, dst, CloneOptions{})
	must(t, err)

	for _, tc := range []struct {
		dir     string
		version int64
	}{{"src", 5}, {"clone", 0}} {
		v := runDeltaRS(t, py, filepath.Join(root, tc.dir))
		eq(t, tc.dir+": delta-rs version", v.Version, tc.version)
		var names []string
		for _, f := range v.Schema {
			names = append(names, f.Name)
		}
		eq(t, tc.dir+": delta-rs columns", fmt.Sprint(names), "[id proc batch part]")
		var got []string
		for _, r := range v.Rows {
			got = append(got, fmt.Sprint(r["id"]))
		}
		sort.Strings(got)
		var exp []string
		for _, r := range want {
			exp = append(exp, r[0].(string))
		}
		sort.Strings(exp)
		eq(t, tc.dir+": delta-rs rows", fmt.Sprint(got), fmt.Sprint(exp))
	}
}
