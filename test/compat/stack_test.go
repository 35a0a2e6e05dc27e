package compat_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/sampleserver"
)

const (
	// baseScope is what the gateway requires of every token.
	baseScope = "profile"
	// toolScope is what delete_repo needs besides baseScope: a custom scope
	// of the emulator's instance.
	toolScope = "repo:admin"
)

// stack is one emulator, one sample upstream and one gateway, on loopback,
// set up as a cell asks.
type stack struct {
	em     *clerktest.Server
	mcpURL string
	// metadata serves the client's metadata document in CIMD cells; nil
	// in the others.
	metadata *metadataServer
}

// startStack starts the servers of one cell and stops them when the test
// ends. Every cell gets its own: the emulator's settings and rule, and the
// gateway's challenge, differ between cells, and clients must not find each
// other's registrations.
func startStack(t *testing.T, c cell) *stack {
	t.Helper()
	st := &stack{}
	opts := emulatorOptions(c)
	if c.registration == regCIMD {
		st.metadata = startMetadataServer(t)
		opts = append(opts, cimdOptions(st.metadata.srv.Client().Transport)...)
	}
	em := clerktest.NewServer(opts...)
	t.Cleanup(em.Close)
	st.em = em
	if c.registration == regCIMD {
		s := em.Settings()
		s.ClientIDMetadataDocumentsAdvertised = true
		em.SetSettings(s)
	}

	up := httptest.NewServer(sampleserver.NewHandler(sampleserver.Options{}))
	t.Cleanup(up.Close)

	keyFile := filepath.Join(t.TempDir(), "secret-key")
	if err := os.WriteFile(keyFile, []byte(em.SecretKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{
		APIVersion:   config.APIVersion,
		Kind:         config.Kind,
		Server:       config.ServerRef{Namespace: "compat", Name: "matrix"},
		Listen:       config.Listen{Traffic: "127.0.0.1:0", Health: "127.0.0.1:0"}, // unused: served by httptest
		Path:         "/mcp",
		ResourceName: "mcpgate client compatibility matrix",
		Upstream:     config.Upstream{URL: up.URL + "/mcp"},
		Scopes:       []string{baseScope},
		ToolScopes:   []config.ToolScope{{Tool: sampleserver.ToolDeleteRepo, Scopes: []string{toolScope}}},
		Clerk:        config.Clerk{Issuer: em.FrontendAPIURL(), APIURL: em.BackendAPIURL(), SecretKeyFile: keyFile},
	}
	configureRemedy(&cfg, c)
	g, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	gw := httptest.NewServer(g.Handler())
	// Clients may hold a standalone SSE stream open; closing the client
	// side first keeps Close from waiting on it.
	t.Cleanup(func() {
		gw.CloseClientConnections()
		gw.Close()
	})
	st.mcpURL = gw.URL + "/mcp"
	return st
}

// emulatorOptions are the emulator's options for a cell.
func emulatorOptions(c cell) []clerktest.Option {
	opts := []clerktest.Option{
		clerktest.WithJWTAccessTokens(c.token == tokenJWT),
		clerktest.WithScopes(toolScope),
	}
	return append(opts, scopeRuleOptions(c)...)
}

// clientMetadataDocument is a client ID metadata document for a public
// client with one redirect URI; its client_id must be the URL it is served
// at.
type clientMetadataDocument struct {
	ClientID                string   `json:"client_id"`
	ClientName              string   `json:"client_name"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
}

// metadataServer serves client ID metadata documents over https on
// loopback. Every SDK here takes only an https client_id URL (SEP-991), so
// the emulator fetches them over TLS from this server, trusting its
// certificate through the transport it is given.
type metadataServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	docs map[string][]byte // by path
}

func startMetadataServer(t *testing.T) *metadataServer {
	t.Helper()
	m := &metadataServer{docs: map[string][]byte{}}
	m.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		body, ok := m.docs[r.URL.Path]
		m.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

// nonWord matches what a document's path leaves out of a client's name.
var nonWord = regexp.MustCompile(`[^a-z0-9.]+`)

// serve publishes a public client's document with one redirect URI and
// returns its URL, which is also its client_id.
func (m *metadataServer) serve(t *testing.T, name, redirectURL string) string {
	t.Helper()
	path := "/clients/" + strings.Trim(nonWord.ReplaceAllString(strings.ToLower(name), "-"), "-") + ".json"
	doc := clientMetadataDocument{
		ClientID:                m.srv.URL + path,
		ClientName:              name,
		RedirectURIs:            []string{redirectURL},
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		TokenEndpointAuthMethod: "none",
	}
	body, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.docs[path] = body
	m.mu.Unlock()
	return doc.ClientID
}
