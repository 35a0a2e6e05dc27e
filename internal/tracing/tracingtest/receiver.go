// Package tracingtest runs a real OTLP receiver for tests and benchmarks:
// the OpenTelemetry Collector's otlpreceiver component, built from its Go
// module by hack/setup-otlp-receiver.sh (cached), in a process of its own.
// Spans are read back from the JSON lines it writes.
package tracingtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/testenv"
)

// Receiver is a running otlp-receiver.
type Receiver struct {
	// Endpoint is its OTLP/HTTP base URL (spans go to Endpoint/v1/traces).
	Endpoint string
	cmd      *exec.Cmd
	out      string
}

// Binary returns the receiver's path: $OTLP_RECEIVER when set, else what
// hack/setup-otlp-receiver.sh under repoRoot prints (it builds the receiver
// on first use, a few minutes, and answers from the cache afterwards).
func Binary(repoRoot string) (string, error) {
	if v := os.Getenv("OTLP_RECEIVER"); v != "" {
		return v, nil
	}
	cmd := exec.Command(filepath.Join(repoRoot, "hack", "setup-otlp-receiver.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/setup-otlp-receiver.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Start starts the receiver binary on a free loopback port, writing into
// dir, recording the request headers named in headers with each export.
// Stop it with Stop.
func Start(binary, dir string, headers ...string) (*Receiver, error) {
	out := filepath.Join(dir, "spans.jsonl")
	args := []string{"-listen", "127.0.0.1:0", "-out", out}
	for _, h := range headers {
		args = append(args, "-header", h)
	}
	cmd := exec.Command(binary, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start otlp-receiver: %w", err)
	}
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			if addr, ok := strings.CutPrefix(s.Text(), "listening "); ok {
				line <- addr
			}
		}
	}()
	select {
	case addr := <-line:
		return &Receiver{Endpoint: "http://" + addr, cmd: cmd, out: out}, nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, errors.New("otlp-receiver did not start listening within 30s")
	}
}

// Stop ends the receiver.
func (r *Receiver) Stop() {
	_ = r.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
}

// Span is one received span, flattened.
type Span struct {
	TraceID, SpanID, ParentSpanID string
	Name                          string
	Kind                          int
	// Attributes are the span's attributes, values as strings.
	Attributes map[string]string
	// Resource are the attributes of the process that sent it.
	Resource map[string]string
	// StatusCode is OTLP's: 0 unset, 1 ok, 2 error.
	StatusCode int
}

// Export is one export the receiver got: its spans and the recorded headers.
type Export struct {
	Headers map[string][]string
	Spans   []Span
}

// Exports reads every export received so far.
func (r *Receiver) Exports() ([]Export, error) {
	b, err := os.ReadFile(r.out)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var exports []Export
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var l struct {
			Headers map[string][]string `json:"headers"`
			Traces  otlpTraces          `json:"traces"`
		}
		if err := json.Unmarshal(line, &l); err != nil {
			// The last line may be half written.
			continue
		}
		exports = append(exports, Export{Headers: l.Headers, Spans: l.Traces.flatten()})
	}
	return exports, nil
}

// Spans reads every span received so far.
func (r *Receiver) Spans() ([]Span, error) {
	exports, err := r.Exports()
	var spans []Span
	for _, e := range exports {
		spans = append(spans, e.Spans...)
	}
	return spans, err
}

// WaitForSpans polls until done says the spans received are enough, or the
// timeout passes; it returns the last spans read either way.
func (r *Receiver) WaitForSpans(timeout time.Duration, done func([]Span) bool) ([]Span, error) {
	deadline := time.Now().Add(timeout)
	for {
		spans, err := r.Spans()
		if err == nil && done(spans) {
			return spans, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("spans not complete after %s (%d received)", timeout, len(spans))
			}
			return spans, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// otlpTraces is the OTLP JSON encoding of an export request, as far as the
// tests read it.
type otlpTraces struct {
	ResourceSpans []struct {
		Resource struct {
			Attributes []otlpKeyValue `json:"attributes"`
		} `json:"resource"`
		ScopeSpans []struct {
			Spans []struct {
				TraceID      string         `json:"traceId"`
				SpanID       string         `json:"spanId"`
				ParentSpanID string         `json:"parentSpanId"`
				Name         string         `json:"name"`
				Kind         int            `json:"kind"`
				Attributes   []otlpKeyValue `json:"attributes"`
				Status       struct {
					Code int `json:"code"`
				} `json:"status"`
			} `json:"spans"`
		} `json:"scopeSpans"`
	} `json:"resourceSpans"`
}

type otlpKeyValue struct {
	Key   string                     `json:"key"`
	Value map[string]json.RawMessage `json:"value"`
}

func attributes(kvs []otlpKeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		for _, v := range kv.Value {
			var s string
			if json.Unmarshal(v, &s) != nil {
				s = string(v) // a bool or a double
			}
			m[kv.Key] = s
		}
	}
	return m
}

func (t otlpTraces) flatten() []Span {
	var spans []Span
	for _, rs := range t.ResourceSpans {
		res := attributes(rs.Resource.Attributes)
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				spans = append(spans, Span{
					TraceID: strings.ToLower(s.TraceID), SpanID: strings.ToLower(s.SpanID), ParentSpanID: strings.ToLower(s.ParentSpanID),
					Name: s.Name, Kind: s.Kind, Attributes: attributes(s.Attributes), Resource: res, StatusCode: s.Status.Code,
				})
			}
		}
	}
	return spans
}

// StartT builds the receiver on first use, starts it for the test in a
// temporary directory, recording the request headers named in headers, and
// stops it when the test ends.
func StartT(t testing.TB, headers ...string) *Receiver {
	t.Helper()
	root, err := testenv.ModuleRoot("")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := Binary(root)
	if err != nil {
		t.Fatalf("otlp receiver: %v", err)
	}
	recv, err := Start(bin, t.TempDir(), headers...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(recv.Stop)
	return recv
}
