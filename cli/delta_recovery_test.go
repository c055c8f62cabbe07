package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
)

func TestDeltaRestoreAndClone(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	st, err := storage.NewLocal(src)
	if err != nil {
		t.Fatal(err)
	}
	sc := delta.MustSchema(delta.Field{Name: "id", Type: "long"})
	tbl, err := delta.Create(ctx, st, delta.CreateOptions{Schema: sc})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := tbl.Append(ctx, delta.AppendRequest{Rows: []delta.Row{{int64(i)}}}); err != nil {
			t.Fatal(err)
		}
	}

	out, err := run(t, "delta", "restore", src, "--version", "1", "--json")
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	var rj map[string]any
	if err := json.Unmarshal([]byte(out), &rj); err != nil {
		t.Fatalf("restore --json: %v\n%s", err, out)
	}
	if rj["version"] != float64(4) || rj["restoredVersion"] != float64(1) || rj["numRemovedFiles"] != float64(2) {
		t.Errorf("restore summary %v", rj)
	}

	dst := filepath.Join(dir, "dst")
	out, err = run(t, "delta", "clone", src, dst, "--version", "3", "--property", "owner=ops")
	if err != nil || !strings.Contains(out, "version 3") || !strings.Contains(out, "3 files") {
		t.Fatalf("clone: %v\n%s", err, out)
	}
	dstStore, err := storage.NewLocal(dst)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := delta.Open(ctx, dstStore, delta.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := ct.Snapshot().Configuration()["owner"]; got != "ops" || ct.Snapshot().NumFiles() != 3 {
		t.Errorf("clone: owner=%q, %d files", got, ct.Snapshot().NumFiles())
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"restore without a version", []string{"restore", src}, "--version N or --timestamp"},
		{"restore with both", []string{"restore", src, "--version", "1", "--timestamp", "2026-01-01T00:00:00Z"}, "not both"},
		{"restore with a bad timestamp", []string{"restore", src, "--timestamp", "yesterday"}, "RFC 3339"},
		{"restore before the table", []string{"restore", src, "--timestamp", "2000-01-01T00:00:00Z"}, "before the earliest"},
		{"clone into a table", []string{"clone", src, dst}, "already exists"},
		{"clone with one URI", []string{"clone", src}, "SRC and DST"},
		{"clone with a bad property", []string{"clone", src, filepath.Join(dir, "x"), "--property", "novalue"}, "want k=v"},
	} {
		out, err := run(t, append([]string{"delta"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error()+out, tc.want) {
			t.Errorf("%s: %v\n%s\nwant an error with %q", tc.name, err, out, tc.want)
		}
	}
}
