package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The requests a load run sends: a tools/call unless the spec says otherwise.
const (
	toolCallBody  = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}`
	toolsListBody = `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
)

// tokenSource hands out the bearer token of each request; nil sends none.
// ok=false means there are no more tokens, which ends the run early.
type tokenSource func(worker int) (token string, ok bool)

// loadSpec is one closed-loop run: concurrency workers, each sending its next
// request when the previous one is answered, first for warmup (not
// recorded), then for duration.
type loadSpec struct {
	target      string
	body        string // the request body; "" sends toolCallBody
	tokens      tokenSource
	concurrency int
	warmup      time.Duration
	duration    time.Duration
	// between runs after the warmup and before the measurement, for
	// resetting counters that should not include the warmup.
	between func()
}

// loadResult is what one run measured.
type loadResult struct {
	requests  int // answered correctly during the measurement
	errors    int // failed or wrong answers during the measurement
	sent      int // every request, warmup included
	elapsed   time.Duration
	latencies []time.Duration // sorted
	firstErr  error
}

func (r loadResult) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.requests) / r.elapsed.Seconds()
}

// percentile of the sorted latencies, in milliseconds.
func (r loadResult) percentile(p float64) float64 {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(p * float64(len(r.latencies)-1))
	return float64(r.latencies[i]) / float64(time.Millisecond)
}

// runLoad runs spec. Each request must come back 200 with a JSON-RPC result
// in its body; anything else counts as an error.
func runLoad(ctx context.Context, spec loadSpec) loadResult {
	transport := &http.Transport{MaxIdleConnsPerHost: spec.concurrency, DisableCompression: true}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	body := spec.body
	if body == "" {
		body = toolCallBody
	}

	var (
		recording atomic.Bool
		stop      atomic.Bool
		sent      atomic.Int64
		mu        sync.Mutex
		res       loadResult
	)
	worker := func(id int, wg *sync.WaitGroup) {
		defer wg.Done()
		lat := make([]time.Duration, 0, 4096)
		var okCount, errCount int
		var firstErr error
		for !stop.Load() && ctx.Err() == nil {
			token := ""
			if spec.tokens != nil {
				var ok bool
				if token, ok = spec.tokens(id); !ok {
					break
				}
			}
			rec := recording.Load()
			start := time.Now()
			_, err := callOnce(ctx, client, spec.target, body, token)
			took := time.Since(start)
			sent.Add(1)
			if !rec || !recording.Load() {
				continue // only requests wholly inside the measurement count
			}
			if err != nil {
				errCount++
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			okCount++
			lat = append(lat, took)
		}
		mu.Lock()
		defer mu.Unlock()
		res.requests += okCount
		res.errors += errCount
		res.latencies = append(res.latencies, lat...)
		if res.firstErr == nil {
			res.firstErr = firstErr
		}
	}

	var wg sync.WaitGroup
	for i := range spec.concurrency {
		wg.Add(1)
		go worker(i, &wg)
	}
	sleepCtx(ctx, spec.warmup)
	if spec.between != nil {
		spec.between()
	}
	start := time.Now()
	recording.Store(true)
	sleepCtx(ctx, spec.duration)
	recording.Store(false)
	res.elapsed = time.Since(start)
	stop.Store(true)
	wg.Wait()
	res.sent = int(sent.Load())
	slices.Sort(res.latencies)
	return res
}

// callOnce sends one request and checks the answer, which it returns.
func callOnce(ctx context.Context, client *http.Client, target, body, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(answer, []byte(`"result"`)) {
		return answer, fmt.Errorf("answer %d: %.200s", resp.StatusCode, answer)
	}
	return answer, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
