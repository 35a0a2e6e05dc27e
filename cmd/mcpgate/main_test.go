package main

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	tests := map[string]struct {
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		"no command":      {args: nil, wantCode: 2, wantStderr: "Usage:"},
		"unknown command": {args: []string{"frobnicate"}, wantCode: 2, wantStderr: `unknown command "frobnicate"`},
		"version":         {args: []string{"version"}, wantCode: 0, wantStdout: "mcpgate dev"},
		"help":            {args: []string{"help"}, wantCode: 0, wantStdout: "manager"},
		"manager help":    {args: []string{"manager", "-h"}, wantCode: 0, wantStderr: "-gateway-image"},
		"manager bad url": {args: []string{"manager", "--clerk-api-url", "api.clerk.com"}, wantCode: 2, wantStderr: "not an absolute http(s) URL"},
		"manager extra":   {args: []string{"manager", "extra"}, wantCode: 2, wantStderr: "unexpected arguments"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %s)", code, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.wantStdout) || !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stdout %q, stderr %q; want %q and %q", stdout.String(), stderr.String(), tc.wantStdout, tc.wantStderr)
			}
		})
	}
}

func TestParseManagerFlags(t *testing.T) {
	t.Setenv("MCPGATE_GATEWAY_IMAGE", "registry.example/mcpgate:v1")
	t.Setenv("MCPGATE_CLERK_API_URL", "")
	f, err := parseManagerFlags([]string{"--leader-elect", "--metrics-bind-address=0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if f.gatewayImage != "registry.example/mcpgate:v1" || f.clerkAPIURL != defaultClerkAPIURL || !f.leaderElect || f.metricsAddr != "0" || f.probeAddr != ":8081" {
		t.Errorf("flags = %+v", f)
	}
	f, err = parseManagerFlags([]string{"--gateway-image=other:v2", "--clerk-api-url=http://127.0.0.1:9000/v1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if f.gatewayImage != "other:v2" || f.clerkAPIURL != "http://127.0.0.1:9000/v1" {
		t.Errorf("flags do not override the environment: %+v", f)
	}
}

func TestParseManagerListFlags(t *testing.T) {
	t.Setenv("MCPGATE_WATCH_NAMESPACES", "from-env")
	f, err := parseManagerFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.watchNamespaces, []string{"from-env"}) || f.gatewayPullSecrets != nil || f.gatewayPullPolicy != "" {
		t.Errorf("defaults = %+v", f)
	}
	f, err = parseManagerFlags([]string{"--watch-namespaces= team-a, team-b,", "--gateway-image-pull-secrets=ghcr,mirror", "--gateway-image-pull-policy=Always"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.watchNamespaces, []string{"team-a", "team-b"}) || !reflect.DeepEqual(f.gatewayPullSecrets, []string{"ghcr", "mirror"}) || f.gatewayPullPolicy != "Always" {
		t.Errorf("flags = %+v", f)
	}
	if f, err = parseManagerFlags([]string{"--watch-namespaces="}, io.Discard); err != nil || f.watchNamespaces != nil {
		t.Errorf("an empty --watch-namespaces must mean the whole cluster: %+v, %v", f.watchNamespaces, err)
	}

	refused := map[string][]string{
		"--watch-namespaces":           {"--watch-namespaces=Team_A"},
		"--gateway-image-pull-secrets": {"--gateway-image-pull-secrets=bad/name"},
		"--gateway-image-pull-policy":  {"--gateway-image-pull-policy=Sometimes"},
	}
	for flagName, args := range refused {
		if _, err := parseManagerFlags(args, io.Discard); err == nil || !strings.Contains(err.Error(), flagName) {
			t.Errorf("%v: error = %v, want one naming %s", args, err, flagName)
		}
	}
}
