package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/delta/storage"
	"github.com/claimx/claimx-connect/internal/bytesize"
)

// storageFlags select an endpoint override for S3-compatible stores and
// emulators; credentials always come from the environment.
func storageFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "endpoint", Usage: "object storage endpoint override (S3-compatible stores, emulators)"},
		&cli.StringFlag{Name: "region", Usage: "S3 region, when the environment names none"},
	}
}

func openStore(c *cli.Context, uri string) (storage.Store, error) {
	return storage.Open(c.Context, uri, storage.Options{Endpoint: c.String("endpoint"), Region: c.String("region")})
}

// openTable opens an existing table; read-only commands never write.
func openTable(c *cli.Context, uri string, readOnly bool) (*delta.Table, error) {
	st, err := openStore(c, uri)
	if err != nil {
		return nil, err
	}
	t, err := delta.Open(c.Context, st, delta.OpenOptions{ReadOnly: readOnly})
	if err != nil {
		return nil, fmt.Errorf("opening Delta table %s: %w", uri, err)
	}
	return t, nil
}

// tableFromArgs opens the table the arguments name; readOnly is decided
// after the flags written behind the URI are applied.
func tableFromArgs(c *cli.Context, readOnly func(*cli.Context) bool) (*delta.Table, error) {
	uri, err := tableArg(c)
	if err != nil {
		return nil, err
	}
	t, err := openTable(c, uri, readOnly(c))
	if err != nil {
		return nil, cli.Exit(err.Error(), 1)
	}
	return t, nil
}

func readOnly(*cli.Context) bool         { return true }
func writable(*cli.Context) bool         { return false }
func dryRunReadOnly(c *cli.Context) bool { return c.Bool("dry-run") }

// tableArg takes the table URI from --table or the first argument.
func tableArg(c *cli.Context) (string, error) {
	positional, err := interspersedArgs(c)
	if err != nil {
		return "", err
	}
	if len(positional) > 1 {
		return "", cli.Exit(fmt.Sprintf("one table URI expected, got %q", positional), 2)
	}
	if t := c.String("table"); t != "" {
		if len(positional) > 0 {
			return "", cli.Exit("give the table URI either as --table or as the argument, not both", 2)
		}
		return t, nil
	}
	if len(positional) == 0 {
		return "", cli.Exit("a table URI is required (--table or argument)", 2)
	}
	return positional[0], nil
}

// interspersedArgs applies flags written after the first argument
// (`delta describe URI --json`), which urfave/cli leaves unparsed, and
// returns the positional arguments.
func interspersedArgs(c *cli.Context) ([]string, error) {
	args := c.Args().Slice()
	var positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := findFlag(c.Command.Flags, name)
		if f == nil {
			return nil, cli.Exit(fmt.Sprintf("unknown flag %s", a), 2)
		}
		if !hasValue {
			if _, isBool := f.(*cli.BoolFlag); isBool {
				value = "true"
			} else if i+1 < len(args) {
				i++
				value = args[i]
			} else {
				return nil, cli.Exit(fmt.Sprintf("flag %s needs a value", a), 2)
			}
		}
		if err := c.Set(name, value); err != nil {
			return nil, cli.Exit(fmt.Sprintf("flag %s: %v", a, err), 2)
		}
	}
	return positional, nil
}

func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func tableFlag() cli.Flag {
	return &cli.StringFlag{Name: "table", Usage: "table URI (or give it as the argument)"}
}

// DeltaCommand is `claimx-connect delta …`: create, describe, history,
// checkpoint, optimize, vacuum, expire, restore, clone and check (data
// quality).
func DeltaCommand() *cli.Command {
	return &cli.Command{
		Name:  "delta",
		Usage: "Create, inspect and maintain Delta Lake tables",
		Description: `Table URIs: a local path or file://, s3://bucket/prefix, abfss://container@account.dfs.core.windows.net/path,
az://container/path, gs://bucket/prefix. Credentials come from the environment.`,
		Subcommands: []*cli.Command{
			deltaCreateCommand(),
			deltaDescribeCommand(),
			deltaHistoryCommand(),
			deltaCheckpointCommand(),
			deltaOptimizeCommand(),
			deltaVacuumCommand(),
			deltaExpireCommand(),
			deltaRestoreCommand(),
			deltaCloneCommand(),
			deltaCheckCommand(),
		},
	}
}

func deltaCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "Create a table from a schema file",
		ArgsUsage: "[--table] URI --schema FILE",
		Description: `The schema file is a YAML (or JSON) list of {name, type, nullable}; nullable
defaults to true. Types: string, long, integer, short, byte, float, double,
boolean, binary, date, timestamp, timestamp_ntz, decimal(p,s), and nested
types as Spark DDL (array<string>, map<string,long>, struct<a:long,b:array<string>>)
or in the nested form (type: struct with fields, type: array with elementType,
type: map with keyType and valueType).`,
		Flags: append([]cli.Flag{
			tableFlag(),
			&cli.StringFlag{Name: "schema", Usage: "schema file (YAML or JSON list of {name, type, nullable})"},
			&cli.StringSliceFlag{Name: "partition-by", Usage: "partition column (repeatable, or comma-separated)"},
			&cli.StringSliceFlag{Name: "property", Usage: "table property k=v (repeatable)"},
			&cli.StringFlag{Name: "name", Usage: "table name recorded in the metadata"},
			&cli.StringFlag{Name: "description", Usage: "table description recorded in the metadata"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print what would be created and write nothing"},
			&cli.BoolFlag{Name: "drop-existing", Usage: "delete an existing table (log and data) first"},
		}, storageFlags()...),
		Action: func(c *cli.Context) error {
			uri, err := tableArg(c)
			if err != nil {
				return err
			}
			if c.String("schema") == "" {
				return cli.Exit("--schema FILE is required", 2)
			}
			raw, err := os.ReadFile(c.String("schema"))
			if err != nil {
				return cli.Exit(fmt.Sprintf("reading schema file: %v", err), 1)
			}
			sc, err := delta.ParseSchemaFile(raw)
			if err != nil {
				return cli.Exit(fmt.Sprintf("%s: %v", c.String("schema"), err), 1)
			}
			var parts []string
			for _, p := range c.StringSlice("partition-by") {
				for _, s := range strings.Split(p, ",") {
					if s = strings.TrimSpace(s); s != "" {
						parts = append(parts, s)
					}
				}
			}
			props := map[string]string{}
			for _, kv := range c.StringSlice("property") {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return cli.Exit(fmt.Sprintf("--property %q: want key=value", kv), 2)
				}
				props[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
			st, err := openStore(c, uri)
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			opts := delta.CreateOptions{
				Schema: sc, PartitionColumns: parts, Properties: props,
				Name: c.String("name"), Description: c.String("description"),
				DropExisting: c.Bool("drop-existing"),
			}
			w := c.App.Writer
			if c.Bool("dry-run") {
				plan, err := delta.PlanCreate(c.Context, st, opts)
				if err != nil {
					return cli.Exit(err.Error(), 1)
				}
				fmt.Fprintf(w, "(dry run) would create %s\n%s", st.URI(), plan)
				if plan.Exists && !opts.DropExisting {
					return cli.Exit(fmt.Sprintf("a table already exists at %s (version %d); --drop-existing replaces it", st.URI(), plan.ExistingVersion), 1)
				}
				return nil
			}
			t, err := delta.Create(c.Context, st, opts)
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			d := t.Describe()
			fmt.Fprintf(w, "created %s (version %d, protocol %d/%d)\n", st.URI(), d.Version, d.Protocol.MinReaderVersion, d.Protocol.MinWriterVersion)
			return nil
		},
	}
}

func deltaDescribeCommand() *cli.Command {
	return &cli.Command{
		Name:      "describe",
		Usage:     "Print schema, partitions, version, files, rows, bytes and properties",
		ArgsUsage: "URI",
		Flags: append([]cli.Flag{tableFlag(), &cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.StringFlag{Name: "target-size", Value: "128MiB", Usage: "files under this size count as small (the writer's target file size)"},
		}, storageFlags()...),
		Action: func(c *cli.Context) error {
			t, err := tableForDescribe(c)
			if err != nil {
				return err
			}
			d := t.Describe()
			if c.Bool("json") {
				out := describeJSON(d)
				out["partitions"] = partitionsJSON(d)
				out["target_file_size"] = d.TargetFileSize
				out["small_files"] = d.SmallFiles
				return writeJSON(c.App.Writer, out)
			}
			printDescription(c.App.Writer, d)
			fmt.Fprintf(c.App.Writer, "small files: %d (under %d bytes)\n", d.SmallFiles, d.TargetFileSize)
			printPartitions(c.App.Writer, d)
			return nil
		},
	}
}

