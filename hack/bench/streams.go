package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// streamsResult is the streams test: many SSE streams held open at once
// through one gateway.
type streamsResult struct {
	Streams         int     `json:"streams"`
	EventsPerStream int     `json:"events_per_stream"`
	EventsSent      int64   `json:"events_sent"`
	EventsDelivered int64   `json:"events_delivered"`
	FailedStreams   int64   `json:"failed_streams"`
	IdleRSSMiB      float64 `json:"gateway_idle_rss_mib"`
	PeakRSSMiB      float64 `json:"gateway_peak_rss_mib"`
	RSSPerStreamKiB float64 `json:"gateway_rss_per_stream_kib"`
	Seconds         float64 `json:"seconds"`
}

// streamsOptions size the streams test.
type streamsOptions struct {
	streams  int
	events   int
	interval time.Duration
}

// runStreams opens every stream at once through a fresh gateway, with a JWT,
// and counts the events that arrive against those the upstream wrote.
func runStreams(ctx context.Context, gopts gatewayOptions, sopts streamsOptions) (streamsResult, error) {
	res := streamsResult{Streams: sopts.streams, EventsPerStream: sopts.events}
	b := newBench(gopts)
	defer b.close()
	up, err := startProcess(ctx, "stream upstream", nil, b.logFile("stream-upstream"), gopts.self, "serve", "upstream",
		"--stream-events", fmt.Sprint(sopts.events), "--stream-interval", sopts.interval.String())
	if err != nil {
		return res, err
	}
	defer up.stop()
	gw, err := b.startGateway(ctx, "streams", "http://"+up.addr+pathStream, nil)
	if err != nil {
		return res, err
	}
	defer gw.stop()
	idle, err := idleRSS(gw.pid())
	if err != nil {
		return res, err
	}
	res.IdleRSSMiB = mib(idle)
	if err := resetPeakRSS(gw.pid()); err != nil {
		return res, err
	}
	token, err := b.clerk.MintAccessToken(clerktest.TokenRequest{Scopes: []string{"profile"}, TTL: time.Hour, Format: clerktest.FormatJWT})
	if err != nil {
		return res, err
	}

	transport := &http.Transport{MaxIdleConnsPerHost: sopts.streams, DisableCompression: true}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	var delivered, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range sopts.streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := readStream(ctx, client, "http://"+gw.addr+"/mcp", token)
			delivered.Add(int64(n))
			if err != nil || n != sopts.events {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.EventsDelivered, res.FailedStreams = delivered.Load(), failed.Load()

	after, err := readProc(gw.pid())
	if err != nil {
		return res, err
	}
	res.PeakRSSMiB = mib(after.PeakRSS)
	res.RSSPerStreamKiB = float64(after.PeakRSS-idle) / 1024 / float64(sopts.streams)
	stats, err := statsOf(up)
	if err != nil {
		return res, fmt.Errorf("read upstream stats: %w", err)
	}
	res.EventsSent = stats["events_sent"]
	return res, nil
}

// readStream POSTs a tools/call whose answer is a long SSE stream and counts
// its events.
func readStream(ctx context.Context, client *http.Client, target, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader([]byte(toolCallBody)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data:") {
			n++
		}
	}
	return n, sc.Err()
}
