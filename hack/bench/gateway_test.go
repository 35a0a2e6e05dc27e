package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/localstack"
)

// TestGatewayStartsAgainWhenItsPortIsTaken gives the first gateway start a
// traffic port another listener holds, as a parallel test's connection
// might take it between freeAddrs and the gateway's bind: the real gateway
// exits saying so, and startGateway starts it again on new ports.
func TestGatewayStartsAgainWhenItsPortIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	upstream := httptest.NewServer(http.NotFoundHandler())
	defer upstream.Close()
	calls := 0
	ctx, b, progress := gatewayBench(t, func(n int) ([]string, error) {
		calls++
		addrs, err := freeAddrs(n)
		if err == nil && calls == 1 {
			addrs[0] = taken.Addr().String()
		}
		return addrs, err
	})

	p, err := b.startGateway(ctx, "port-taken", upstream.URL, nil)
	if err != nil {
		t.Fatalf("startGateway: %v\nprogress:\n%s", err, progress.String())
	}
	defer p.stop()
	if calls != 2 {
		t.Errorf("addresses found %d times, want 2 (one retry)", calls)
	}
	if p.addr == taken.Addr().String() {
		t.Errorf("the gateway serves on the taken address %s", p.addr)
	}
	if !strings.Contains(progress.String(), "starting it again on other ports") || !strings.Contains(progress.String(), "address already in use") {
		t.Errorf("progress does not report the retry and its cause:\n%s", progress.String())
	}
}

// TestGatewayExitReportsItsLog: a gateway that exits for any other reason
// is not started again, and the error carries the end of its log.
func TestGatewayExitReportsItsLog(t *testing.T) {
	calls := 0
	// An address of no interface here (TEST-NET-1): the bind fails.
	ctx, b, _ := gatewayBench(t, func(n int) ([]string, error) {
		calls++
		addrs, err := freeAddrs(n)
		if err == nil {
			addrs[0] = "192.0.2.1:8080"
		}
		return addrs, err
	})

	_, err := b.startGateway(ctx, "no-such-address", "http://127.0.0.1:1/", nil)
	if err == nil {
		t.Fatal("startGateway succeeded listening on 192.0.2.1")
	}
	if calls != 1 {
		t.Errorf("started %d times, want once", calls)
	}
	if !strings.Contains(err.Error(), "exited during startup; its log ends:") || !strings.Contains(err.Error(), "cannot assign requested address") {
		t.Errorf("error does not carry the gateway's log: %v", err)
	}
}

// gatewayBench is a bench that starts real gateways, built from this
// checkout, on the addresses findAddrs gives; progress is its output.
func gatewayBench(t *testing.T, findAddrs func(n int) ([]string, error)) (context.Context, *bench, *bytes.Buffer) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds mcpgate")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	bins, err := localstack.Build(ctx, localstack.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	progress := &bytes.Buffer{}
	b := newBench(gatewayOptions{mcpgate: bins.Mcpgate, logDir: t.TempDir(), log: progress})
	b.findAddrs = findAddrs
	t.Cleanup(b.close)
	return ctx, b, progress
}
