package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/claimx/claimx-connect/delta"
	"github.com/claimx/claimx-connect/internal/bytesize"
)

// maxListedPartitions bounds the partitions text output lists; --json
// lists them all.
const maxListedPartitions = 50

// deltaExpireCommand is `delta expire`: the data retention policy.
func deltaExpireCommand() *cli.Command {
	return &cli.Command{
		Name:      "expire",
		Usage:     "Remove data older than a retention (a DELETE commit; vacuum deletes the files later)",
		ArgsUsage: "URI --column COL --keep RETENTION",
		Description: `Removes, in one DELETE commit, the files whose rows are all older than now
minus --keep (UTC). --keep: 90d, 12w, 18mo (months), 7y, 1y6mo, or a Go duration.

--column is a partition column (date, timestamp, or a string holding an ISO
date): each partition wholly older than the cutoff goes, the day the cutoff
falls in stays; null partitions never expire. Integer partition columns
year,month,day (the tracking table) are read together as a UTC date.
A non-partition date or timestamp column is judged by each file's statistics:
a file goes only when its maximum is older than the cutoff, so a file
straddling the cutoff stays until all its rows expire, and a file without
statistics stays.

Nothing is deleted from storage: 'delta vacuum' deletes the removed files once
they are older than delta.deletedFileRetentionDuration (default 7 days). A
concurrent compaction of the same files makes the commit fail without
effect; run it again.`,
		Flags: append([]cli.Flag{tableFlag(),
			&cli.StringFlag{Name: "column", Usage: "time column: partition column, year,month,day, or a date/timestamp column (by file statistics)"},
			&cli.StringFlag{Name: "keep", Usage: "retention: 90d, 12w, 18mo, 7y or a Go duration"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print what would be expired and commit nothing"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		}, storageFlags()...),
		Action: func(c *cli.Context) error {
			t, err := tableFromArgs(c, dryRunReadOnly)
			if err != nil {
				return err
			}
			if c.String("column") == "" {
				return cli.Exit("--column is required", 2)
			}
			if c.String("keep") == "" {
				return cli.Exit("--keep is required", 2)
			}
			keep, err := delta.ParseRetention(c.String("keep"))
			if err != nil {
				return cli.Exit(fmt.Sprintf("--keep: %v", err), 2)
			}
			res, err := t.Expire(c.Context, delta.ExpireOptions{Column: c.String("column"), Keep: keep, DryRun: c.Bool("dry-run")})
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			retention := t.Snapshot().Configuration()["delta.deletedFileRetentionDuration"]
			if retention == "" {
				retention = delta.MinVacuumRetention.String()
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, expireJSON(res, keep, t.PartitionColumns(), retention))
			}
			printExpiry(c.App.Writer, res, keep, t.PartitionColumns(), retention)
			if res.CheckpointErr != nil {
				fmt.Fprintf(c.App.ErrWriter, "warning: checkpoint after expire failed: %v\n", res.CheckpointErr)
			}
			return nil
		},
	}
}

func expireJSON(res delta.ExpireResult, keep delta.Retention, partCols []string, retention string) map[string]any {
	parts := make([]map[string]any, 0, len(res.Partitions))
	for _, p := range res.Partitions {
		parts = append(parts, map[string]any{"values": p.Values, "name": partitionName(partCols, p.Values), "files": p.Files, "bytes": p.Bytes, "rows": p.Rows})
	}
	out := map[string]any{
		"version": res.Version, "committed": !res.NoOp && !res.DryRun, "dry_run": res.DryRun,
		"keep": keep.String(), "cutoff": res.Cutoff.UTC().Format(time.RFC3339Nano), "predicate": res.Predicate,
		"by_stats": res.ByStats, "partitions": parts, "files": res.Files, "bytes": res.Bytes,
		"rows": res.Rows, "rows_exact": res.RowsExact, "removed_paths": res.RemovedPaths,
		"deleted_file_retention": retention,
	}
	if res.ByStats {
		out["kept_straddling"] = res.KeptStraddling
		out["kept_without_stats"] = res.KeptWithoutStats
	}
	if res.RemovedPaths == nil {
		out["removed_paths"] = []string{}
	}
	return out
}

func printExpiry(w io.Writer, res delta.ExpireResult, keep delta.Retention, partCols []string, retention string) {
	prefix, verb := "", "expired"
	if res.DryRun {
		prefix, verb = "(dry run) ", "would expire"
	}
	fmt.Fprintf(w, "%skeep %s: cutoff %s, predicate %s\n", prefix, keep, res.Cutoff.UTC().Format(time.RFC3339), res.Predicate)
	if res.ByStats {
		fmt.Fprintf(w, "%sby file statistics: %d files straddle the cutoff and %d files have no statistics for the column; they are kept\n",
			prefix, res.KeptStraddling, res.KeptWithoutStats)
	}
	if res.NoOp {
		fmt.Fprintf(w, "%snothing to expire at version %d\n", prefix, res.Version)
		return
	}
	rows := fmt.Sprintf("%d rows", res.Rows)
	if !res.RowsExact {
		rows += " (at least; some files lack stats)"
	}
	if len(res.Partitions) > 0 {
		tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "PARTITION\tFILES\tROWS\tBYTES")
		for i, p := range res.Partitions {
			if i == maxListedPartitions {
				break
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", partitionName(partCols, p.Values), p.Files, p.Rows, p.Bytes)
		}
		tw.Flush()
		if n := len(res.Partitions) - maxListedPartitions; n > 0 {
			fmt.Fprintf(w, "… %d more partitions (--json lists them all)\n", n)
		}
	}
	if res.DryRun {
		fmt.Fprintf(w, "(dry run) would expire %d partitions, %d files (%d bytes), %s at version %d; nothing committed\n",
			len(res.Partitions), res.Files, res.Bytes, rows, res.Version)
		return
	}
	fmt.Fprintf(w, "%s %d partitions, %d files (%d bytes), %s: DELETE committed as version %d\n",
		verb, len(res.Partitions), res.Files, res.Bytes, rows, res.Version)
	fmt.Fprintf(w, "the files are still in storage: 'claimx-connect delta vacuum' deletes them once older than delta.deletedFileRetentionDuration (%s)\n", retention)
}

// partitionName renders partition values as col=value/… in partition
// column order.
func partitionName(partCols []string, vals map[string]*string) string {
	if len(partCols) == 0 {
		return "(unpartitioned)"
	}
	parts := make([]string, 0, len(partCols))
	for _, c := range partCols {
		v := "null"
		if p := vals[c]; p != nil {
			v = *p
		}
		parts = append(parts, c+"="+v)
	}
	return strings.Join(parts, "/")
}

// printPartitions lists the partitions of a description (at most
// maxListedPartitions, sorted as Describe sorts them).
func printPartitions(w io.Writer, d delta.Description) {
	if len(d.PartitionColumns) == 0 || len(d.Partitions) == 0 {
		return
	}
	fmt.Fprintln(w, "partitions:")
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "  PARTITION\tFILES\tSMALL\tROWS\tBYTES")
	for i, p := range d.Partitions {
		if i == maxListedPartitions {
			break
		}
		rows := fmt.Sprint(p.NumRows)
		if !p.RowsExact {
			rows += "+"
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%d\n", partitionName(d.PartitionColumns, p.Values), p.NumFiles, p.SmallFiles, rows, p.SizeBytes)
	}
	tw.Flush()
	if n := len(d.Partitions) - maxListedPartitions; n > 0 {
		fmt.Fprintf(w, "  … %d more partitions (--json lists them all)\n", n)
	}
}

// tableForDescribe opens the table read-only with the writer target size
// of --target-size, against which Describe counts small files.
func tableForDescribe(c *cli.Context) (*delta.Table, error) {
	uri, err := tableArg(c)
	if err != nil {
		return nil, err
	}
	size, err := bytesize.Parse(c.String("target-size"))
	if err != nil || size <= 0 {
		return nil, cli.Exit(fmt.Sprintf("--target-size %q: want a positive size such as 128MiB", c.String("target-size")), 2)
	}
	st, err := openStore(c, uri)
	if err != nil {
		return nil, cli.Exit(err.Error(), 1)
	}
	t, err := delta.Open(c.Context, st, delta.OpenOptions{ReadOnly: true, Writer: delta.WriterOptions{TargetFileSize: size}})
	if err != nil {
		return nil, cli.Exit(fmt.Sprintf("opening Delta table %s: %v", uri, err), 1)
	}
	return t, nil
}

// partitionsJSON is the per-partition part of `describe --json`.
func partitionsJSON(d delta.Description) []map[string]any {
	out := make([]map[string]any, 0, len(d.Partitions))
	for _, p := range d.Partitions {
		vals := p.Values
		if vals == nil {
			vals = map[string]*string{}
		}
		out = append(out, map[string]any{
			"values": vals, "name": partitionName(d.PartitionColumns, p.Values),
			"num_files": p.NumFiles, "small_files": p.SmallFiles, "num_rows": p.NumRows,
			"rows_exact": p.RowsExact, "size_bytes": p.SizeBytes,
		})
	}
	return out
}
