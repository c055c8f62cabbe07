package claimxsim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
)

// Command returns the `claimx-sim` CLI command: it serves the simulator until
// interrupted, and its `events` subcommand prints generated ClaimX events as
// JSON lines.
func Command() *cli.Command {
	return &cli.Command{
		Name:  "claimx-sim",
		Usage: "Run a ClaimX API simulator (seeded data, auth, rate limit, fault injection)",
		Description: `Serves GET /customTasks/assignment/{id}?full=true, GET /export/project/{id},
GET /export/project/{id}/media?mediaIds=1,2 and POST /oauth/token, with or without
the /service/cxedirest prefix. Admin endpoints: GET /_sim/stats, POST /_sim/reset,
GET|POST /_sim/faults (JSON: latency, error_rate, timeout_rate, outage, outage_for,
rate_limit), GET /_sim/assignments, GET /_sim/requests, GET /_sim/itel.
Media lists carry signed links to GET /media/{id}?exp=…&sig=… on this server (faults:
media_empty, media_oversize, media_error_rate, media_links_expired). The iTel Cabinet
API is POST /itel/v1/submissions (Idempotency-Key required) and
GET /itel/v1/submissions/{reference} (faults: itel_outage, itel_outage_for).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:8089", Usage: "listen address"},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "seed of the generated data"},
			&cli.IntFlag{Name: "assignments", Value: 200, Usage: "number of seeded assignments"},
			&cli.StringFlag{Name: "token", EnvVars: []string{"CLAIMX_SIM_TOKEN"}, Usage: "accepted bearer token (no auth when token, basic user and client id are empty)"},
			&cli.StringFlag{Name: "basic-user", Usage: "accepted HTTP Basic user name"},
			&cli.StringFlag{Name: "basic-password", EnvVars: []string{"CLAIMX_SIM_BASIC_PASSWORD"}, Usage: "accepted HTTP Basic password"},
			&cli.StringFlag{Name: "client-id", Usage: "accepted OAuth 2.0 client id (POST /oauth/token)"},
			&cli.StringFlag{Name: "client-secret", EnvVars: []string{"CLAIMX_SIM_CLIENT_SECRET"}, Usage: "accepted OAuth 2.0 client secret"},
			&cli.DurationFlag{Name: "token-ttl", Value: time.Hour, Usage: "lifetime of issued OAuth tokens"},
			&cli.Float64Flag{Name: "rate-limit", Usage: "allowed API requests per second, 0 for none; excess gets 429 with Retry-After"},
			&cli.DurationFlag{Name: "latency", Usage: "latency added to every API request"},
			&cli.Float64Flag{Name: "error-rate", Usage: "fraction (0-1) of API requests answered 500/503"},
			&cli.Float64Flag{Name: "timeout-rate", Usage: "fraction (0-1) of API requests that hang until the client gives up"},
			&cli.DurationFlag{Name: "outage", Usage: "fail every API request with 503 for this long after start"},
			&cli.DurationFlag{Name: "unauthorized", Usage: "answer 401 to every API request, whatever its credentials, for this long after start"},
			&cli.DurationFlag{Name: "listen-after", Usage: "refuse connections for this long after start, then listen"},
			&cli.DurationFlag{Name: "media-link-ttl", Value: defaultMediaLinkTTL, Usage: "how long a media fullDownloadLink stays valid"},
			&cli.Int64Flag{Name: "media-min-size", Value: defaultMediaMinSize, Usage: "smallest media file in bytes"},
			&cli.Int64Flag{Name: "media-max-size", Value: defaultMediaMaxSize, Usage: "largest media file in bytes (several MiB exercise streaming)"},
			&cli.StringFlag{Name: "itel-path", Value: DefaultITelPath, Usage: "path of the iTel Cabinet submissions endpoint"},
			&cli.StringFlag{Name: "itel-token", EnvVars: []string{"CLAIMX_SIM_ITEL_TOKEN"}, Usage: "bearer token the iTel endpoint accepts (no auth when empty)"},
		},
		Action: func(c *cli.Context) error {
			srv, err := New(Config{
				Seed:          c.Int64("seed"),
				Assignments:   c.Int("assignments"),
				Token:         c.String("token"),
				BasicUser:     c.String("basic-user"),
				BasicPassword: c.String("basic-password"),
				ClientID:      c.String("client-id"),
				ClientSecret:  c.String("client-secret"),
				TokenTTL:      c.Duration("token-ttl"),
				RateLimit:     c.Float64("rate-limit"),
				MediaLinkTTL:  c.Duration("media-link-ttl"),
				MediaMinSize:  c.Int64("media-min-size"),
				MediaMaxSize:  c.Int64("media-max-size"),
				ITelPath:      c.String("itel-path"),
				ITelToken:     c.String("itel-token"),
				Faults: Faults{
					Latency:         Duration(c.Duration("latency")),
					ErrorRate:       c.Float64("error-rate"),
					TimeoutRate:     c.Float64("timeout-rate"),
					OutageFor:       Duration(c.Duration("outage")),
					UnauthorizedFor: Duration(c.Duration("unauthorized")),
				},
			})
			if err != nil {
				return fmt.Errorf("configuring the claimx simulator: %w", err)
			}
			ctx, stop := signal.NotifyContext(contextOf(c), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if d := c.Duration("listen-after"); d > 0 {
				if err := srv.Reserve(c.String("addr")); err != nil {
					return err
				}
				fmt.Fprintf(c.App.ErrWriter, "claimx simulator: refusing connections on %s for %s\n", srv.Addr(), d)
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return nil
				}
				if err := srv.Resume(); err != nil {
					return err
				}
			} else if err := srv.Start(c.String("addr")); err != nil {
				return err
			}
			// Only whether a token is set is printed, never its value.
			itelAuth := "none"
			if c.String("itel-token") != "" {
				itelAuth = "bearer"
			}
			fmt.Fprintf(c.App.ErrWriter, "claimx simulator listening on %s (%d assignments, seed %d; media links valid %s; iTel at %s, auth %s)\n",
				srv.URL(), c.Int("assignments"), c.Int64("seed"), c.Duration("media-link-ttl"), srv.itelPath(), itelAuth)
			<-ctx.Done()
			return srv.Close()
		},
		Subcommands: []*cli.Command{eventsCommand()},
	}
}

func contextOf(c *cli.Context) context.Context {
	if c.Context != nil {
		return c.Context
	}
	return context.Background()
}

func eventsCommand() *cli.Command {
	return &cli.Command{
		Name:  "events",
		Usage: "Print generated ClaimX events (one JSON document per line) matching the simulator's seeded assignments",
		Flags: []cli.Flag{
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "seed of the simulator data (use the server's)"},
			&cli.IntFlag{Name: "assignments", Value: 200, Usage: "number of seeded assignments (use the server's)"},
			&cli.Int64Flag{Name: "event-seed", Value: 1, Usage: "seed of the event sequence"},
			&cli.IntFlag{Name: "count", Value: 100, Usage: "number of events"},
			&cli.Float64Flag{Name: "task-fraction", Value: 0.6, Usage: "share of CUSTOM_TASK_* events"},
			&cli.Float64Flag{Name: "unknown-fraction", Value: 0.05, Usage: "share of task events with an unknown assignment id"},
			&cli.Float64Flag{Name: "malformed-fraction", Value: 0.05, Usage: "share of malformed events"},
			&cli.Float64Flag{Name: "camel-fraction", Value: 0.3, Usage: "share of camelCase events"},
		},
		Action: func(c *cli.Context) error {
			srv, err := New(Config{Seed: c.Int64("seed"), Assignments: c.Int("assignments")})
			if err != nil {
				return fmt.Errorf("seeding simulator data for events: %w", err)
			}
			opts := EventOptions{
				Seed: c.Int64("event-seed"), Count: c.Int("count"), Assignments: srv.Assignments(),
				TaskEventFraction:         c.Float64("task-fraction"),
				UnknownAssignmentFraction: c.Float64("unknown-fraction"),
				MalformedFraction:         c.Float64("malformed-fraction"),
				CamelCaseFraction:         c.Float64("camel-fraction"),
			}
			return writeEvents(c.App.Writer, GenerateEvents(opts))
		},
	}
}

func writeEvents(w io.Writer, events []Event) error {
	bw := bufio.NewWriter(w)
	for i, ev := range events {
		if _, err := bw.Write(append(ev.Body, '\n')); err != nil {
			return fmt.Errorf("writing event %d (%s): %w", i, ev.EventID, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("flushing events: %w", err)
	}
	return nil
}
