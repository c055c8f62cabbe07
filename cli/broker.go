package cli

import (
	"fmt"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/claimx/claimx-connect/kafka/broker"
)

// BrokerCommand is `claimx-connect broker`: an embedded Kafka-protocol broker
// for local runs and tests.
func BrokerCommand() *cli.Command {
	return &cli.Command{
		Name:  "broker",
		Usage: "Run an embedded Kafka-protocol broker (for local runs and tests, not production)",
		Description: `Starts a one-node Kafka-protocol broker (franz-go's kfake) that any Kafka
client, kcat included, can use. With --data-dir, topics, records and committed
offsets survive a restart.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:9092", Usage: "host:port to listen on"},
			&cli.StringFlag{Name: "data-dir", Usage: "persist state in this directory"},
			&cli.IntFlag{Name: "partitions", Value: 1, Usage: "partitions of auto-created and seeded topics"},
			&cli.StringSliceFlag{Name: "topic", Usage: "create this topic at start (repeatable)"},
			&cli.BoolFlag{Name: "auto-create-topics", Value: true, Usage: "create topics when a producer writes to them"},
		},
		Action: func(c *cli.Context) error {
			b, err := broker.Start(broker.Config{
				Addr:              c.String("addr"),
				DataDir:           c.String("data-dir"),
				DefaultPartitions: c.Int("partitions"),
				AutoCreateTopics:  c.Bool("auto-create-topics"),
				SeedTopics:        c.StringSlice("topic"),
			})
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			defer b.Close()
			fmt.Fprintf(c.App.Writer, "embedded broker listening on %s\n", strings.Join(b.Addrs(), ","))
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			return nil
		},
	}
}
