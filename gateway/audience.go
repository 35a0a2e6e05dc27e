package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/clerk"
)

// maxAudienceVerifiers bounds the verifiers kept for derived resource URLs;
// a gateway is reached under a handful of names.
const maxAudienceVerifiers = 16

// verifierFor picks the verifier for a token. With a configured public URL
// there is one resource and one verifier. Without one, the resource is the
// URL the client used (see publicEndpoint), so a JWT whose aud names that
// URL, as clients sending RFC 8707 resource indicators get, is verified by
// a verifier accepting exactly it; any other aud goes to the main verifier,
// which refuses it. Audience binding is then only as strong as the Host
// header: configure the public URL for a strict one.
func (g *Gateway) verifierFor(r *http.Request, token string) *clerk.Verifier {
	if g.publicURL != nil || tokenFormat(token) != formatJWT {
		return g.verifier
	}
	resource, _ := g.publicEndpoint(r)
	if !slices.Contains(peekAudience(token), resource) {
		return g.verifier
	}
	return g.audiences.get(resource)
}

// peekAudience reads a JWT's aud claim without verifying anything: it only
// chooses which verifier checks the token. Nil when absent or unreadable.
func peekAudience(token string) []string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var claims struct {
		Aud json.RawMessage `json:"aud"`
	}
	if json.Unmarshal(raw, &claims) != nil || len(claims.Aud) == 0 {
		return nil
	}
	var one string
	if json.Unmarshal(claims.Aud, &one) == nil {
		return []string{one}
	}
	var many []string
	if json.Unmarshal(claims.Aud, &many) == nil {
		return many
	}
	return nil
}

// audienceVerifiers keeps one verifier per derived resource URL, the least
// recently used dropped beyond maxAudienceVerifiers. Their key set fetches
// go through a jwksMemo, so a client cycling Host values costs Clerk nothing.
type audienceVerifiers struct {
	template clerk.VerifierOptions
	now      func() time.Time

	mu      sync.Mutex
	entries map[string]*audienceEntry
}

type audienceEntry struct {
	v        *clerk.Verifier
	lastUsed time.Time
}

func newAudienceVerifiers(template clerk.VerifierOptions) *audienceVerifiers {
	return &audienceVerifiers{template: template, now: time.Now, entries: map[string]*audienceEntry{}}
}

// get returns the verifier accepting aud, creating it when needed.
func (a *audienceVerifiers) get(aud string) *clerk.Verifier {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if e, ok := a.entries[aud]; ok {
		e.lastUsed = now
		return e.v
	}
	if len(a.entries) >= maxAudienceVerifiers {
		var oldest string
		for k, e := range a.entries {
			if oldest == "" || e.lastUsed.Before(a.entries[oldest].lastUsed) {
				oldest = k
			}
		}
		delete(a.entries, oldest)
	}
	opts := a.template
	opts.Audiences = []string{aud}
	v, err := clerk.NewVerifier(opts)
	if err != nil {
		// The template was accepted by New already; only the audience differs.
		panic(fmt.Sprintf("gateway: create verifier for audience: %v", err))
	}
	a.entries[aud] = &audienceEntry{v: v, lastUsed: now}
	return v
}

// jwksMemoTTL is how long a fetched key set answers further fetches. It is
// shorter than the verifier's least refresh interval, so a verifier asking
// again after an unknown kid gets a fresh set.
const jwksMemoTTL = 10 * time.Second

// jwksMemo answers GET .../jwks from the last successful answer for a few
// seconds, so that many verifiers share one fetch. The key set is public
// (the Frontend API serves it to anyone), so sharing it is safe whatever
// secret key each request carried.
type jwksMemo struct {
	base http.RoundTripper
	now  func() time.Time

	mu     sync.Mutex
	url    string
	body   []byte
	header http.Header
	at     time.Time
}

func (m *jwksMemo) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/jwks") {
		return m.base.RoundTrip(req)
	}
	u := req.URL.String()
	m.mu.Lock()
	if m.body != nil && m.url == u && m.now().Sub(m.at) < jwksMemoTTL {
		body, header := m.body, m.header.Clone()
		m.mu.Unlock()
		return &http.Response{
			Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: header, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req,
		}, nil
	}
	m.mu.Unlock()
	resp, err := m.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read key set: %w", err)
	}
	m.mu.Lock()
	m.url, m.body, m.header, m.at = u, body, resp.Header.Clone(), m.now()
	m.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}
