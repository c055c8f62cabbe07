package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/claimx/claimx-connect/delta"
)

// versionFlags select a table version by number or by timestamp.
func versionFlags(what string) []cli.Flag {
	return []cli.Flag{
		&cli.Int64Flag{Name: "version", Usage: what + " this table version"},
		&cli.StringFlag{Name: "timestamp", Usage: what + " the version as of this time (RFC 3339), as Spark's TIMESTAMP AS OF"},
	}
}

// versionSelection reads --version / --timestamp: at most one; required
// says whether one must be given.
func versionSelection(c *cli.Context, required bool) (*int64, *time.Time, error) {
	hasV, hasT := c.IsSet("version"), c.String("timestamp") != ""
	switch {
	case hasV && hasT:
		return nil, nil, cli.Exit("give --version or --timestamp, not both", 2)
	case hasV:
		v := c.Int64("version")
		if v < 0 {
			return nil, nil, cli.Exit(fmt.Sprintf("--version %d: versions start at 0", v), 2)
		}
		return &v, nil, nil
	case hasT:
		ts, err := time.Parse(time.RFC3339Nano, c.String("timestamp"))
		if err != nil {
			return nil, nil, cli.Exit(fmt.Sprintf("--timestamp %q: want RFC 3339, such as 2026-01-02T15:04:05Z", c.String("timestamp")), 2)
		}
		return nil, &ts, nil
	case required:
		return nil, nil, cli.Exit("give --version N or --timestamp RFC3339", 2)
	}
	return nil, nil, nil
}

func deltaRestoreCommand() *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "Restore a table to an older version (Delta's RESTORE TABLE), in one new commit",
		ArgsUsage: "URI",
		Description: `Removes the files live now that the version did not have and adds back the files it had,
and brings back its schema and properties. Refused when files of the version were vacuumed.`,
		Flags: append(append([]cli.Flag{tableFlag(), &cli.BoolFlag{Name: "json", Usage: "print JSON"}},
			versionFlags("restore")...), storageFlags()...),
		Action: func(c *cli.Context) error {
			uri, err := tableArg(c)
			if err != nil {
				return err
			}
			v, ts, err := versionSelection(c, true)
			if err != nil {
				return err
			}
			t, err := openTable(c, uri, false)
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			res, err := t.Restore(c.Context, delta.RestoreOptions{Version: v, Timestamp: ts})
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			if c.Bool("json") {
				out := map[string]any{
					"table": uri, "version": res.Version, "restoredVersion": res.RestoredVersion,
					"numRemovedFiles": res.NumRemovedFiles, "numRestoredFiles": res.NumRestoredFiles,
					"removedFilesSize": res.RemovedFilesSize, "restoredFilesSize": res.RestoredFilesSize,
					"numOfFilesAfterRestore": res.NumOfFilesAfterRestore, "tableSizeAfterRestore": res.TableSizeAfterRestore,
					"metadataRestored": res.MetadataRestored, "protocolUpgraded": res.ProtocolUpgraded,
				}
				if res.CheckpointErr != nil {
					out["checkpointError"] = res.CheckpointErr.Error()
				}
				return writeJSON(c.App.Writer, out)
			}
			fmt.Fprintf(c.App.Writer, "restored %s to version %d as version %d: %d files removed (%d bytes), %d restored (%d bytes); now %d files, %d bytes\n",
				uri, res.RestoredVersion, res.Version, res.NumRemovedFiles, res.RemovedFilesSize, res.NumRestoredFiles, res.RestoredFilesSize,
				res.NumOfFilesAfterRestore, res.TableSizeAfterRestore)
			if res.MetadataRestored {
				fmt.Fprintln(c.App.Writer, "schema and properties of that version restored")
			}
			if res.CheckpointErr != nil {
				fmt.Fprintf(c.App.ErrWriter, "warning: checkpoint after restore failed: %v\n", res.CheckpointErr)
			}
			return nil
		},
	}
}

func deltaCloneCommand() *cli.Command {
	return &cli.Command{
		Name:      "clone",
		Usage:     "Deep-clone a table (a version of it) to another location, possibly another backend",
		ArgsUsage: "SRC DST",
		Description: `Copies every live data and deletion vector file of the version, then writes version 0 of DST
(same schema, partitioning and properties, a new table id; operation CLONE). DST must not hold a table.
Files are copied a few at a time, each held in memory whole.`,
		Flags: append(append([]cli.Flag{
			&cli.StringSliceFlag{Name: "property", Usage: "override a table property k=v in the clone (repeatable)"},
			&cli.StringFlag{Name: "name", Usage: "table name recorded in the clone's metadata"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		}, versionFlags("clone")...), storageFlags()...),
		Action: func(c *cli.Context) error {
			args, err := interspersedArgs(c)
			if err != nil {
				return err
			}
			if len(args) != 2 {
				return cli.Exit(fmt.Sprintf("clone needs SRC and DST table URIs, got %q", args), 2)
			}
			v, ts, err := versionSelection(c, false)
			if err != nil {
				return err
			}
			props := map[string]string{}
			for _, p := range c.StringSlice("property") {
				k, val, ok := strings.Cut(p, "=")
				if !ok || strings.TrimSpace(k) == "" {
					return cli.Exit(fmt.Sprintf("--property %q: want k=v", p), 2)
				}
				props[strings.TrimSpace(k)] = val
			}
			src, err := openStore(c, args[0])
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			dst, err := openStore(c, args[1])
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			res, err := delta.Clone(c.Context, src, dst, delta.CloneOptions{Version: v, Timestamp: ts, Name: c.String("name"), Properties: props})
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, map[string]any{
					"source": args[0], "target": args[1], "sourceVersion": res.SourceVersion, "tableId": res.TableID,
					"numFiles": res.NumFiles, "tableSize": res.TableSize, "numCopiedFiles": res.NumCopiedFiles, "copiedFilesSize": res.CopiedBytes,
				})
			}
			fmt.Fprintf(c.App.Writer, "cloned %s version %d to %s (table id %s): %d files, %d bytes; %d objects copied (%d bytes)\n",
				args[0], res.SourceVersion, args[1], res.TableID, res.NumFiles, res.TableSize, res.NumCopiedFiles, res.CopiedBytes)
			return nil
		},
	}
}
