package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/urfave/cli/v2"

	"github.com/claimx/claimx-connect/kafka/topics"
)

// TopicsCommand is `claimx-connect topics apply FILE [--dry-run]`.
func TopicsCommand() *cli.Command {
	return &cli.Command{
		Name:  "topics",
		Usage: "Manage Kafka topics declaratively",
		Subcommands: []*cli.Command{{
			Name:      "apply",
			Usage:     "Create or update the topics a YAML file lists (idempotent)",
			ArgsUsage: "FILE",
			Description: `Creates missing topics, raises partition counts and sets differing configs
(retention.ms, ...). Prints what it created, changed or left alone. A
replication factor above the number of brokers is an error unless
--cap-replication is given (single-broker development clusters).`,
			Flags: append(kafkaFlags(),
				&cli.BoolFlag{Name: "dry-run", Usage: "print what would change and change nothing"},
				&cli.BoolFlag{Name: "cap-replication", Usage: "lower replication factors above the broker count to the broker count"},
				&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "give up after this long"},
			),
			Action: func(c *cli.Context) error {
				args, err := interspersedArgs(c)
				if err != nil {
					return err
				}
				if len(args) != 1 {
					return cli.Exit("usage: claimx-connect topics apply FILE [--dry-run]", 2)
				}
				specs, err := topics.ParseFile(args[0])
				if err != nil {
					return cli.Exit(err.Error(), 1)
				}
				ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
				defer cancel()
				cl, err := connectKafka(ctx, c)
				if err != nil {
					return cli.Exit(err.Error(), 1)
				}
				defer cl.Close()
				results, err := topics.Apply(ctx, kadm.NewClient(cl), specs, topics.Options{
					DryRun:         c.Bool("dry-run"),
					CapReplication: c.Bool("cap-replication"),
				})
				prefix := ""
				if c.Bool("dry-run") {
					prefix = "(dry run) "
				}
				for _, r := range results {
					fmt.Fprintln(c.App.Writer, prefix+r.String())
				}
				if err != nil {
					return cli.Exit(err.Error(), 1)
				}
				return nil
			},
		}},
	}
}
