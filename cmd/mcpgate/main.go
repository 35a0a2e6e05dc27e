// Command mcpgate is the mcpgate operator and its tools, one binary with subcommands.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/mcpgate/mcpgate/internal/cmdutil"
	"github.com/mcpgate/mcpgate/internal/version"
)

const usage = `mcpgate publishes MCP servers behind gateways that require Clerk OAuth tokens.

Usage:
  mcpgate <command> [flags]

Commands:
  manager   run the operator (controller manager)
  gateway   run the gateway of one McpServer (the data plane)
  broker    run the Clerk key broker (holds the secret keys gateways may not)
  version   print version information

Run 'mcpgate <command> -h' for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "manager":
		return runManager(args[1:], stderr)
	case "gateway":
		return runGateway(args[1:], stderr)
	case "broker":
		ctx, stop := cmdutil.SignalContext(nil)
		defer stop()
		return runBroker(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version.Get())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "mcpgate: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
