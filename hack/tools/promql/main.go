// Command promql parses PromQL expressions with Prometheus' own parser and
// prints, for each, the metric names it selects. It reads a JSON array of
// {"id": ..., "expr": ...} on stdin and writes a JSON array of
// {"id": ..., "metrics": [...], "error": ...} on stdout, in the same order.
//
// It is a module of its own (hack/tools/promql) so that the Prometheus server
// module, and everything it requires, stays out of mcpgate's go.mod: the
// chart's dashboard and alert test (test/observability) builds it with
// hack/setup-promql.sh and runs it as a program.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "promql:", err)
		os.Exit(1)
	}
}

// run reads the expressions from in and writes their results to out. A
// parse error is a result (its "error" field), not a failure of run.
func run(in io.Reader, out io.Writer) error {
	var exprs []Expression
	if err := json.NewDecoder(in).Decode(&exprs); err != nil {
		return fmt.Errorf("read expressions: %w", err)
	}
	results := make([]Result, 0, len(exprs))
	for _, e := range exprs {
		results = append(results, Analyze(e))
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(results); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}
