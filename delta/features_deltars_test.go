package delta

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/claimx/claimx-connect/delta/storage"
)

// TestDeltaRSReadsFeatureTable: delta-rs (an independent reader) reads a
// table this engine made with deletion vectors, row tracking, in-commit
// timestamps and a V2 checkpoint, honouring the DV.
func TestDeltaRSReadsFeatureTable(t *testing.T) {
	py := deltaRSPython(t)
	ctx := context.Background()
	dir := t.TempDir()
	st, err := storage.NewLocal(dir)
	must(t, err)
	props := map[string]string{"delta.enableDeletionVectors": "true", "delta.enableRowTracking": "true", "delta.enableInCommitTimestamps": "true", "delta.checkpointPolicy": "v2"}
	tbl := mustCreate(t, st, simpleSchema(), nil, props, OpenOptions{CheckpointInterval: 1000})
	r, err := tbl.Append(ctx, AppendRequest{Rows: simpleRows("a", 5)})
	must(t, err)
	_, err = tbl.Append(ctx, AppendRequest{Rows: simpleRows("b", 3)})
	must(t, err)
	deleteRows(t, st, tbl, *tbl.Snapshot().files[pathKey(r.Files[0].Path)], 1, 3)
	must(t, tbl.Checkpoint(ctx))
	// Only the checkpoint describes versions up to 3.
	for v := int64(0); v < tbl.Version(); v++ {
		must(t, st.Delete(ctx, commitPath(v)))
	}
	script := `
import sys, deltalake
from deltalake import QueryBuilder
dt = deltalake.DeltaTable(sys.argv[1])
r = QueryBuilder().register('t', dt).execute('select id from t order by id').read_all()
print(dt.version(), ','.join(r.column('id').to_pylist()))
sys.stdout.flush()
import os; os._exit(0)  # delta-rs can abort in interpreter teardown
`
	out, err := exec.Command(py, "-c", script, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("delta-rs: %v\n%s", err, out)
	}
	eq(t, "delta-rs view", strings.TrimSpace(string(out)), "3 aa,ac,ae,ba,bb,bc")
}
