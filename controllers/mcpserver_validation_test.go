package controllers

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
)

// validManifest is a complete, valid McpServer; each case edits a copy.
const validManifest = `
apiVersion: mcpgate.dev/v1alpha1
kind: McpServer
metadata:
  name: valid
spec:
  upstream:
    service: {name: upstream, port: 8080}
  scopes: [profile, email]
  toolScopes:
    - {tool: delete_repo, scopes: ["repo:admin"]}
  clerk:
    publishableKey: pk_test_aGFwcHktb3R0ZXItMTIuY2xlcmsuYWNjb3VudHMuZGV2JA
    secretKeyRef: {name: clerk, key: secret-key}
  ingress:
    host: tools.example.com
  gateway:
    replicas: 2
`

func manifest(t *testing.T, ns string, edit func(obj map[string]any)) *unstructured.Unstructured {
	t.Helper()
	obj := map[string]any{}
	if err := yaml.Unmarshal([]byte(validManifest), &obj); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(obj)
	}
	u := &unstructured.Unstructured{Object: obj}
	u.SetNamespace(ns)
	return u
}

// set writes value at a dotted path of maps, creating maps on the way;
// a nil value deletes the field.
func set(path string, value any) func(map[string]any) {
	return func(obj map[string]any) {
		keys := strings.Split(path, ".")
		m := obj
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		if value == nil {
			delete(m, keys[len(keys)-1])
			return
		}
		m[keys[len(keys)-1]] = value
	}
}

// allow sets spec.access.allow to the given entries.
func allow(entries ...map[string]any) func(map[string]any) {
	list := make([]any, 0, len(entries))
	for _, e := range entries {
		list = append(list, e)
	}
	return set("spec.access", map[string]any{"allow": list})
}

// accessTTL sets spec.access to one organization rule and cacheTTL.
func accessTTL(ttl string) func(map[string]any) {
	return set("spec.access", map[string]any{"allow": []any{map[string]any{"organization": "acme"}}, "cacheTTL": ttl})
}

// repeat is a list of n copies of v.
func repeat(n int, v any) []any {
	list := make([]any, n)
	for i := range list {
		list[i] = v
	}
	return list
}

// credentials sets spec.upstream.credentials to headers (name: secret name)
// and, when token is not nil, userOAuthToken.
func credentials(token map[string]any, names ...string) func(map[string]any) {
	c := map[string]any{}
	if len(names) > 0 {
		headers := make([]any, 0, len(names))
		for _, n := range names {
			headers = append(headers, map[string]any{"name": n, "secretKeyRef": map[string]any{"name": "upstream", "key": "token"}})
		}
		c["headers"] = headers
	}
	if token != nil {
		c["userOAuthToken"] = token
	}
	return set("spec.upstream.credentials", c)
}

// onURL moves the upstream to url, keeping the rest of edit.
func onURL(url string, edit func(map[string]any)) func(map[string]any) {
	return func(o map[string]any) {
		set("spec.upstream.service", nil)(o)
		set("spec.upstream.url", url)(o)
		edit(o)
	}
}

// assertRefused creates obj and expects the API server to refuse it with an
// error that names field and says text.
func assertRefused(t *testing.T, tc *testCluster, obj *unstructured.Unstructured, field, text string) {
	t.Helper()
	err := tc.client.Create(context.Background(), obj)
	if err == nil {
		_ = tc.client.Delete(context.Background(), obj)
		t.Fatalf("the API server accepted the object; want it refused naming %s", field)
	}
	msg := err.Error()
	if !strings.Contains(msg, field+":") && !strings.Contains(msg, field+" ") {
		t.Errorf("error does not name %s: %s", field, msg)
	}
	if !strings.Contains(msg, text) {
		t.Errorf("error does not say %q: %s", text, msg)
	}
}

