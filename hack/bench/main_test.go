package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the bench binary: the driver
// starts its servers as `<itself> serve ...`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		if err := runServe(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench serve:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestBenchSmoke runs the gateway table and the streams test at a size that
// takes seconds, so the driver cannot rot: every mode answers, the ratios
// and the cold-token and new-user counts are filled in, the access gateway
// filters the long tools/list, every streamed event arrives, the audit and
// tracing rows' vs jwt comes from ABBA blocks at the target concurrency,
// and both result files are written. The figures themselves are not judged.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds mcpgate and starts servers")
	}
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := run(ctx, []string{
		"-out", out, "-duration", "200ms", "-warmup", "50ms", "-rounds", "1", "-concurrency", "2",
		"-target-concurrency", "2", "-abba-blocks", "1", "-abba-duration", "100ms",
		"-upstreams", "trivial", "-pin=false",
		"-streams", "20", "-stream-events", "3", "-stream-interval", "20ms", "-skip-operator",
	}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	var r results
	data, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	// The audit mode's gateway wrote its stream, through stdout, to a file.
	audit := filepath.Join(out, "logs", "audit-trivial-json-audit.log")
	if data, err := os.ReadFile(audit); err != nil || !bytes.Contains(data, []byte(`"log":"audit"`)) {
		t.Errorf("no audit record in %s (%v)", audit, err)
	}
	if n := len(r.Gateway.Rows); n != 2*len(gatewayModes) {
		t.Fatalf("%d gateway rows, want %d (2 response types x %d modes)", n, 2*len(gatewayModes), len(gatewayModes))
	}
	for _, row := range r.Gateway.Rows {
		if row.RPS <= 0 || row.Errors != 0 || row.RatioDirect <= 0 || row.RatioBare <= 0 || row.P99 < row.P50 {
			t.Errorf("row %+v: want throughput, ratios, ordered percentiles and no errors", row)
		}
		if row.Mode != modeDirect && row.Mode != modeBare && row.RatioJWT <= 0 {
			t.Errorf("row %+v: the ratio to jwt is missing", row)
		}
		if row.Mode != modeDirect && row.CPUPer10k <= 0 && row.PeakRSSMiB <= 0 {
			t.Errorf("row %+v: the proxy's CPU and RSS are missing", row)
		}
		abba := row.Mode == modeAudit || row.Mode == modeTracing
		if abba && (row.JWTBlocks != 1 || row.RatioJWTQ1 <= 0 || row.RatioJWTQ1 > row.RatioJWT || row.RatioJWT > row.RatioJWTQ3) {
			t.Errorf("row %+v: want vs jwt from one ABBA block, within its quartiles", row)
		}
		if !abba && row.JWTBlocks != 0 {
			t.Errorf("row %+v: measured in ABBA blocks, which only audit and tracing are", row)
		}
	}
	if tl := r.Gateway.ToolsList; tl == nil || tl.ListedUnfiltered != listedTools || tl.ListedFiltered != listedTools-hiddenTools() || len(tl.Rows) != 3 {
		t.Errorf("tools_list = %+v, want %d tools unfiltered, %d filtered, and direct, jwt and access rows", tl, listedTools, listedTools-hiddenTools())
	}
	if s := r.Streams; s == nil || s.EventsSent != 60 || s.EventsDelivered != 60 || s.FailedStreams != 0 {
		t.Errorf("streams = %+v, want 60 events sent and delivered", r.Streams)
	}
	met := map[string]bool{}
	for _, tg := range r.Targets {
		met[tg.Name] = tg.Met
	}
	for _, tg := range r.Targets {
		if strings.HasPrefix(tg.Name, "tracing on at 1%") && !strings.Contains(tg.Measured, "median of 1 ABBA blocks") {
			t.Errorf("tracing target measured %q, want the ABBA blocks' median", tg.Measured)
		}
	}
	if !met["Backend API calls per cold opaque token"] {
		t.Errorf("a cold opaque token cost other than one Backend API call: %+v", r.Targets)
	}
	if !met["Backend API calls per new user (organization rule)"] {
		t.Errorf("a new user cost other than one memberships lookup: %+v", r.Targets)
	}
	if !met["Backend API calls per user and provider (user token)"] {
		t.Errorf("a connected user cost other than one token lookup: %+v", r.Targets)
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil || !bytes.Equal(md, stdout.Bytes()) || !bytes.Contains(md, []byte("| trivial | sse | 2 | opaque-cold |")) {
		t.Errorf("results.md (%v) is not the printed report, or lacks rows:\n%s", err, md)
	}
}
