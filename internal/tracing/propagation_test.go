package tracing_test

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgate/mcpgate/internal/tracing"
)

// TestSetTraceContext: what SetTraceContext writes is byte for byte what
// the OpenTelemetry TraceContext propagator's Inject writes, for sampled
// and unsampled contexts, with and without tracestate, and with flags
// other than sampled (which neither sends); it replaces what the header
// had, and writes nothing for an invalid context.
func TestSetTraceContext(t *testing.T) {
	t.Parallel()
	state, err := trace.ParseTraceState("vendor=a,other=b")
	if err != nil {
		t.Fatal(err)
	}
	tid := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	sid := trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
	tests := map[string]struct {
		sc   trace.SpanContextConfig
		want string // the traceparent; "" for none
	}{
		"sampled":   {trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"unsampled": {trace.SpanContextConfig{TraceID: tid, SpanID: sid}, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
		"tracestate and other flags": {
			trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: 0xff, TraceState: state},
			"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		},
		"all ones": {
			trace.SpanContextConfig{TraceID: trace.TraceID{15: 1}, SpanID: trace.SpanID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
			"00-00000000000000000000000000000001-ffffffffffffffff-00",
		},
		"invalid": {trace.SpanContextConfig{SpanID: sid}, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sc := trace.NewSpanContext(tc.sc)
			got := http.Header{"Traceparent": {"00-client-value"}, "Tracestate": {"client=1"}}
			want := got.Clone()
			tracing.SetTraceContext(got, sc)
			propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), propagation.HeaderCarrier(want))
			if tc.want != "" && got.Get("Traceparent") != tc.want {
				t.Errorf("traceparent = %q, want %q", got.Get("Traceparent"), tc.want)
			}
			for _, h := range []string{"Traceparent", "Tracestate"} {
				if g, w := got[h], want[h]; len(g) != len(w) || len(g) != 1 || g[0] != w[0] {
					t.Errorf("%s = %q, the propagator's Inject writes %q", h, g, w)
				}
			}
		})
	}
}

// TestHeaderCarrier: extracting through HeaderCarrier gives the span
// context propagation.HeaderCarrier gives, for valid, invalid and absent
// headers in any letter case of the request.
func TestHeaderCarrier(t *testing.T) {
	t.Parallel()
	prop := tracing.Propagator()
	for name, h := range map[string]http.Header{
		"none":             {},
		"sampled":          {"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
		"with tracestate":  {"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}, "Tracestate": {"a=1"}},
		"malformed":        {"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"}},
		"upper-case hex":   {"Traceparent": {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"}},
		"other header set": {"Baggage": {"k=v"}},
	} {
		got := trace.SpanContextFromContext(prop.Extract(context.Background(), tracing.HeaderCarrier(h)))
		want := trace.SpanContextFromContext(prop.Extract(context.Background(), propagation.HeaderCarrier(h)))
		if !got.Equal(want) {
			t.Errorf("%s: extracted %v, propagation.HeaderCarrier gives %v", name, got, want)
		}
	}
	c := tracing.HeaderCarrier(http.Header{})
	c.Set("traceparent", "x")
	c.Set("baggage", "y")
	if c.Get("traceparent") != "x" || http.Header(c).Get("Traceparent") != "x" || http.Header(c).Get("Baggage") != "y" || len(c.Keys()) != 2 {
		t.Errorf("Set and Get disagree with http.Header: %v", c)
	}
}

// TestPropagationAllocations holds the unsampled request's path to what
// it must allocate: nothing to find no trace context in a request, and the
// header's value and slice to pass one on.
func TestPropagationAllocations(t *testing.T) {
	prop := tracing.Propagator()
	empty := http.Header{"Content-Type": {"application/json"}}
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() { _ = prop.Extract(ctx, tracing.HeaderCarrier(empty)) }); n != 0 {
		t.Errorf("extracting from a request without trace context: %v allocations, want 0", n)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}})
	out := http.Header{}
	if n := testing.AllocsPerRun(100, func() { tracing.SetTraceContext(out, sc) }); n > 2 {
		t.Errorf("SetTraceContext: %v allocations, want at most 2", n)
	}
}