func TestMcpServerValidation_refused(t *testing.T) {
	t.Parallel()
	tc := envCluster(t)
	ns := tc.newNamespace(t)
	tests := map[string]struct {
		edit      func(map[string]any)
		wantField string // the field the API server must name
		wantText  string // part of the message
	}{
		"both service and url":    {set("spec.upstream.url", "https://mcp.example.com"), "spec.upstream", "exactly one of upstream.service or upstream.url"},
		"neither service nor url": {set("spec.upstream.service", nil), "spec.upstream", "exactly one of upstream.service or upstream.url"},
		"url not http": {func(o map[string]any) {
			set("spec.upstream.service", nil)(o)
			set("spec.upstream.url", "ftp://mcp.example.com")(o)
		}, "spec.upstream.url", "absolute http or https URL"},
		"url with a path": {func(o map[string]any) {
			set("spec.upstream.service", nil)(o)
			set("spec.upstream.url", "https://mcp.example.com/mcp")(o)
		}, "spec.upstream.url", "put the endpoint path in upstream.path"},
		"url with a query": {func(o map[string]any) {
			set("spec.upstream.service", nil)(o)
			set("spec.upstream.url", "https://mcp.example.com/?x=1")(o)
		}, "spec.upstream.url", "no path, query"},
		"isolation on a url upstream": {func(o map[string]any) {
			set("spec.upstream.service", nil)(o)
			set("spec.upstream.url", "https://mcp.example.com")(o)
			set("spec.upstream.isolation", map[string]any{"gatewayEgress": true})(o)
		}, "spec.upstream", "isolation applies to service upstreams"},
		"autoscaling, resources without a CPU request": {func(o map[string]any) {
			set("spec.gateway.resources", map[string]any{"requests": map[string]any{"memory": "64Mi"}})(o)
			set("spec.gateway.autoscaling", map[string]any{"maxReplicas": 3})(o)
		}, "spec.gateway", "needs resources.requests.cpu"},
		"autoscaling min above max": {func(o map[string]any) {
			set("spec.gateway.resources", map[string]any{"requests": map[string]any{"cpu": "50m"}})(o)
			set("spec.gateway.autoscaling", map[string]any{"minReplicas": 5, "maxReplicas": 3})(o)
		}, "spec.gateway.autoscaling", "minReplicas must not exceed maxReplicas"},
		"both ingress and httpRoute": {func(o map[string]any) {
			set("spec.ingress", map[string]any{"host": "tools.example.com"})(o)
			set("spec.httpRoute", map[string]any{"parentRefs": []any{map[string]any{"name": "public"}}, "hostnames": []any{"tools.example.com"}})(o)
		}, "spec", "set spec.ingress or spec.httpRoute, not both"},
		"httpRoute without parents":  {set("spec.httpRoute", map[string]any{"parentRefs": []any{}, "hostnames": []any{"tools.example.com"}}), "spec.httpRoute.parentRefs", "should have at least 1 items"},
		"port zero":                  {set("spec.upstream.service.port", 0), "spec.upstream.service.port", "port number from 1 to 65535"},
		"port too high":              {set("spec.upstream.service.port", 70000), "spec.upstream.service.port", "port number from 1 to 65535"},
		"port name with spaces":      {set("spec.upstream.service.port", "my port"), "spec.upstream.service.port", "port name"},
		"service name invalid":       {set("spec.upstream.service.name", "Upstream_1"), "spec.upstream.service.name", "must be a Service name"},
		"path without slash":         {set("spec.path", "mcp"), "spec.path", "must start with '/'"},
		"path with dot-dot":          {set("spec.path", "/a/../b"), "spec.path", "must not contain '..'"},
		"path with a query":          {set("spec.path", "/mcp?x=1"), "spec.path", "query or fragment"},
		"upstream path trailing /":   {set("spec.upstream.path", "/mcp/"), "spec.upstream.path", "trailing '/'"},
		"scope with a space":         {set("spec.scopes", []any{"read write"}), "spec.scopes[0]", "without spaces"},
		"empty scope":                {set("spec.scopes", []any{""}), "spec.scopes[0]", ""},
		"duplicate scope":            {set("spec.scopes", []any{"email", "email"}), "spec.scopes[1]", "Duplicate value"},
		"duplicate tool":             {set("spec.toolScopes", []any{map[string]any{"tool": "a", "scopes": []any{"x"}}, map[string]any{"tool": "a", "scopes": []any{"y"}}}), "spec.toolScopes[1]", "Duplicate value"},
		"tool scope with a space":    {set("spec.toolScopes", []any{map[string]any{"tool": "a", "scopes": []any{"x y"}}}), "spec.toolScopes[0].scopes[0]", "without spaces"},
		"tool without scopes":        {set("spec.toolScopes", []any{map[string]any{"tool": "a", "scopes": []any{}}}), "spec.toolScopes[0].scopes", ""},
		"empty tool name":            {set("spec.toolScopes", []any{map[string]any{"tool": "", "scopes": []any{"x"}}}), "spec.toolScopes[0].tool", ""},
		"unknown toolScopeChallenge": {set("spec.toolScopeChallenge", "Always"), "spec.toolScopeChallenge", `Unsupported value: "Always"`},
		"toolScopeChallenge AtSignIn without toolScopes": {func(o map[string]any) {
			set("spec.toolScopes", nil)(o)
			set("spec.toolScopeChallenge", "AtSignIn")(o)
		}, "spec.toolScopeChallenge", "toolScopeChallenge AtSignIn asks for the toolScopes at sign-in, and there are none"},
		"toolScopeChallenge AtSignIn with empty toolScopes": {func(o map[string]any) {
			set("spec.toolScopes", []any{})(o)
			set("spec.toolScopeChallenge", "AtSignIn")(o)
		}, "spec.toolScopeChallenge", "add toolScopes or set StepUp"},
		"key and issuer":            {set("spec.clerk.issuer", "https://clerk.example.com"), "spec.clerk", "exactly one of clerk.publishableKey or clerk.issuer"},
		"neither key nor issuer":    {set("spec.clerk.publishableKey", nil), "spec.clerk", "exactly one of clerk.publishableKey or clerk.issuer"},
		"secret key as publishable": {set("spec.clerk.publishableKey", "sk_test_abc"), "spec.clerk.publishableKey", "pk_test_... or pk_live_..."},
		"http issuer, public host": {func(o map[string]any) {
			set("spec.clerk.publishableKey", nil)(o)
			set("spec.clerk.issuer", "http://clerk.example.com")(o)
		}, "spec.clerk.issuer", "must use https"},
		"issuer with trailing slash": {func(o map[string]any) {
			set("spec.clerk.publishableKey", nil)(o)
			set("spec.clerk.issuer", "https://clerk.example.com/")(o)
		}, "spec.clerk.issuer", "must not end with '/'"},
		"issuer not a URL": {func(o map[string]any) {
			set("spec.clerk.publishableKey", nil)(o)
			set("spec.clerk.issuer", "clerk.example.com")(o)
		}, "spec.clerk.issuer", "absolute https URL"},
		"no secretKeyRef":                  {set("spec.clerk.secretKeyRef", nil), "spec.clerk.secretKeyRef", "Required value"},
		"instanceRef beside inline fields": {set("spec.clerk.instanceRef", map[string]any{"name": "main"}), "spec.clerk.instanceRef", "not both"},
		"instanceRef of an unknown kind": {set("spec.clerk", map[string]any{"instanceRef": map[string]any{"kind": "Issuer", "name": "main"}}),
			"spec.clerk.instanceRef.kind", "Unsupported value"},
		"instanceRef without a name": {set("spec.clerk", map[string]any{"instanceRef": map[string]any{"kind": "ClusterClerkInstance"}}),
			"spec.clerk.instanceRef.name", "Required value"},
		"instanceRef with a bad name": {set("spec.clerk", map[string]any{"instanceRef": map[string]any{"name": "Main_1"}}),
			"spec.clerk.instanceRef.name", "lowercase DNS subdomain"},
		"instanceRef beside a setting": {func(o map[string]any) {
			set("spec.clerk", map[string]any{"instanceRef": map[string]any{"name": "main"}, "jwtAccessTokens": true})(o)
		}, "spec.clerk.instanceRef", "not both"},
		"secretKeyRef without key":          {set("spec.clerk.secretKeyRef.key", nil), "spec.clerk.secretKeyRef.key", "Required value"},
		"ingress host not DNS":              {set("spec.ingress.host", "Tools_Example.com"), "spec.ingress.host", "lowercase DNS name"},
		"ingress host with a port":          {set("spec.ingress.host", "tools.example.com:443"), "spec.ingress.host", "lowercase DNS name"},
		"origin with a path":                {set("spec.gateway.allowedOrigins", []any{"https://app.example.com/x"}), "spec.gateway.allowedOrigins[0]", "must be an origin"},
		"too many replicas":                 {set("spec.gateway.replicas", 101), "spec.gateway.replicas", "less than or equal to 100"},
		"negative replicas":                 {set("spec.gateway.replicas", -1), "spec.gateway.replicas", "greater than or equal to 0"},
		"access without rules":              {set("spec.access", map[string]any{"cacheTTL": "30s"}), "spec.access", "needs access.allow or access.toolAccess"},
		"access with an empty allow":        {set("spec.access", map[string]any{"allow": []any{}}), "spec.access.allow", "at least 1 item"},
		"empty access entry":                {allow(map[string]any{}), "spec.access.allow[0]", "must set one of organization, emailDomain or user"},
		"two kinds in one entry":            {allow(map[string]any{"organization": "acme", "user": "user_2abc"}), "spec.access.allow[0]", "sets only one of organization, emailDomain or user"},
		"roles without organization":        {allow(map[string]any{"emailDomain": "example.com", "roles": []any{"org:admin"}}), "spec.access.allow[0].roles", "roles apply only to an organization entry"},
		"permissions on a user entry":       {allow(map[string]any{"user": "user_2abc", "permissions": []any{"org:tools:write"}}), "spec.access.allow[0].permissions", "permissions apply only to an organization entry"},
		"malformed organization ID":         {allow(map[string]any{"organization": "org_2ab-c"}), "spec.access.allow[0].organization", "must be an organization ID"},
		"organization slug with upper case": {allow(map[string]any{"organization": "Acme"}), "spec.access.allow[0].organization", "must be an organization slug"},
		"organization slug with a space":    {allow(map[string]any{"organization": "acme corp"}), "spec.access.allow[0].organization", "must be an organization slug"},
		"malformed user ID":                 {allow(map[string]any{"user": "usr_2abc"}), "spec.access.allow[0].user", "must be a Clerk user ID"},
		"user ID with a dash":               {allow(map[string]any{"user": "user_2ab-c"}), "spec.access.allow[0].user", "must be a Clerk user ID"},
		"wildcard email domain":             {allow(map[string]any{"emailDomain": "*.example.com"}), "spec.access.allow[0].emailDomain", "must be an email domain"},
		"email address as a domain":         {allow(map[string]any{"emailDomain": "ops@example.com"}), "spec.access.allow[0].emailDomain", "must be an email domain"},
		"single-label email domain":         {allow(map[string]any{"emailDomain": "localhost"}), "spec.access.allow[0].emailDomain", "must be an email domain"},
		"email domain with a trailing dot":  {allow(map[string]any{"emailDomain": "example.com."}), "spec.access.allow[0].emailDomain", "must be an email domain"},
		"empty role":                        {allow(map[string]any{"organization": "acme", "roles": []any{""}}), "spec.access.allow[0].roles[0]", "should be at least 1 chars long"},
		"role without org: prefix":          {allow(map[string]any{"organization": "acme", "roles": []any{"admin"}}), "spec.access.allow[0].roles[0]", "must be an organization role key"},
		"empty roles list":                  {allow(map[string]any{"organization": "acme", "roles": []any{}}), "spec.access.allow[0].roles", "at least 1 item"},
		"duplicate role":                    {allow(map[string]any{"organization": "acme", "roles": []any{"org:admin", "org:admin"}}), "spec.access.allow[0].roles[1]", "Duplicate value"},
		"permission without an action":      {allow(map[string]any{"organization": "acme", "permissions": []any{"org:tools"}}), "spec.access.allow[0].permissions[0]", "must be an organization permission key"},
		"too many allow entries": {set("spec.access", map[string]any{"allow": repeat(33, map[string]any{"user": "user_1"})}),
			"spec.access.allow", "must have at most 32 items"},
		"duplicate toolAccess tool": {set("spec.access", map[string]any{"toolAccess": []any{
			map[string]any{"tool": "deploy", "allow": []any{map[string]any{"user": "user_1"}}},
			map[string]any{"tool": "deploy", "allow": []any{map[string]any{"user": "user_2"}}},
		}}), "spec.access.toolAccess[1]", "Duplicate value"},
		"toolAccess tool with a space": {set("spec.access", map[string]any{"toolAccess": []any{
			map[string]any{"tool": "delete repo", "allow": []any{map[string]any{"user": "user_1"}}},
		}}), "spec.access.toolAccess[0].tool", "must be a tool name without spaces"},
		"toolAccess without allow": {set("spec.access", map[string]any{"toolAccess": []any{map[string]any{"tool": "deploy"}}}),
			"spec.access.toolAccess[0].allow", "Required value"},
		"toolAccess entry of two kinds": {set("spec.access", map[string]any{"toolAccess": []any{
			map[string]any{"tool": "deploy", "allow": []any{map[string]any{"emailDomain": "example.com", "user": "user_1"}}},
		}}), "spec.access.toolAccess[0].allow[0]", "sets only one of organization, emailDomain or user"},
		"cacheTTL below 5s":                             {accessTTL("4s"), "spec.access.cacheTTL", "must be from 5s to 1h"},
		"cacheTTL above 1h":                             {accessTTL("61m"), "spec.access.cacheTTL", "must be from 5s to 1h"},
		"cacheTTL without units":                        {accessTTL("60"), "spec.access.cacheTTL", "must be a duration such as 60s"},
		"empty credentials":                             {set("spec.upstream.credentials", map[string]any{}), "spec.upstream.credentials", "credentials need headers or userOAuthToken"},
		"credential header not a token":                 {credentials(nil, "X Api Key"), "spec.upstream.credentials.headers[0].name", "must be an HTTP header name"},
		"credential header with a colon":                {credentials(nil, "X-Api-Key:"), "spec.upstream.credentials.headers[0].name", "must be an HTTP header name"},
		"credential header Host":                        {credentials(nil, "host"), "spec.upstream.credentials.headers[0].name", "the proxy or HTTP itself sets"},
		"credential header Content-Length, '_' for '-'": {credentials(nil, "Content_Length"), "spec.upstream.credentials.headers[0].name", "the proxy or HTTP itself sets"},
		"credential header Transfer-Encoding":           {credentials(nil, "TRANSFER-ENCODING"), "spec.upstream.credentials.headers[0].name", "the proxy or HTTP itself sets"},
		"credential header Connection":                  {credentials(nil, "Connection"), "spec.upstream.credentials.headers[0].name", "the proxy or HTTP itself sets"},
		"credential header Keep-Alive":                  {credentials(nil, "keep-alive"), "spec.upstream.credentials.headers[0].name", "the proxy or HTTP itself sets"},
		"credential header TE":                          {credentials(nil, "Te"), "spec.upstream.credentials.headers[0].name", "the proxy or HTTP itself sets"},
		"credential header Trailer":                     {credentials(nil, "Trailer"), "spec.upstream.credentials.headers[0].name", "the proxy or HTTP itself sets"},
		"credential header Upgrade":                     {credentials(nil, "Upgrade"), "spec.upstream.credentials.headers[0].name", "the proxy or HTTP itself sets"},
		"credential header Cookie":                      {credentials(nil, "Cookie"), "spec.upstream.credentials.headers[0].name", "the proxy or HTTP itself sets"},
		"credential header Proxy-Authorization":         {credentials(nil, "Proxy-Authorization"), "spec.upstream.credentials.headers[0].name", "Proxy-*, X-Forwarded-*"},
		"credential header X-Forwarded-Host":            {credentials(nil, "x_forwarded_host"), "spec.upstream.credentials.headers[0].name", "Proxy-*, X-Forwarded-*"},
		"credential header X-Mcpgate-User-Id":           {credentials(nil, "x-mcpgate-user-id"), "spec.upstream.credentials.headers[0].name", "X-Mcpgate-* are the gateway's identity headers"},
		"credential header X-Mcpgate-* of the future":   {credentials(nil, "X_MCPGATE_TENANT"), "spec.upstream.credentials.headers[0].name", "X-Mcpgate-* are the gateway's identity headers"},
		"credential header Mcp-Session-Id":              {credentials(nil, "Mcp-Session-Id"), "spec.upstream.credentials.headers[0].name", "Mcp-* belong to the MCP transport"},
		"credential headers differing in case": {credentials(nil, "X-Api-Key", "x-api-key"), "spec.upstream.credentials.headers",
			"each header appears once"},
		"credential headers differing in '_'": {credentials(nil, "X-Api-Key", "X_Api_Key"), "spec.upstream.credentials.headers", "each header appears once"},
		"credential header repeated":          {credentials(nil, "X-Api-Key", "X-Api-Key"), "spec.upstream.credentials.headers[1]", "Duplicate value"},
		"user token header also in headers": {credentials(map[string]any{"provider": "oauth_github"}, "authorization"),
			"spec.upstream.credentials.userOAuthToken.header", "userOAuthToken.header is also in headers"},
		"user token own header also in headers": {credentials(map[string]any{"provider": "oauth_github", "header": "X_Token"}, "X-Token"),
			"spec.upstream.credentials.userOAuthToken.header", "userOAuthToken.header is also in headers"},
		"user token header Host": {credentials(map[string]any{"provider": "oauth_github", "header": "Host"}),
			"spec.upstream.credentials.userOAuthToken.header", "the proxy or HTTP itself sets"},
		"user token provider without oauth_": {credentials(map[string]any{"provider": "github"}),
			"spec.upstream.credentials.userOAuthToken.provider", "must be a Clerk OAuth provider"},
		"user token provider with upper case": {credentials(map[string]any{"provider": "oauth_GitHub"}),
			"spec.upstream.credentials.userOAuthToken.provider", "must be a Clerk OAuth provider"},
		"user token provider with a dash": {credentials(map[string]any{"provider": "oauth_custom_acme-corp"}),
			"spec.upstream.credentials.userOAuthToken.provider", "must be a Clerk OAuth provider"},
		"user token provider with a slash": {credentials(map[string]any{"provider": "oauth_github/../x"}),
			"spec.upstream.credentials.userOAuthToken.provider", "must be a Clerk OAuth provider"},
		"user token without provider": {credentials(map[string]any{"header": "Authorization"}),
			"spec.upstream.credentials.userOAuthToken.provider", "Required value"},
		"connectURL over http": {credentials(map[string]any{"provider": "oauth_github", "connectURL": "http://app.example.com/connect"}),
			"spec.upstream.credentials.userOAuthToken.connectURL", "must be an absolute https URL"},
		"connectURL relative": {credentials(map[string]any{"provider": "oauth_github", "connectURL": "/connect"}),
			"spec.upstream.credentials.userOAuthToken.connectURL", "must be an absolute https URL"},
		"connectURL with user info": {credentials(map[string]any{"provider": "oauth_github", "connectURL": "https://user:pw@app.example.com/connect"}),
			"spec.upstream.credentials.userOAuthToken.connectURL", "must not hold user info"},
		"credential prefix with a newline": {set("spec.upstream.credentials", map[string]any{"headers": []any{map[string]any{
			"name": "X-Api-Key", "secretKeyRef": map[string]any{"name": "upstream", "key": "token"}, "prefix": "Bearer\r\nX-Evil: 1 ",
		}}}), "spec.upstream.credentials.headers[0].prefix", "must be printable ASCII text"},
		"credential header without secretKeyRef": {set("spec.upstream.credentials", map[string]any{"headers": []any{map[string]any{"name": "X-Api-Key"}}}),
			"spec.upstream.credentials.headers[0].secretKeyRef", "Required value"},
		"too many credential headers": {credentials(nil, "H0", "H1", "H2", "H3", "H4", "H5", "H6", "H7", "H8", "H9", "H10", "H11", "H12", "H13", "H14", "H15", "H16"),
			"spec.upstream.credentials.headers", "must have at most 16 items"},
		"credential headers to a plain http url": {onURL("http://mcp.example.com", credentials(nil, "X-Api-Key")),
			"spec.upstream.credentials", "credentials go only to an https url upstream or a Service upstream"},
		"user token to a plain http url": {onURL("http://mcp.example.com:8080", credentials(map[string]any{"provider": "oauth_github"})),
			"spec.upstream.credentials", "credentials go only to an https url upstream or a Service upstream"},
		"name too long for a Service": {set("metadata.name", strings.Repeat("a", 56)), "metadata.name", "at most 55 characters"},
		"name with a dot":             {set("metadata.name", "tools.v1"), "metadata.name", "contain no '.'"},
		"name starting with a digit":  {set("metadata.name", "1tools"), "metadata.name", "start with a letter"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			assertRefused(t, tc, manifest(t, ns, tt.edit), tt.wantField, tt.wantText)
		})
	}
}

