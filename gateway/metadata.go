package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/gateway/config"
)

// Well-known paths the gateway serves.
const (
	wellKnownAS     = "/.well-known/oauth-authorization-server"
	wellKnownOpenID = "/.well-known/openid-configuration"
)

// resourceMetadata is the RFC 9728 protected resource metadata document.
type resourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name,omitempty"`
}

// publicEndpoint returns the URL clients use for the MCP endpoint, which is
// the resource identifier, and the URL of its metadata document. Clients
// compare the resource with the URL they used character for character, so
// without a configured public URL both are built from the request: scheme
// from TLS, host from Host, or from X-Forwarded-Proto/-Host when a trusted
// proxy sets them.
func (g *Gateway) publicEndpoint(r *http.Request) (resource, metadataURL string) {
	if u := g.publicURL; u != nil {
		return g.cfg.PublicURL, u.Scheme + "://" + u.Host + config.ResourceMetadataPath(u.Path)
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if g.cfg.TrustForwardedHeaders {
		if p := strings.ToLower(firstListValue(r.Header.Get("X-Forwarded-Proto"))); p == "http" || p == "https" {
			scheme = p
		}
		if h := firstListValue(r.Header.Get("X-Forwarded-Host")); validHost(h) {
			host = h
		}
	}
	if !validHost(host) {
		host = "localhost" // an HTTP/1.0 request without Host
	}
	base := scheme + "://" + host
	return base + g.cfg.Path, base + config.ResourceMetadataPath(g.cfg.Path)
}

// firstListValue is the first element of a comma-separated header value:
// the one the proxy closest to the client wrote.
func firstListValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// validHost accepts host[:port] and nothing that could change the meaning of
// a URL built from it (userinfo, a path, spaces).
func validHost(h string) bool {
	if h == "" || strings.ContainsAny(h, "/\\@?# \t") {
		return false
	}
	u, err := url.Parse("http://" + h)
	return err == nil && u.Host == h
}

// serveResourceMetadata answers RFC 9728 metadata requests. The document is
// public, so any origin may read it.
func (g *Gateway) serveResourceMetadata(w http.ResponseWriter, r *http.Request) {
	if !metadataMethod(w, r) {
		return
	}
	resource, _ := g.publicEndpoint(r)
	body, err := json.Marshal(resourceMetadata{
		Resource:               resource,
		AuthorizationServers:   []string{g.cfg.Clerk.Issuer},
		ScopesSupported:        g.scopesSupported,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           g.cfg.ResourceName,
	})
	if err != nil {
		writePlain(w, http.StatusInternalServerError, "500 cannot encode metadata")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	if g.publicURL == nil {
		// The document differs by the host the client used.
		h.Set("Vary", "Host, X-Forwarded-Host, X-Forwarded-Proto")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// serveASMetadata answers with Clerk's authorization server metadata, for
// clients written against the 2025-03-26 revision, which looked for it at
// the MCP server's origin. The document is Clerk's, byte for byte.
func (g *Gateway) serveASMetadata(w http.ResponseWriter, r *http.Request, path string) {
	if !metadataMethod(w, r) {
		return
	}
	doc, err := g.asMetadata.get(r.Context(), path)
	if err != nil {
		g.log.LogAttrs(r.Context(), slog.LevelWarn, "Could not fetch authorization server metadata",
			slog.String("request_id", infoFrom(r.Context()).id), slog.String("path", path), slog.String("error", err.Error()))
		var me *metadataError
		if errors.As(err, &me) && me.status != 0 {
			writePlain(w, http.StatusBadGateway, "502 the authorization server answered "+strconv.Itoa(me.status))
			return
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(metadataRetryAfterFailure/time.Second)))
		writePlain(w, http.StatusServiceUnavailable, "503 the authorization server is unreachable")
		return
	}
	h := w.Header()
	h.Set("Content-Type", doc.contentType)
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(doc.body)))
	_, _ = w.Write(doc.body)
}

// metadataMethod handles what the metadata routes share: CORS open to all,
// GET and HEAD served, OPTIONS answered as a preflight, anything else 405.
// It reports whether the caller should write the document.
func metadataMethod(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return true
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
		h.Set("Access-Control-Max-Age", "600")
		h.Set("Allow", "GET, HEAD, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return false
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		writePlain(w, http.StatusMethodNotAllowed, "405 method not allowed")
		return false
	}
}

const (
	// metadataRetryAfterFailure is how long a failed fetch is not retried:
	// the stale copy (or the error) is served meanwhile, so an issuer
	// outage does not turn every metadata request into a slow failure.
	metadataRetryAfterFailure = 5 * time.Second
	// maxMetadataBytes bounds a metadata document; Clerk's are ~2 KiB.
	maxMetadataBytes = 256 << 10
	// metadataFetchTimeout bounds one fetch, which no client's context
	// bounds (it is shared).
	metadataFetchTimeout = 10 * time.Second
)

// metadataCache keeps the issuer's metadata documents. A fresh copy is
// served from memory; an expired one is fetched again, with concurrent
// requests sharing one fetch; if that fails the stale copy is served, as it
// describes endpoints that rarely change. Without any copy the fetch error
// is returned.
type metadataCache struct {
	issuer string
	client *http.Client
	now    func() time.Time
	ttl    time.Duration
	log    *slog.Logger

	mu   sync.Mutex
	docs map[string]*cachedDoc
}

// cachedDoc is one document and the state of fetching it.
type cachedDoc struct {
	body        []byte
	contentType string
	fetchedAt   time.Time // of body; zero: never fetched
	failedAt    time.Time // of the last failed fetch
	lastErr     error
	flight      *metadataFlight // the fetch under way, if any
}

// metadataFlight is one fetch that several requests may wait for.
type metadataFlight struct {
	done chan struct{}
	err  error
}

// metadataError is a fetch that got an HTTP answer other than 200.
type metadataError struct {
	status int
}

func (e *metadataError) Error() string {
	return fmt.Sprintf("authorization server answered %d", e.status)
}

// metadataDoc is a document as served.
type metadataDoc struct {
	body        []byte
	contentType string
}

func newMetadataCache(issuer string, client *http.Client, now func() time.Time, ttl time.Duration, log *slog.Logger) *metadataCache {
	return &metadataCache{
		issuer: strings.TrimSuffix(issuer, "/"),
		client: client, now: now, ttl: ttl, log: log,
		docs: map[string]*cachedDoc{},
	}
}

// get returns the document at path (a well-known path) of the issuer.
func (c *metadataCache) get(ctx context.Context, path string) (metadataDoc, error) {
	c.mu.Lock()
	d := c.docs[path]
	if d == nil {
		d = &cachedDoc{}
		c.docs[path] = d
	}
	now := c.now()
	if d.body != nil && now.Sub(d.fetchedAt) < c.ttl {
		defer c.mu.Unlock()
		return d.served(), nil
	}
	if d.lastErr != nil && now.Sub(d.failedAt) < metadataRetryAfterFailure {
		defer c.mu.Unlock()
		return d.servedOr(d.lastErr)
	}
	f := d.flight
	if f == nil {
		f = &metadataFlight{done: make(chan struct{})}
		d.flight = f
		go c.fetch(path, d, f)
	}
	c.mu.Unlock()

	select {
	case <-f.done:
	case <-ctx.Done():
		return metadataDoc{}, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return d.servedOr(f.err)
}

// served copies the document out; the caller holds c.mu.
func (d *cachedDoc) served() metadataDoc {
	return metadataDoc{body: d.body, contentType: d.contentType}
}

// servedOr returns the (maybe stale) document, or err when there is none;
// the caller holds c.mu.
func (d *cachedDoc) servedOr(err error) (metadataDoc, error) {
	if d.body != nil {
		return d.served(), nil
	}
	if err == nil {
		err = errors.New("no document")
	}
	return metadataDoc{}, err
}

// fetch runs one flight and stores its outcome in d.
func (c *metadataCache) fetch(path string, d *cachedDoc, f *metadataFlight) {
	ctx, cancel := context.WithTimeout(context.Background(), metadataFetchTimeout)
	defer cancel()
	body, ctype, err := c.download(ctx, path)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		d.lastErr, d.failedAt = err, c.now()
		if d.body != nil {
			c.log.Warn("Serving stale authorization server metadata", "path", path, "error", err.Error())
		}
	} else {
		d.body, d.contentType, d.fetchedAt, d.lastErr = body, ctype, c.now(), nil
	}
	d.flight, f.err = nil, err
	close(f.done)
}

// download GETs issuer+path and checks that the answer is a JSON object.
func (c *metadataCache) download(ctx context.Context, path string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.issuer+path, nil)
	if err != nil {
		return nil, "", fmt.Errorf("fetch %s: %w", path, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("fetch %s: %w", path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxMetadataBytes))
		return nil, "", fmt.Errorf("fetch %s: %w", path, &metadataError{status: resp.StatusCode})
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("fetch %s: read: %w", path, err)
	}
	if len(body) > maxMetadataBytes {
		return nil, "", fmt.Errorf("fetch %s: document larger than %d bytes", path, maxMetadataBytes)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(bytes.TrimSpace(body), &obj); err != nil {
		return nil, "", fmt.Errorf("fetch %s: not a JSON object: %w", path, err)
	}
	ctype := resp.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ctype); err != nil || !strings.HasSuffix(mt, "json") {
		ctype = "application/json"
	}
	return body, ctype, nil
}
