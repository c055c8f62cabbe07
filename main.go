// Command claimx-connect is a Redpanda Connect distribution for ClaimX event
// pipelines: benthos with its pure and io components, this project's Kafka,
// Delta Lake and ClaimX components, and its own subcommands.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime"

	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	"github.com/claimx/claimx-connect/claimxsim"
	"github.com/claimx/claimx-connect/cli"
	_ "github.com/claimx/claimx-connect/inputs"
	"github.com/claimx/claimx-connect/internal/hold"
	_ "github.com/claimx/claimx-connect/kafka"
	_ "github.com/claimx/claimx-connect/metrics"
	_ "github.com/claimx/claimx-connect/outputs"
	_ "github.com/claimx/claimx-connect/processors"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=... -X main.date=...".
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

func main() {
	code, err := service.RunCLIToCode(context.Background(),
		service.CLIOptSetBinaryName("claimx-connect"),
		service.CLIOptSetProductName("claimx-connect"),
		service.CLIOptSetVersion(fmt.Sprintf("%s (commit %s, %s)", version, commit, runtime.Version()), date),
		service.CLIOptAddCommand(cli.TopicsCommand()),
		service.CLIOptAddCommand(cli.BrokerCommand()),
		service.CLIOptAddCommand(cli.DeltaCommand()),
		service.CLIOptAddCommand(claimxsim.Command()),
		service.CLIOptAddCommand(cli.DevCommand()),
		service.CLIOptAddCommand(cli.ErrorsCommand()),
		// Replaces benthos's lint: runs it, then the checks across files.
		service.CLIOptAddCommand(cli.LintCommand()),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
	}
	// A stream that stopped because a hold outlasted its hold_timeout
	// exits non-zero even though its shutdown was graceful.
	os.Exit(hold.ExitCode(code))
}
