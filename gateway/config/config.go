// Package config is the contract between the controller, which writes a
// gateway's configuration into a ConfigMap, and the gateway, which reads it.
//
// The format is versioned: a gateway refuses a configuration whose apiVersion
// or kind it does not know, and unknown fields, rather than guess at them.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

const (
	// APIVersion is the version of the format this package reads and writes.
	APIVersion = "gateway.mcpgate.dev/v1alpha1"
	// Kind names the document type.
	Kind = "GatewayConfig"
	// FileName is the key of the configuration in the gateway's ConfigMap and
	// the file name it is mounted under.
	FileName = "config.json"
)

// Config is the complete configuration of one gateway, the data plane of one McpServer.
type Config struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`

	// Server names the McpServer this gateway serves, for logs and metrics.
	Server ServerRef `json:"server"`

	// Listen holds the addresses the gateway binds.
	Listen Listen `json:"listen"`

	// Path is the public path of the MCP endpoint, such as /mcp.
	Path string `json:"path"`

	// PublicURL is the exact URL clients use for the MCP endpoint, when the
	// controller knows it (an Ingress host). Empty: derive it from requests.
	PublicURL string `json:"publicURL,omitempty"`

	// ResourceName is a human-readable name for the protected resource metadata.
	ResourceName string `json:"resourceName"`

	// Upstream is where authorized requests go.
	Upstream Upstream `json:"upstream"`

	// Scopes must all be present in every access token.
	Scopes []string `json:"scopes,omitempty"`

	// ToolScopes are the extra scopes that a tools/call for a tool needs.
	ToolScopes []ToolScope `json:"toolScopes,omitempty"`

	// ToolScopeChallenge says when clients are asked for the tool scopes:
	// ToolScopeChallengeStepUp (empty means the same) or
	// ToolScopeChallengeAtSignIn. Tokens need the same scopes either way.
	ToolScopeChallenge string `json:"toolScopeChallenge,omitempty"`

	// Access says who may call the server and each tool, by Clerk identity.
	// Nil: every user with a valid token (AnySignedInUser).
	Access *Access `json:"access,omitempty"`

	// Clerk is the authorization server.
	Clerk Clerk `json:"clerk"`

	// Broker, when set, is where the gateway asks what needs Clerk's
	// secret key; Clerk.SecretKeyFile is then empty.
	Broker *Broker `json:"broker,omitempty"`

	// AllowedOrigins are the browser origins (scheme://host[:port]) allowed
	// to call the gateway, besides the origin of PublicURL. A request with
	// any other Origin header is refused; requests without one are allowed.
	AllowedOrigins []string `json:"allowedOrigins,omitempty"`

	// TrustForwardedHeaders derives the public URL from X-Forwarded-Proto and
	// X-Forwarded-Host when PublicURL is empty. Only safe behind a proxy that
	// sets them.
	TrustForwardedHeaders bool `json:"trustForwardedHeaders,omitempty"`

	// Audit configures the audit stream; the zero value audits.
	Audit Audit `json:"audit,omitzero"`

	// Tracing, when set, exports OpenTelemetry spans.
	Tracing *Tracing `json:"tracing,omitempty"`
}

// ServerRef identifies an McpServer.
type ServerRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Listen holds the gateway's listen addresses.
type Listen struct {
	// Traffic serves MCP clients.
	Traffic string `json:"traffic"`
	// Health serves probes and metrics.
	Health string `json:"health"`
}

// Upstream is the MCP server behind the gateway.
type Upstream struct {
	// URL is the absolute URL of the upstream MCP endpoint, path included.
	URL string `json:"url"`
	// Credentials are what the gateway adds to every forwarded request for
	// the upstream's own authentication; nil adds nothing.
	Credentials *Credentials `json:"credentials,omitempty"`
}

// The values of Config.ToolScopeChallenge.
const (
	// ToolScopeChallengeStepUp names only the scopes every request needs
	// in a 401 challenge; a tool's scopes are asked for by a 403
	// insufficient_scope when it is called (step-up authorization).
	ToolScopeChallengeStepUp = "StepUp"
	// ToolScopeChallengeAtSignIn names every tool scope in the 401
	// challenges too, so a client asks for them all when the user signs
	// in, for clients that cannot step up.
	ToolScopeChallengeAtSignIn = "AtSignIn"
)

// ToolScope lists the scopes one tool needs.
type ToolScope struct {
	Tool   string   `json:"tool"`
	Scopes []string `json:"scopes"`
}

// Clerk describes the Clerk instance that issues access tokens.
type Clerk struct {
	// Issuer is the Frontend API URL; tokens' iss must equal it exactly.
	Issuer string `json:"issuer"`
	// APIURL is the Backend API base URL, such as https://api.clerk.com/v1.
	APIURL string `json:"apiURL"`
	// SecretKeyFile is the path of the mounted file holding the secret key.
	// The key itself is never part of the configuration. Empty when the
	// gateway has a Broker, or needs nothing a key gives: it then verifies
	// JWTs with the instance's public keys and answers an opaque token 503.
	SecretKeyFile string `json:"secretKeyFile,omitempty"`
}

// Marshal encodes c as indented JSON, stamping apiVersion and kind. The output
// is deterministic, so a hash of it changes only when the configuration does.
func Marshal(c Config) ([]byte, error) {
	c.APIVersion, c.Kind = APIVersion, Kind
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode gateway config: %w", err)
	}
	return append(b, '\n'), nil
}

// Parse decodes and validates a configuration. It refuses other versions and
// unknown fields, so that a gateway never runs on a configuration it only
// partly understands.
func Parse(data []byte) (Config, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Config{}, fmt.Errorf("decode gateway config: %w", err)
	}
	if head.APIVersion != APIVersion || head.Kind != Kind {
		return Config{}, fmt.Errorf("unsupported gateway config %q, kind %q: this gateway reads apiVersion %q, kind %q",
			head.APIVersion, head.Kind, APIVersion, Kind)
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("decode gateway config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Listen.Traffic == "" || c.Listen.Health == "" {
		errs = append(errs, errors.New("listen.traffic and listen.health are required"))
	}
	if !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, fmt.Errorf("path %q must start with '/'", c.Path))
	}
	if c.PublicURL != "" {
		if err := absoluteHTTPURL(c.PublicURL); err != nil {
			errs = append(errs, fmt.Errorf("publicURL: %w", err))
		}
	}
	if err := absoluteHTTPURL(c.Upstream.URL); err != nil {
		errs = append(errs, fmt.Errorf("upstream.url: %w", err))
	}
	if err := absoluteHTTPURL(c.Clerk.Issuer); err != nil {
		errs = append(errs, fmt.Errorf("clerk.issuer: %w", err))
	}
	if err := absoluteHTTPURL(c.Clerk.APIURL); err != nil {
		errs = append(errs, fmt.Errorf("clerk.apiURL: %w", err))
	}
	if c.Broker != nil {
		errs = append(errs, c.Broker.validate()...)
		if c.Clerk.SecretKeyFile != "" {
			errs = append(errs, errKeyAndBroker)
		}
	}
	for i, o := range c.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			errs = append(errs, fmt.Errorf("allowedOrigins[%d] %q is not an origin such as https://app.example.com", i, o))
		}
	}
	for i, ts := range c.ToolScopes {
		if ts.Tool == "" || len(ts.Scopes) == 0 {
			errs = append(errs, fmt.Errorf("toolScopes[%d]: tool and scopes are required", i))
		}
	}
	switch c.ToolScopeChallenge {
	case "", ToolScopeChallengeStepUp, ToolScopeChallengeAtSignIn:
	default:
		errs = append(errs, fmt.Errorf("toolScopeChallenge %q must be %q or %q", c.ToolScopeChallenge, ToolScopeChallengeStepUp, ToolScopeChallengeAtSignIn))
	}
	if c.Access != nil {
		errs = append(errs, c.Access.validate()...)
	}
	if c.Upstream.Credentials != nil {
		errs = append(errs, c.Upstream.Credentials.validate()...)
	}
	errs = append(errs, c.Audit.validate()...)
	if c.Tracing != nil {
		errs = append(errs, c.Tracing.validate()...)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid gateway config: %w", err)
	}
	return nil
}

func absoluteHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("parse %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	return nil
}
