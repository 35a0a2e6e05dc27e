package compat_test

import (
	"net/http"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// The emulator rules, gateway remedies and registrations the matrix covers.
var (
	scopeRules    = []string{ruleRegistered, ruleInstance}
	remedies      = []string{remedyOff, remedyAtSignIn}
	registrations = []string{regDCR, regCIMD}
)

// scopeRuleOptions set the emulator's rule for the scopes of dynamically
// registered clients.
func scopeRuleOptions(c cell) []clerktest.Option {
	if c.rule == ruleInstance {
		return []clerktest.Option{clerktest.WithClientScopeRule(clerktest.ScopesOfInstance)}
	}
	return nil
}

// cimdOptions let the emulator fetch metadata documents from the test's
// loopback TLS server, trusting it through rt.
func cimdOptions(rt http.RoundTripper) []clerktest.Option {
	return []clerktest.Option{clerktest.WithLoopbackClientMetadata(true), clerktest.WithClientMetadataTransport(rt)}
}

// configureRemedy sets the gateway's tool scope challenge.
func configureRemedy(cfg *config.Config, c cell) {
	if c.remedy == remedyAtSignIn {
		cfg.ToolScopeChallenge = config.ToolScopeChallengeAtSignIn
	}
}
