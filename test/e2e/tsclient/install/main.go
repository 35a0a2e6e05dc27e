// Command install installs the TypeScript SDK client of the end-to-end tests
// into the cache (see package tsclient) and prints its directory, for
// Makefiles and scripts:
//
//	node "$(go run ./test/e2e/tsclient/install)/client.mjs" --url http://127.0.0.1:8080/mcp [--sdk 2.4.0]
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/mcpgate/mcpgate/test/e2e/tsclient"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	dir, err := tsclient.Install(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(dir)
}
