// Package cli holds the subcommands claimx-connect adds to the benthos CLI:
// topic administration, the embedded broker, Delta table commands, the ClaimX
// simulator and the local development run.
package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/urfave/cli/v2"
)

// Admin commands connect with flags for the brokers and TLS; SASL credentials
// come only from the environment so they never appear in a process listing.
const (
	envBootstrap     = "KAFKA_BOOTSTRAP_SERVERS"
	envSASLMechanism = "KAFKA_SASL_MECHANISM"
	envSASLUsername  = "KAFKA_SASL_USERNAME"
	envSASLPassword  = "KAFKA_SASL_PASSWORD"
)

func kafkaFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "brokers",
			Usage:   "comma-separated seed brokers",
			EnvVars: []string{envBootstrap},
			Value:   "localhost:9092",
		},
		&cli.BoolFlag{
			Name:  "tls",
			Usage: "connect with TLS (system root CAs)",
		},
	}
}

// kafkaClient builds a franz-go client from the admin flags and the SASL
// environment variables.
func kafkaClient(c *cli.Context) (*kgo.Client, error) {
	var seeds []string
	for _, s := range strings.Split(c.String("brokers"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			seeds = append(seeds, s)
		}
	}
	if len(seeds) == 0 {
		return nil, fmt.Errorf("no brokers given (--brokers or %s)", envBootstrap)
	}
	opts, err := kafkaAuthOpts(c.Bool("tls"))
	if err != nil {
		return nil, err
	}
	opts = append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ClientID("claimx-connect-admin")}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating Kafka client for %s: %w", strings.Join(seeds, ","), err)
	}
	return cl, nil
}

// kafkaAuthOpts are the client options for TLS (system root CAs) and the
// SASL mechanism the environment names.
func kafkaAuthOpts(useTLS bool) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if useTLS {
		opts = append(opts, kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	user, pass := os.Getenv(envSASLUsername), os.Getenv(envSASLPassword)
	switch mech := strings.ToUpper(os.Getenv(envSASLMechanism)); mech {
	case "", "NONE":
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("%s=%q is not supported by admin commands (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)", envSASLMechanism, mech)
	}
	return opts, nil
}

// connectKafka builds the client from the Kafka flags and fails fast, with a
// readable error, when no broker answers.
func connectKafka(ctx context.Context, c *cli.Context) (*kgo.Client, error) {
	cl, err := kafkaClient(c)
	if err != nil {
		return nil, err
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("connecting to Kafka: %w", err)
	}
	return cl, nil
}