// TestClerkInstanceValidation: the API server refuses bad ClerkInstances and
// ClusterClerkInstances (they share a schema), naming the field.
func TestClerkInstanceValidation(t *testing.T) {
	t.Parallel()
	tc := envCluster(t)
	ns := tc.newNamespace(t)
	valid := func() map[string]any {
		return map[string]any{
			"apiVersion": "mcpgate.dev/v1alpha1",
			"metadata":   map[string]any{"generateName": "inst-"},
			"spec": map[string]any{
				"publishableKey": "pk_test_aGFwcHktb3R0ZXItMTIuY2xlcmsuYWNjb3VudHMuZGV2JA",
				"secretKeyRef":   map[string]any{"name": "clerk", "key": "secret-key"},
				"defaultScopes":  []any{"openid", "email"},
			},
		}
	}
	tests := map[string]struct {
		edit      func(map[string]any)
		wantField string
		wantText  string
	}{
		"no issuer":           {set("spec.publishableKey", nil), "spec", "exactly one of publishableKey or issuer"},
		"both issuer and key": {set("spec.issuer", "https://clerk.example.com"), "spec", "exactly one of publishableKey or issuer"},
		"bad publishable key": {set("spec.publishableKey", "sk_test_abc"), "spec.publishableKey", "pk_test_... or pk_live_..."},
		"http issuer": {func(o map[string]any) {
			set("spec.publishableKey", nil)(o)
			set("spec.issuer", "http://clerk.example.com")(o)
		}, "spec.issuer", "must use https"},
		"no secretKeyRef":     {set("spec.secretKeyRef", nil), "spec.secretKeyRef", "Required value"},
		"empty defaultScopes": {set("spec.defaultScopes", []any{}), "spec.defaultScopes", "at least 1 item"},
		"repeated scope":      {set("spec.defaultScopes", []any{"openid", "openid"}), "spec.defaultScopes[1]", "Duplicate value"},
		"scope with a space":  {set("spec.defaultScopes", []any{"open id"}), "spec.defaultScopes[0]", "without spaces"},
		"setting not a bool":  {set("spec.jwtAccessTokens", "yes"), "spec.jwtAccessTokens", "must be of type boolean"},
	}
	for name, tt := range tests {
		for _, kind := range []string{mcpv1.KindClerkInstance, mcpv1.KindClusterClerkInstance} {
			t.Run(kind+"/"+name, func(t *testing.T) {
				t.Parallel()
				obj := valid()
				obj["kind"] = kind
				tt.edit(obj)
				u := &unstructured.Unstructured{Object: obj}
				if kind == mcpv1.KindClerkInstance {
					u.SetNamespace(ns)
				}
				assertRefused(t, tc, u, tt.wantField, tt.wantText)
			})
		}
	}
}

