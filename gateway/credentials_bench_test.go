package gateway_test

import (
	"testing"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// BenchmarkGatewayUserToken is BenchmarkGatewayJWT with a service key from
// a file and the caller's GitHub token from Clerk, warm in the cache: what
// the credentials step costs per request (a stat of the file, a cache
// lookup), and at most one Backend API call for the whole run.
func BenchmarkGatewayUserToken(b *testing.B) {
	c, p := newPeople(b)
	connect(b, c, p.alice, aliceGitHubToken)
	e := newEnv(b, withClerk(c), withUserToken(b, github))
	tok := e.token(b, clerktest.TokenRequest{Subject: p.alice, Scopes: baseScopes})
	benchCall(b, e.mcpURL(), tok)
	b.ReportMetric(float64(c.Calls(tokenEndpoint)), "clerk-token-calls")
}
