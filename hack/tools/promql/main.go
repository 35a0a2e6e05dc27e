// Command promql checks PromQL expressions with Prometheus' own code.
//
//	promql        reads a JSON array of {"id", "expr"} on stdin and writes,
//	              in the same order, what Prometheus' parser makes of each:
//	              {"id", "metrics", "selectors", "unnamed", "error"} (Result).
//	promql eval   reads {"scrapes", "queries", "time"} (EvalInput): loads the
//	              scrapes' text expositions into a TSDB and evaluates each
//	              query with Prometheus' engine, writing {"id", "series",
//	              "numbers", "error"} (EvalResult) for each.
//
// It is a module of its own (hack/tools/promql) so that the Prometheus server
// module, and everything it requires, stays out of mcpgate's go.mod: the
// chart's dashboard and alert test (test/observability) builds it with
// hack/setup-promql.sh and runs it as a program.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

func main() {
	runner := run
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "eval":
			runner = runEval
		default:
			fmt.Fprintf(os.Stderr, "promql: unknown command %q (none, or eval)\n", os.Args[1])
			os.Exit(2)
		}
	}
	if err := runner(os.Stdin, os.Stdout); err != nil {
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

// runEval reads an EvalInput from in and writes the results to out.
func runEval(in io.Reader, out io.Writer) error {
	var input EvalInput
	if err := json.NewDecoder(in).Decode(&input); err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	results, err := Evaluate(context.Background(), input)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(results); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}
