package compat_test

import (
	"net/http"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// The emulator rules and gateway remedies the matrix covers.
var (
	scopeRules = []string{ruleRegistered}
	remedies   = []string{remedyOff}
	// registrations the matrix covers; CIMD needs the emulator's metadata
	// document clients.
	registrations = []string{regDCR}
)

// scopeRuleOptions sets the emulator's rule for the scopes of dynamically
// registered clients.
func scopeRuleOptions(c cell) []clerktest.Option { return nil }

// cimdOptions let the emulator fetch metadata documents from the test's
// loopback TLS server.
func cimdOptions(rt http.RoundTripper) []clerktest.Option { return nil }

// configureRemedy sets the gateway's tool scope challenge.
func configureRemedy(cfg *config.Config, c cell) {}
