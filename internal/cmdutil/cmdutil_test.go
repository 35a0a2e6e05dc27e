package cmdutil

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		args []string
		code int    // what UsageExit returns; -1: Parse succeeds
		says string // what UsageExit adds to stderr after the flag package's report
		// repeats is what UsageExitRepeat adds there instead
		repeats string
	}{
		"no arguments":   {nil, -1, "", ""},
		"a flag":         {[]string{"--name", "x"}, -1, "", ""},
		"help":           {[]string{"-h"}, 0, "", ""},
		"unknown flag":   {[]string{"--nope"}, 2, "", "cmd: flag provided but not defined: -nope\n"},
		"bad value":      {[]string{"--n", "many"}, 2, "", `cmd: invalid value "many" for flag -n: parse error` + "\n"},
		"positional arg": {[]string{"extra", "more"}, 2, "cmd: unexpected arguments: extra more\n", "cmd: unexpected arguments: extra more\n"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			fs := NewFlagSet("cmd", "Usage: cmd [flags]\n", &stderr)
			fs.String("name", "", "a name")
			fs.Int("n", 0, "a number")
			err := Parse(fs, tc.args)
			if tc.code < 0 {
				if err != nil {
					t.Fatalf("Parse(%q) = %v", tc.args, err)
				}
				return
			}
			reported := stderr.Len()
			if code := UsageExit(&stderr, "cmd", err); code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			if got := stderr.String()[reported:]; got != tc.says {
				t.Errorf("UsageExit wrote %q, want %q", got, tc.says)
			}
			reported = stderr.Len()
			if code := UsageExitRepeat(&stderr, "cmd", err); code != tc.code {
				t.Errorf("UsageExitRepeat: exit code %d, want %d", code, tc.code)
			}
			if got := stderr.String()[reported:]; got != tc.repeats {
				t.Errorf("UsageExitRepeat wrote %q, want %q", got, tc.repeats)
			}
		})
	}
}

func TestNewFlagSet_usage(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	fs := NewFlagSet("cmd", "Usage: cmd [flags]\n", &stderr)
	fs.String("listen", "", "address")
	_ = Parse(fs, []string{"-h"})
	if out := stderr.String(); !strings.HasPrefix(out, "Usage: cmd [flags]\n") || !strings.Contains(out, "-listen") {
		t.Errorf("-h printed %q, want the usage text, then the flags", out)
	}
}

func TestPrintLine(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := PrintLine(&out, struct {
		URL string `json:"url"`
	}{"http://127.0.0.1:1/mcp"}); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), `{"url":"http://127.0.0.1:1/mcp"}`+"\n"; got != want {
		t.Errorf("PrintLine wrote %q, want %q", got, want)
	}
}

// TestServe checks that a request that never ends on its own (an SSE
// stream) ends when ctx does, and that Serve then returns nil.
func TestServe(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	streaming := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		close(streaming)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, h, slog.New(slog.DiscardHandler), time.Hour) }()

	resp, err := http.Get("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-streaming
	cancel()
	// NOTE: with an hour's grace, Serve returns only because the stream ended.
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Logf("the stream ended with %v", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve = %v, want nil after a shutdown", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return after ctx ended")
	}
}