func TestMcpServerValidation_acceptedAndDefaulted(t *testing.T) {
	t.Parallel()
	tc := envCluster(t)
	ns := tc.newNamespace(t)
	tests := map[string]func(map[string]any){
		"as given": nil,
		"http issuer on loopback": func(o map[string]any) {
			set("spec.clerk.publishableKey", nil)(o)
			set("spec.clerk.issuer", "http://127.0.0.1:4455")(o)
		},
		"http issuer, localhost": func(o map[string]any) {
			set("spec.clerk.publishableKey", nil)(o)
			set("spec.clerk.issuer", "http://localhost:4455")(o)
		},
		"issuer behind a proxy": func(o map[string]any) {
			set("spec.clerk.publishableKey", nil)(o)
			set("spec.clerk.issuer", "https://example.com/__clerk")(o)
		},
		"named port": set("spec.upstream.service.port", "mcp"),
		"external url": func(o map[string]any) {
			set("spec.upstream.service", nil)(o)
			set("spec.upstream.url", "https://mcp.example.com:8443")(o)
		},
		"root path":              set("spec.path", "/"),
		"no ingress, no gateway": func(o map[string]any) { set("spec.ingress", nil)(o); set("spec.gateway", nil)(o) },
		"live key":               set("spec.clerk.publishableKey", "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"),
		"instanceRef":            set("spec.clerk", map[string]any{"instanceRef": map[string]any{"name": "main"}}),
		"clusterInstanceRef":     set("spec.clerk", map[string]any{"instanceRef": map[string]any{"kind": "ClusterClerkInstance", "name": "shared"}}),
		"access, every kind of entry": set("spec.access", map[string]any{
			"allow": []any{
				map[string]any{"organization": "acme-corp", "roles": []any{"org:admin", "org:member"}},
				map[string]any{"organization": "org_2aBcD3", "permissions": []any{"org:tools:write", "org:sys_memberships:manage"}},
				map[string]any{"organization": "org_2aBcD3", "roles": []any{"org:billing_admin"}, "permissions": []any{"org:tools:write"}},
				map[string]any{"emailDomain": "Example.COM"},
				map[string]any{"emailDomain": "ops.example.co.uk"},
				map[string]any{"user": "user_2xYz9"},
			},
			"toolAccess": []any{
				map[string]any{"tool": "delete_repo", "allow": []any{map[string]any{"organization": "acme-corp", "roles": []any{"org:admin"}}}},
				map[string]any{"tool": "deploy", "allow": []any{map[string]any{"user": "user_2xYz9"}}},
			},
			"cacheTTL": "5m",
		}),
		"access, tool rules only": set("spec.access", map[string]any{"toolAccess": []any{
			map[string]any{"tool": "delete_repo", "allow": []any{map[string]any{"organization": "acme"}}},
		}}),
		"toolScopeChallenge AtSignIn": set("spec.toolScopeChallenge", "AtSignIn"),
		"toolScopeChallenge StepUp without toolScopes": func(o map[string]any) {
			set("spec.toolScopes", nil)(o)
			set("spec.toolScopeChallenge", "StepUp")(o)
		},
		"credentials on a service upstream": credentials(map[string]any{"provider": "oauth_github"}, "X-Api-Key", "x-tenant_id", "!#$%&'*+-.^_`|~"),
		"credentials on an https url upstream": onURL("https://mcp.example.com", credentials(map[string]any{
			"provider": "oauth_custom_acme_corp", "header": "X-Acme-Token", "prefix": "", "connectURL": "https://app.example.com/connect?provider=acme",
		}, "Authorization")),
		"autoscaling on the default resources": set("spec.gateway.autoscaling", map[string]any{"maxReplicas": 3}),
		"access, shortest cacheTTL":            accessTTL("5s"),
		"access, longest cacheTTL":             accessTTL("1h"),
	}
	i := 0
	for name, edit := range tests {
		i++
		objName := "ok" + strings.Repeat("a", i)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			u := manifest(t, ns, edit)
			u.SetName(objName)
			if err := tc.client.Create(context.Background(), u); err != nil {
				t.Fatalf("refused a valid object: %v", err)
			}
			got := &mcpv1.McpServer{}
			if err := tc.client.Get(context.Background(), client.ObjectKeyFromObject(u), got); err != nil {
				t.Fatal(err)
			}
			if got.Spec.Path == "" || got.Spec.Upstream.Path != "/mcp" || got.Spec.Gateway.Replicas == nil {
				t.Errorf("defaults not applied: path %q, upstream.path %q, replicas %v", got.Spec.Path, got.Spec.Upstream.Path, got.Spec.Gateway.Replicas)
			}
			if ref := got.Spec.Clerk.InstanceRef; name == "instanceRef" && (ref == nil || ref.Kind != mcpv1.KindClerkInstance) {
				t.Errorf("instanceRef = %+v, want kind defaulted to ClerkInstance", ref)
			}
			if a := got.Spec.Access; name == "access, tool rules only" && (a == nil || a.CacheTTL == nil || a.CacheTTL.Duration != time.Minute) {
				t.Errorf("access = %+v, want cacheTTL defaulted to 60s", a)
			}
			wantChallenge := mcpv1.ToolScopeChallengeStepUp
			if name == "toolScopeChallenge AtSignIn" {
				wantChallenge = mcpv1.ToolScopeChallengeAtSignIn
			}
			if got.Spec.ToolScopeChallenge != wantChallenge {
				t.Errorf("toolScopeChallenge = %q, want %q", got.Spec.ToolScopeChallenge, wantChallenge)
			}
			if c := got.Spec.Upstream.Credentials; name == "credentials on a service upstream" {
				if u := c.UserOAuthToken; u.Header != "Authorization" || u.Prefix == nil || *u.Prefix != "Bearer " {
					t.Errorf("userOAuthToken = %+v, want header Authorization and prefix %q by default", u, "Bearer ")
				}
			} else if name == "credentials on an https url upstream" {
				if u := c.UserOAuthToken; u.Header != "X-Acme-Token" || u.Prefix == nil || *u.Prefix != "" {
					t.Errorf("userOAuthToken = %+v, want the header and the empty prefix kept", u)
				}
			}
			if name == "no ingress, no gateway" && (got.Spec.Path != "/mcp" || *got.Spec.Gateway.Replicas != 1) {
				t.Errorf("defaults = path %q, replicas %d; want /mcp and 1", got.Spec.Path, *got.Spec.Gateway.Replicas)
			}
		})
	}
}

