package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/gateway/identity"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

func TestRunGatewayRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	unsupported := filepath.Join(dir, "v9.json")
	if err := os.WriteFile(unsupported, []byte(`{"apiVersion":"gateway.mcpgate.dev/v9","kind":"GatewayConfig"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		args       []string
		wantCode   int
		wantStderr string
	}{
		"help":                 {args: []string{"gateway", "-h"}, wantCode: 0, wantStderr: "-resolve"},
		"no config":            {args: []string{"gateway"}, wantCode: 2, wantStderr: "--config is required"},
		"extra argument":       {args: []string{"gateway", "--config", unsupported, "now"}, wantCode: 2, wantStderr: "unexpected arguments"},
		"bad resolve":          {args: []string{"gateway", "--config", unsupported, "--resolve", "upstream:80"}, wantCode: 2, wantStderr: "is not host:port=address"},
		"resolve without port": {args: []string{"gateway", "--config", unsupported, "--resolve", "upstream:80=127.0.0.1"}, wantCode: 2, wantStderr: `"127.0.0.1" in`},
		"bad log level":        {args: []string{"gateway", "--config", unsupported, "--log-level", "loud"}, wantCode: 2, wantStderr: "log-level"},
		"zero body limit":      {args: []string{"gateway", "--config", unsupported, "--max-body-bytes", "0"}, wantCode: 2, wantStderr: "--max-body-bytes must be positive"},
		"negative delay":       {args: []string{"gateway", "--config", unsupported, "--shutdown-delay", "-1s"}, wantCode: 2, wantStderr: "--shutdown-delay must not be negative"},
		"missing file":         {args: []string{"gateway", "--config", filepath.Join(dir, "nope.json")}, wantCode: 1, wantStderr: "read config"},
		"unsupported version":  {args: []string{"gateway", "--config", unsupported}, wantCode: 1, wantStderr: `unsupported gateway config "gateway.mcpgate.dev/v9"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.wantCode {
				t.Errorf("exit code %d, want %d; stderr %s", code, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}

func TestParseGatewayFlags(t *testing.T) {
	t.Parallel()
	f, err := parseGatewayFlags([]string{"--config", "c.json"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if f.shutdownDelay != 5*time.Second || f.shutdownGrace != 20*time.Second || f.maxBodyBytes != 1<<20 || f.responseHeaderTimeout != 30*time.Second || len(f.resolve) != 0 || f.logLevel.String() != "INFO" {
		t.Errorf("defaults: %+v", f)
	}
	f, err = parseGatewayFlags([]string{"--config=c.json", "--shutdown-grace=3s", "--log-level=debug", "--max-body-bytes=2048",
		"--response-header-timeout=2m", "--resolve", "mcp.team-a.svc:8080=127.0.0.1:9000", "--resolve=[::1]:80=[::1]:8080"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if f.shutdownGrace != 3*time.Second || f.maxBodyBytes != 2048 || f.responseHeaderTimeout != 2*time.Minute || f.logLevel.String() != "DEBUG" ||
		f.resolve["mcp.team-a.svc:8080"] != "127.0.0.1:9000" || f.resolve["[::1]:80"] != "[::1]:8080" {
		t.Errorf("flags: %+v", f)
	}
}

// TestGatewayBinary builds mcpgate and runs `mcpgate gateway` as the
// Deployment does: against a Clerk emulator and an upstream, it proxies an
// authorized request, then exits 0 on SIGTERM; a configuration of an
// unknown version makes it exit non-zero with a clear message.
func TestGatewayBinary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := testenv.Binary(t, "./cmd/mcpgate")

	em := clerktest.NewServer()
	t.Cleanup(em.Close)
	var mu sync.Mutex
	var upstreamUser string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		upstreamUser = r.Header.Get(identity.UserHeader)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	}))
	t.Cleanup(upstream.Close)
	keyFile := filepath.Join(dir, "secret-key")
	if err := os.WriteFile(keyFile, []byte(em.SecretKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := config.Marshal(config.Config{
		Server:       config.ServerRef{Namespace: "team-a", Name: "tools"},
		Listen:       config.Listen{Traffic: "127.0.0.1:0", Health: "127.0.0.1:0"},
		Path:         "/mcp",
		ResourceName: "team-a/tools",
		Upstream:     config.Upstream{URL: upstream.URL + "/mcp"},
		Scopes:       []string{"profile"},
		Clerk:        config.Clerk{Issuer: em.FrontendAPIURL(), APIURL: em.BackendAPIURL(), SecretKeyFile: keyFile},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("serves, then drains on SIGTERM", func(t *testing.T) {
		cmd := exec.Command(bin, "gateway", "--config", cfgFile, "--shutdown-delay", "1s", "--shutdown-grace", "5s")
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		var logs bytes.Buffer
		var logsMu sync.Mutex
		serving := make(chan map[string]any, 1)
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				logsMu.Lock()
				logs.WriteString(sc.Text() + "\n")
				logsMu.Unlock()
				var line map[string]any
				if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "Serving" {
					serving <- line
				}
			}
		}()
		output := func() string {
			logsMu.Lock()
			defer logsMu.Unlock()
			return logs.String()
		}
		var addrs map[string]any
		select {
		case addrs = <-serving:
		case <-time.After(30 * time.Second):
			t.Fatalf("no Serving log line\n%s", output())
		}
		traffic, health := addrs["traffic"].(string), addrs["health"].(string)

		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get("http://" + health + "/readyz")
			if err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("never ready\n%s", output())
			}
			time.Sleep(50 * time.Millisecond)
		}

		tok, err := em.MintAccessToken(clerktest.TokenRequest{Scopes: []string{"profile"}})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, "http://"+traffic+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		mu.Lock()
		user := upstreamUser
		mu.Unlock()
		if resp.StatusCode != http.StatusOK || user != clerktest.DefaultUserID {
			t.Errorf("proxied request: %d, upstream saw user %q", resp.StatusCode, user)
		}

		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("exit after SIGTERM: %v\n%s", err, output())
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("no exit within 15s of SIGTERM\n%s", output())
		}
		logsNow := output()
		for _, want := range []string{`"msg":"Unready; serving until the delay is over"`, `"msg":"Draining"`, `"msg":"Stopped mcpgate gateway"`, `"msg":"Served request"`} {
			if !strings.Contains(logsNow, want) {
				t.Errorf("logs lack %s\n%s", want, logsNow)
			}
		}
		if strings.Contains(logsNow, tok) || strings.Contains(logsNow, em.SecretKey()) {
			t.Error("a credential is in the logs")
		}
	})

	t.Run("unknown apiVersion", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.json")
		if err := os.WriteFile(bad, bytes.Replace(data, []byte(config.APIVersion), []byte("gateway.mcpgate.dev/v2"), 1), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "gateway", "--config", bad).CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Fatalf("exit %v, want a non-zero exit", err)
		}
		if want := `unsupported gateway config "gateway.mcpgate.dev/v2"`; !strings.Contains(string(out), want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	})
}
