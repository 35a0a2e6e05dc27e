// Command otlp-receiver is a real OTLP trace receiver for mcpgate's tests and
// benchmarks: the OpenTelemetry Collector's own otlpreceiver component (its
// HTTP server, its OTLP/HTTP protobuf and JSON decoding, its status codes),
// wired to a consumer that writes what it receives as OTLP JSON lines.
//
// It is not the whole collector distribution: otelcol's service, its
// config providers and exporters add some hundred modules and nothing a
// test asserts on. The receiver is the part that must be the real thing.
//
// Usage:
//
//	otlp-receiver -listen 127.0.0.1:4318 -out spans.jsonl [-header X-Api-Key]
//
// Each line of -out is one export: {"headers":{...},"traces":<OTLP JSON>},
// where headers holds the request headers named by -header (so a test can
// check that export headers arrived). It prints "listening ADDR" on stdout
// once it accepts connections, and stops on SIGINT or SIGTERM.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
)

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ",") }
func (h *headerList) Set(v string) error { *h = append(*h, strings.ToLower(v)); return nil }

func main() {
	listen := flag.String("listen", "127.0.0.1:4318", "OTLP/HTTP listen address (port 0 picks one)")
	out := flag.String("out", "", "file to append one JSON line per export to (required)")
	var headers headerList
	flag.Var(&headers, "header", "request header to record with each export (repeatable)")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "otlp-receiver: -out is required")
		os.Exit(2)
	}
	if err := run(*listen, *out, headers); err != nil {
		fmt.Fprintln(os.Stderr, "otlp-receiver:", err)
		os.Exit(1)
	}
}

func run(listen, outPath string, headers []string) error {
	// Port 0: find a free port first; the receiver takes an address, not
	// a listener.
	if strings.HasSuffix(listen, ":0") {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return err
		}
		listen = ln.Addr().String()
		_ = ln.Close()
	}
	f, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	sink := &sink{f: f, headers: headers}

	factory := otlpreceiver.NewFactory()
	cfg := factory.CreateDefaultConfig().(*otlpreceiver.Config)
	httpCfg := cfg.Protocols.HTTP.GetOrInsertDefault()
	httpCfg.ServerConfig.NetAddr.Endpoint = listen
	httpCfg.ServerConfig.IncludeMetadata = true
	cfg.Protocols.HTTP = configoptional.Some(*httpCfg)
	cfg.Protocols.GRPC = configoptional.None[configgrpc.ServerConfig]()

	next, err := consumer.NewTraces(sink.consume)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rcv, err := factory.CreateTraces(ctx, receivertest.NewNopSettings(factory.Type()), cfg, next)
	if err != nil {
		return fmt.Errorf("create receiver: %w", err)
	}
	if err := rcv.Start(ctx, componentHost{}); err != nil {
		return fmt.Errorf("start receiver: %w", err)
	}
	fmt.Println("listening", listen)
	<-ctx.Done()
	return rcv.Shutdown(context.Background())
}

// sink writes each export as one line.
type sink struct {
	mu      sync.Mutex
	f       *os.File
	headers []string
}

func (s *sink) consume(ctx context.Context, td ptrace.Traces) error {
	traces, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		return err
	}
	info := client.FromContext(ctx)
	got := map[string][]string{}
	for _, h := range s.headers {
		if v := info.Metadata.Get(h); len(v) > 0 {
			got[h] = v
		}
	}
	line, err := json.Marshal(struct {
		Headers map[string][]string `json:"headers"`
		Traces  json.RawMessage     `json:"traces"`
	}{got, traces})
	if err != nil {
		return err
	}
	line = append(bytes.TrimSpace(line), '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err = s.f.Write(line)
	return err
}

// componentHost is the host of a receiver that runs alone: no extensions.
type componentHost struct{}

func (componentHost) GetExtensions() map[component.ID]component.Component { return nil }
