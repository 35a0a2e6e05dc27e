// Package cmdutil is the scaffolding that the commands of hack/ share:
// flags that report errors rather than exit, the one JSON line that tells a
// caller where a command listens, and serving until SIGINT or SIGTERM with
// a graceful shutdown. Their exit codes follow one rule: 0 on success and
// after a signal, 1 when something fails, 2 on a usage error.
package cmdutil

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Run is a command's body; it returns the exit code. ctx ends on the first
// SIGINT or SIGTERM.
type Run func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// Main runs run with the process's arguments and standard streams and exits
// with the code it returns. onRepeat, if set, is called for each signal
// after the first (see SignalContext).
func Main(run Run, onRepeat func()) {
	ctx, stop := SignalContext(onRepeat)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// SignalContext returns a context that ends on the first SIGINT or SIGTERM.
// Later signals do not kill the process either, so that a command can stop
// what it started; onRepeat, if set, is called for each of them. stop
// releases the signals.
func SignalContext(onRepeat func()) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for first := true; ; first = false {
			select {
			case <-sigs:
				if first {
					cancel()
				} else if onRepeat != nil {
					onRepeat()
				}
			case <-done:
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// NewFlagSet returns a flag set that reports errors to stderr instead of
// exiting; usage, if set, is printed before the flags' defaults by -h.
func NewFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if usage != "" {
		fs.Usage = func() {
			fmt.Fprint(fs.Output(), usage)
			fs.PrintDefaults()
		}
	}
	return fs
}

// flagError is an error the flag package has already reported, with the
// usage.
type flagError struct{ err error }

func (e flagError) Error() string { return e.err.Error() }
func (e flagError) Unwrap() error { return e.err }

// Parse parses args and refuses positional arguments. It returns
// flag.ErrHelp for -h.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return err
	} else if err != nil {
		return flagError{err}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return nil
}

// UsageExit reports err, a usage error of the command name, and returns
// the exit code: 0 for -h, else 2. What the flag package reported already
// is not said again.
func UsageExit(stderr io.Writer, name string, err error) int {
	return usageExit(stderr, name, err, false)
}

// UsageExitRepeat is UsageExit for the commands that say `name: err` after
// the flag package's own report too (demo, mcp-client, mcpgate gateway and
// manager), so that their output stays as it has been.
func UsageExitRepeat(stderr io.Writer, name string, err error) int {
	return usageExit(stderr, name, err, true)
}

func usageExit(stderr io.Writer, name string, err error, repeat bool) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if repeat || !errors.As(err, new(flagError)) {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
	}
	return 2
}

// PrintLine writes v to w as one line of JSON: the line a command prints
// once it listens, which its callers (the demo, the tests) wait for.
func PrintLine(w io.Writer, v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode the start line: %w", err)
	}
	if _, err := fmt.Fprintf(w, "%s\n", line); err != nil {
		return fmt.Errorf("write the start line: %w", err)
	}
	return nil
}

// Serve serves h on ln until ctx ends or the server fails. When ctx ends,
// the contexts of open requests end at once (an SSE stream does not end on
// its own), and the server waits up to grace for the connections to close
// before it closes them. It returns nil after a shutdown, else why the
// server stopped.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger, grace time.Duration) error {
	base, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("Received signal, shutting down")
	cancelRequests()
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	// NOTE: Shutdown also waits for connections that never sent a request
	// (an HTTP client may dial one it then does not use) until they are 5s
	// old, so an early exit is not guaranteed; the grace bounds it.
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("Closed connections that were still open", "error", err)
		_ = srv.Close()
	}
	return nil
}

// StopWithin waits until ctx ends, then calls stop, waiting up to grace
// for it to return: what it leaves running ends with the process.
func StopWithin(ctx context.Context, logger *slog.Logger, grace time.Duration, stop func()) {
	<-ctx.Done()
	logger.Info("Received signal, shutting down")
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(grace):
		logger.Warn("Gave up waiting for requests to finish")
	}
}