// kubectlFunc runs the real kubectl in the test's namespace, with stdin.
type kubectlFunc func(stdin []byte, args ...string) (string, error)

// kubectl returns a runner of envtest's kubectl, authenticated as a cluster admin.
func (f *fixture) kubectl() kubectlFunc {
	f.t.Helper()
	bin := filepath.Join(f.tc.env.BinaryAssetsDirectory, "kubectl")
	f.tc.addUserMu.Lock()
	user, err := f.tc.env.AddUser(envtest.User{Name: "kubectl-" + f.ns, Groups: []string{"system:masters"}}, nil)
	f.tc.addUserMu.Unlock()
	if err != nil {
		f.t.Fatalf("add user: %v", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		f.t.Fatal(err)
	}
	kcPath := filepath.Join(f.t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		f.t.Fatal(err)
	}
	return func(stdin []byte, args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"--kubeconfig", kcPath, "-n", f.ns}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

// TestKubectl drives the real kubectl against the API server: a refused apply
// names the field, and `kubectl get mcps` prints the URL, READY and ACCESS columns.
func TestKubectl(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	run := f.kubectl()

	bad, err := yaml.Marshal(manifest(t, f.ns, set("spec.clerk.issuer", "http://clerk.example.com")).Object)
	if err != nil {
		t.Fatal(err)
	}
	out, err := run(bad, "apply", "-f", "-")
	if err == nil || !strings.Contains(out, "spec.clerk") || !strings.Contains(out, "exactly one of clerk.publishableKey or clerk.issuer") {
		t.Errorf("kubectl apply of an invalid object: err %v, output:\n%s", err, out)
	}

	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_x"})
	good, err := yaml.Marshal(manifest(t, f.ns, set("spec.ingress.host", f.ns+".example.com")).Object)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run(good, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	f.waitMcp("valid", observed)
	out, err = run(nil, "get", "mcps")
	if err != nil {
		t.Fatalf("kubectl get mcps: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAME URL READY ACCESS AGE" {
		t.Fatalf("kubectl get mcps printed:\n%s", out)
	}
	if fields := strings.Fields(lines[1]); len(fields) < 4 || fields[0] != "valid" || fields[1] != "http://"+f.ns+".example.com/mcp" || fields[2] != "False" ||
		fields[3] != string(mcpv1.AccessAnySignedInUser) {
		t.Errorf("kubectl get mcps row = %q", lines[1])
	}

	// A ClerkInstance whose Secret is missing, by its short name.
	instance := []byte("apiVersion: mcpgate.dev/v1alpha1\nkind: ClerkInstance\nmetadata: {name: main}\n" +
		"spec: {issuer: 'https://clerk.example.com', secretKeyRef: {name: absent, key: secret-key}}\n")
	if out, err := run(instance, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	eventually(t, func() error {
		out, err := run(nil, "get", "clerk", "-o", "wide")
		if err != nil {
			return fmt.Errorf("kubectl get clerk: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAME ISSUER READY REASON LAST SYNC AGE" {
			return fmt.Errorf("kubectl get clerk printed:\n%s", out)
		}
		if fields := strings.Fields(lines[1]); len(fields) < 4 || fields[0] != "main" || fields[1] != "https://clerk.example.com" ||
			fields[2] != "False" || fields[3] != mcpv1.ReasonSecretNotFound {
			return fmt.Errorf("kubectl get clerk row = %q", lines[1])
		}
		return nil
	})
}

// TestKustomizeInstall applies config/default, the complete install, with the
// real kubectl, so every object in it is valid for this Kubernetes version,
// and checks that the sample is a valid McpServer.
func TestKustomizeInstall(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	run := f.kubectl()
	rendered, err := run(nil, "kustomize", filepath.Join("..", "config", "default"))
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v\n%s", err, rendered)
	}
	// The CRD is already installed by envtest under another field manager.
	out, err := run([]byte(rendered), "-n", "mcpgate-system", "apply", "--server-side", "--force-conflicts", "--field-manager=install-test", "-f", "-")
	if err != nil {
		t.Fatalf("kubectl apply of config/default: %v\n%s", err, out)
	}
	for _, want := range []string{
		"namespace/mcpgate-system", "customresourcedefinition.apiextensions.k8s.io/mcpservers.mcpgate.dev",
		"customresourcedefinition.apiextensions.k8s.io/clerkinstances.mcpgate.dev",
		"customresourcedefinition.apiextensions.k8s.io/clusterclerkinstances.mcpgate.dev",
		"clusterrole.rbac.authorization.k8s.io/mcpgate-clerkinstance-editor",
		"clusterrole.rbac.authorization.k8s.io/mcpgate-manager", "deployment.apps/mcpgate-manager",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("apply output lacks %s:\n%s", want, out)
		}
	}
	samples := filepath.Join("..", "config", "samples")
	for args, wants := range map[string][]string{
		"-k " + samples: {"mcpserver.mcpgate.dev/github-tools"},
		"-f " + filepath.Join(samples, "mcpgate_v1alpha1_clerkinstance.yaml"):        {"clerkinstance.mcpgate.dev/main", "mcpserver.mcpgate.dev/search-tools"},
		"-f " + filepath.Join(samples, "mcpgate_v1alpha1_clusterclerkinstance.yaml"): {"clusterclerkinstance.mcpgate.dev/platform"},
		"-f " + filepath.Join(samples, "mcpgate_v1alpha1_mcpserver_access.yaml"):     {"mcpserver.mcpgate.dev/release-tools"},
		"-f " + filepath.Join(samples, "mcpgate_v1alpha1_mcpserver_credentials.yaml"): {
			"mcpserver.mcpgate.dev/github-user-tools", "mcpserver.mcpgate.dev/hosted-search-tools",
		},
	} {
		out, err := run(nil, append([]string{"apply", "--dry-run=server"}, strings.Fields(args)...)...)
		for _, want := range wants {
			if err != nil || !strings.Contains(out, want+" created (server dry run)") {
				t.Errorf("kubectl apply %s does not create %s: %v\n%s", args, want, err, out)
			}
		}
	}
}
