package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// run runs one command line of the delta command and returns its output.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := &cli.App{
		Name:           "claimx-connect",
		Commands:       []*cli.Command{DeltaCommand()},
		Writer:         &out,
		ErrWriter:      &out,
		ExitErrHandler: func(*cli.Context, error) {},
	}
	err := app.Run(append([]string{"claimx-connect"}, args...))
	return out.String(), err
}

func TestDeltaCommands(t *testing.T) {
	dir := t.TempDir()
	table := filepath.Join(dir, "t")
	schema := filepath.Join(dir, "schema.yaml")
	if err := os.WriteFile(schema, []byte(`
- { name: event_id, type: string, nullable: false }
- { name: event_timestamp, type: timestamp, nullable: false }
- { name: year, type: integer }
`), 0o644); err != nil {
		t.Fatal(err)
	}

	out, err := run(t, "delta", "create", "--table", table, "--schema", schema, "--partition-by", "year", "--dry-run")
	if err != nil || !strings.Contains(out, "(dry run) would create") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(table, "_delta_log")); err == nil {
		t.Fatal("dry run wrote a log")
	}

	out, err = run(t, "delta", "create", table, "--schema", schema, "--partition-by", "year", "--property", "delta.enableChangeDataFeed=true")
	if err != nil || !strings.Contains(out, "created") || !strings.Contains(out, "protocol 1/4") {
		t.Fatalf("create: %v\n%s", err, out)
	}

	if _, err := run(t, "delta", "create", table, "--schema", schema); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second create must refuse, got %v", err)
	}
	if out, err := run(t, "delta", "create", table, "--schema", schema, "--drop-existing"); err != nil {
		t.Fatalf("drop-existing: %v\n%s", err, out)
	}

	out, err = run(t, "delta", "describe", table, "--json")
	if err != nil {
		t.Fatalf("describe: %v\n%s", err, out)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("describe --json is not JSON: %v\n%s", err, out)
	}
	if d["version"] != float64(0) || len(d["schema"].([]any)) != 3 || d["partition_columns"] != nil {
		// --drop-existing recreated the table without partitions.
		t.Fatalf("describe: %v", d)
	}

	for _, args := range [][]string{
		{"delta", "history", table},
		{"delta", "checkpoint", table},
		{"delta", "optimize", table, "--dry-run"},
		{"delta", "vacuum", table, "--dry-run", "--retain", "200h"},
	} {
		if out, err := run(t, args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	if _, err := run(t, "delta", "vacuum", table, "--retain", "1h"); err == nil {
		t.Fatal("vacuum under 168h without --force must refuse")
	}
	if _, err := run(t, "delta", "describe", table, "--bogus"); err == nil || !strings.Contains(err.Error(), "unknown flag") {
		t.Fatalf("want unknown flag error, got %v", err)
	}
	if _, err := run(t, "delta", "describe", filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "not a Delta table") {
		t.Fatalf("want not-a-table error, got %v", err)
	}
}
