//go:build cluster

package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Load while the cluster changes under a gateway: callers make steady
// tools/calls, streamers make progress calls whose responses come as SSE
// streams of notifications lasting streamSteps*streamStepDelay.
const (
	loadCallers     = 4
	loadStreamers   = 2
	loadCallPace    = 50 * time.Millisecond
	streamSteps     = 10
	streamStepDelay = 200 * time.Millisecond
	// loadErrorsKept bounds the failures a report quotes.
	loadErrorsKept = 5
	// clockMillis is how reports write a time: to the millisecond, so
	// failures can be set against the test's changes.
	clockMillis = "15:04:05.000"
)

// load runs the callers and streamers until finish.
type load struct {
	cancel context.CancelFunc
	ctx    context.Context
	wg     sync.WaitGroup

	answers *exchangeLog

	mu     sync.Mutex
	report loadReport
}

// loadReport is what a load saw.
type loadReport struct {
	Calls, FailedCalls     int
	Streams, FailedStreams int
	// LongestPause is the longest time a caller went between two
	// successful calls.
	LongestPause time.Duration
	Errors       []string
	// Answered5xx are the first 5xx answers, with who sent them.
	Answered5xx []string
	// Phases are what the test changed meanwhile, and when.
	Phases []string
}

func (r loadReport) String() string {
	return fmt.Sprintf("%d calls (%d failed), %d SSE streams (%d failed), longest pause between successful calls %v",
		r.Calls, r.FailedCalls, r.Streams, r.FailedStreams, r.LongestPause.Round(time.Millisecond))
}

// startLoad connects two sessions to url (one for the callers, one for the
// streamers, each through the full OAuth flow) and starts the load.
func startLoad(ctx context.Context, t *testing.T, url string) *load {
	t.Helper()
	client, answers := clusterHTTPClient(ctx, t)
	calls, streams := connect(ctx, t, client, url), connect(ctx, t, client, url)
	lctx, cancel := context.WithCancel(ctx)
	l := &load{ctx: lctx, cancel: cancel, answers: answers}
	t.Cleanup(cancel)
	for i := range loadCallers {
		l.wg.Add(1)
		go l.caller(calls, i)
	}
	for i := range loadStreamers {
		l.wg.Add(1)
		go l.streamer(streams, i)
	}
	return l
}

func (l *load) caller(cs *mcp.ClientSession, id int) {
	defer l.wg.Done()
	lastOK := time.Now()
	for n := 0; l.ctx.Err() == nil; n++ {
		text := fmt.Sprintf("caller %d call %d", id, n)
		res, err := cs.CallTool(l.ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": text}})
		if l.ctx.Err() != nil {
			return // stopped mid-call: not the gateway's doing
		}
		if err == nil && res.IsError {
			err = fmt.Errorf("error result %+v", res.Content)
		}
		now := time.Now()
		l.mu.Lock()
		l.report.Calls++
		if err != nil {
			l.report.FailedCalls++
			l.noteError(fmt.Sprintf("tools/call at %s: %v", now.Format(clockMillis), err))
		} else {
			l.report.LongestPause = max(l.report.LongestPause, now.Sub(lastOK))
			lastOK = now
		}
		l.mu.Unlock()
		select {
		case <-l.ctx.Done():
		case <-time.After(loadCallPace):
		}
	}
}

func (l *load) streamer(cs *mcp.ClientSession, id int) {
	defer l.wg.Done()
	for n := 0; l.ctx.Err() == nil; n++ {
		params := &mcp.CallToolParams{Name: "progress", Arguments: map[string]any{
			"steps": streamSteps, "delayMs": streamStepDelay.Milliseconds()}}
		params.SetProgressToken(fmt.Sprintf("streamer-%d-%d", id, n))
		res, err := cs.CallTool(l.ctx, params)
		if l.ctx.Err() != nil {
			return
		}
		if err == nil && res.IsError {
			err = fmt.Errorf("error result %+v", res.Content)
		}
		l.mu.Lock()
		l.report.Streams++
		if err != nil {
			l.report.FailedStreams++
			l.noteError(fmt.Sprintf("progress stream at %s: %v", time.Now().Format(clockMillis), err))
		}
		l.mu.Unlock()
		if err != nil {
			select { // no tight loop against a failing gateway
			case <-l.ctx.Done():
			case <-time.After(loadCallPace):
			}
		}
	}
}

// phase notes, with the time, a change the test made under the load, so
// failures can be placed against it.
func (l *load) phase(what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.report.Phases = append(l.report.Phases, time.Now().Format(clockMillis)+" "+what)
}

// noteError keeps the first few failures; l.mu is held.
func (l *load) noteError(msg string) {
	if len(l.report.Errors) < loadErrorsKept {
		l.report.Errors = append(l.report.Errors, msg)
	}
}

// finish stops the load and reports it.
func (l *load) finish() loadReport {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.report.Answered5xx = l.answers.answered5xx()
	return l.report
}

// checkLoad fails the test when a call or stream failed or nothing ran, and
// logs the report either way.
func checkLoad(t *testing.T, what string, r loadReport) {
	t.Helper()
	t.Logf("%s: %s", what, r)
	if r.Calls == 0 || r.Streams == 0 {
		t.Errorf("%s: the load made %d calls and %d streams; it never ran", what, r.Calls, r.Streams)
	}
	if r.FailedCalls > 0 || r.FailedStreams > 0 {
		t.Errorf("%s: %d calls and %d streams failed; first failures:\n%v\nfirst 5xx answers:\n%s\nphases:\n%s", what,
			r.FailedCalls, r.FailedStreams, r.Errors, strings.Join(r.Answered5xx, "\n"), strings.Join(r.Phases, "\n"))
	}
}