func describeJSON(d delta.Description) map[string]any {
	cols := make([]map[string]any, 0, d.Schema.Len())
	for _, f := range d.Schema.Fields() {
		cols = append(cols, map[string]any{"name": f.Name, "type": f.Type, "nullable": f.Nullable})
	}
	return map[string]any{
		"uri": d.URI, "id": d.ID, "name": d.Name, "description": d.Description,
		"version": d.Version, "created_time": d.CreatedTime.UTC().Format(time.RFC3339Nano),
		"min_reader_version": d.Protocol.MinReaderVersion, "min_writer_version": d.Protocol.MinWriterVersion,
		"schema": cols, "partition_columns": d.PartitionColumns, "properties": d.Properties,
		"num_files": d.NumFiles, "size_bytes": d.SizeBytes, "num_rows": d.NumRows, "rows_exact": d.RowsExact,
		"num_partitions": d.NumPartitions, "checkpoint_version": d.CheckpointVersion, "txns": d.Txns,
		"features": d.Features, "deleted_rows": d.DeletedRows, "domains": d.Domains,
	}
}

func printDescription(w io.Writer, d delta.Description) {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "table\t%s\n", d.URI)
	if d.Name != "" {
		fmt.Fprintf(tw, "name\t%s\n", d.Name)
	}
	fmt.Fprintf(tw, "id\t%s\n", d.ID)
	fmt.Fprintf(tw, "version\t%d\n", d.Version)
	fmt.Fprintf(tw, "protocol\treader %d, writer %d\n", d.Protocol.MinReaderVersion, d.Protocol.MinWriterVersion)
	if len(d.Features) > 0 {
		fmt.Fprintf(tw, "features\t%s\n", strings.Join(d.Features, ", "))
	}
	fmt.Fprintf(tw, "partitions\t%s (%d values)\n", strings.Join(d.PartitionColumns, ", "), d.NumPartitions)
	fmt.Fprintf(tw, "files\t%d\n", d.NumFiles)
	exact := ""
	if !d.RowsExact {
		exact = " (some files lack stats)"
	}
	fmt.Fprintf(tw, "rows\t%d%s\n", d.NumRows, exact)
	if d.FilesWithDeletionVectors > 0 {
		fmt.Fprintf(tw, "deleted rows\t%d (deletion vectors on %d files)\n", d.DeletedRows, d.FilesWithDeletionVectors)
	}
	fmt.Fprintf(tw, "bytes\t%d\n", d.SizeBytes)
	if d.CheckpointVersion >= 0 {
		fmt.Fprintf(tw, "checkpoint\t%d\n", d.CheckpointVersion)
	}
	keys := make([]string, 0, len(d.Properties))
	for k := range d.Properties {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(tw, "property\t%s=%s\n", k, d.Properties[k])
	}
	apps := make([]string, 0, len(d.Txns))
	for k := range d.Txns {
		apps = append(apps, k)
	}
	sort.Strings(apps)
	for _, a := range apps {
		fmt.Fprintf(tw, "txn\t%s=%d\n", a, d.Txns[a])
	}
	tw.Flush()
	fmt.Fprintln(w, "schema:")
	tw = tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	for _, f := range d.Schema.Fields() {
		null := "NOT NULL"
		if f.Nullable {
			null = "NULL"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", f.Name, f.Type, null)
	}
	tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func deltaHistoryCommand() *cli.Command {
	return &cli.Command{
		Name:      "history",
		Usage:     "Print the commits of a table, newest first",
		ArgsUsage: "URI",
		Flags: append([]cli.Flag{tableFlag(),
			&cli.IntFlag{Name: "limit", Value: 20, Usage: "at most this many commits (0: all)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		}, storageFlags()...),
		Action: func(c *cli.Context) error {
			t, err := tableFromArgs(c, readOnly)
			if err != nil {
				return err
			}
			hist, err := t.History(c.Context, c.Int("limit"))
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, hist)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tTIMESTAMP\tOPERATION\tPARAMETERS")
			for _, h := range hist {
				params, _ := json.Marshal(h.CommitInfo["operationParameters"])
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", h.Version, h.Timestamp.UTC().Format(time.RFC3339), h.Operation, params)
			}
			return tw.Flush()
		},
	}
}

func deltaCheckpointCommand() *cli.Command {
	return &cli.Command{
		Name:      "checkpoint",
		Usage:     "Write a checkpoint of the current version",
		ArgsUsage: "URI",
		Flags:     append([]cli.Flag{tableFlag()}, storageFlags()...),
		Action: func(c *cli.Context) error {
			t, err := tableFromArgs(c, writable)
			if err != nil {
				return err
			}
			if err := t.Checkpoint(c.Context); err != nil {
				return cli.Exit(err.Error(), 1)
			}
			fmt.Fprintf(c.App.Writer, "checkpoint written at version %d\n", t.Version())
			return nil
		},
	}
}

func deltaOptimizeCommand() *cli.Command {
	return &cli.Command{
		Name:      "optimize",
		Usage:     "Compact small files of each partition (dataChange=false)",
		ArgsUsage: "URI",
		Flags: append([]cli.Flag{tableFlag(),
			&cli.StringFlag{Name: "target-size", Value: "128MiB", Usage: "target file size"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print what would be compacted and write nothing"},
		}, storageFlags()...),
		Action: func(c *cli.Context) error {
			t, err := tableFromArgs(c, dryRunReadOnly)
			if err != nil {
				return err
			}
			size, err := bytesize.Parse(c.String("target-size"))
			if err != nil {
				return cli.Exit(err.Error(), 2)
			}
			res, err := t.Optimize(c.Context, delta.OptimizeOptions{TargetFileSize: size, DryRun: c.Bool("dry-run")})
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			prefix := ""
			if c.Bool("dry-run") {
				prefix = "(dry run) "
			}
			if res.NoOp {
				fmt.Fprintf(c.App.Writer, "%snothing to compact at version %d\n", prefix, res.Version)
				return nil
			}
			fmt.Fprintf(c.App.Writer, "%sversion %d: %d partitions, %d files (%d bytes) rewritten as %d files (%d bytes), %d rows\n",
				prefix, res.Version, res.Partitions, res.FilesRemoved, res.BytesRemoved, res.FilesAdded, res.BytesAdded, res.Rows)
			if res.CheckpointErr != nil {
				fmt.Fprintf(c.App.ErrWriter, "warning: checkpoint after optimize failed: %v\n", res.CheckpointErr)
			}
			return nil
		},
	}
}

func deltaVacuumCommand() *cli.Command {
	return &cli.Command{
		Name:      "vacuum",
		Usage:     "Delete files no version within the retention references",
		ArgsUsage: "URI",
		Flags: append([]cli.Flag{tableFlag(),
			&cli.DurationFlag{Name: "retain", Value: 168 * time.Hour, Usage: "keep unreferenced files younger than this"},
			&cli.BoolFlag{Name: "dry-run", Usage: "list what would be deleted and delete nothing"},
			&cli.BoolFlag{Name: "force", Usage: "allow a retention under 168h (readers of older versions may fail)"},
			&cli.BoolFlag{Name: "log", Usage: "also delete log files older than delta.logRetentionDuration behind a checkpoint"},
		}, storageFlags()...),
		Action: func(c *cli.Context) error {
			t, err := tableFromArgs(c, dryRunReadOnly)
			if err != nil {
				return err
			}
			res, err := t.Vacuum(c.Context, delta.VacuumOptions{Retention: c.Duration("retain"), Force: c.Bool("force"), DryRun: c.Bool("dry-run")})
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			verb := "deleted"
			if res.DryRun {
				verb = "would delete"
			}
			for _, p := range res.Deleted {
				fmt.Fprintf(c.App.Writer, "%s %s\n", verb, p)
			}
			fmt.Fprintf(c.App.Writer, "%s %d files (%d bytes)\n", verb, len(res.Deleted), res.Bytes)
			if c.Bool("log") {
				removed, err := t.CleanupLog(c.Context, delta.LogCleanupOptions{DryRun: c.Bool("dry-run")})
				if err != nil {
					return cli.Exit(err.Error(), 1)
				}
				fmt.Fprintf(c.App.Writer, "%s %d log files\n", verb, len(removed))
			}
			return nil
		},
	}
}
