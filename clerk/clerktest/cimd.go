package clerktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Client ID metadata documents (CIMD): a client whose client_id is the
// https URL of a JSON document describing it, fetched by the authorization
// server when the client first shows up (MCP 2026-07-28 client
// registration; draft-ietf-oauth-client-id-metadata-document).

const (
	// DefaultClientMetadataTimeout bounds one fetch of a client's metadata
	// document, connection and body included, unless
	// WithClientMetadataTimeout says otherwise.
	DefaultClientMetadataTimeout = 5 * time.Second
	// maxClientMetadataBytes is the largest document accepted: the CIMD
	// draft recommends 5 kilobytes, which any real client metadata fits in,
	// and a limit keeps a hostile URL from exhausting the server.
	maxClientMetadataBytes = 5 << 10
	// clientMetadataTTL is how long a document is trusted when its response
	// says nothing about caching; short, so that edits show up soon.
	clientMetadataTTL = 5 * time.Minute
	// maxClientMetadataTTL caps a max-age, so that a client cannot pin a
	// stale document for longer than a day.
	maxClientMetadataTTL = 24 * time.Hour
)

// redirectRefused stops a fetch at a redirect: the document must be served
// at its own URL, which is the client_id it has to contain, and following
// one would let a client point the server anywhere.
type redirectRefused struct{}

func (redirectRefused) Error() string { return "redirects are not followed" }

// metadataFetch is how the server fetches metadata documents; fixed at start.
type metadataFetch struct {
	allowLoopback bool
	timeout       time.Duration
	transport     http.RoundTripper
}

func (f metadataFetch) withDefaults() metadataFetch {
	if f.timeout <= 0 {
		f.timeout = DefaultClientMetadataTimeout
	}
	if f.transport == nil {
		f.transport = f.guardedTransport()
	}
	return f
}

// guardedTransport is the default transport with one more check at dial
// time: unless loopback is allowed, a host name that resolves to a loopback
// address is refused too, so that a public-looking client_id cannot point
// the server at itself.
func (f metadataFetch) guardedTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	dialer := &net.Dialer{
		Timeout: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() && !f.allowLoopback {
				return errors.New("refusing to fetch a client metadata document from a loopback address")
			}
			return nil
		},
	}
	t.DialContext = dialer.DialContext
	return t
}

// WithLoopbackClientMetadata allows client_id URLs on a loopback host
// (localhost, 127.0.0.0/8, [::1]), over http or https, so that tests can
// serve metadata documents from httptest servers. Off by default: a real
// authorization server does not fetch from its own loopback (SSRF), and
// plain http is never accepted for any other host.
func WithLoopbackClientMetadata(on bool) Option {
	return func(o *options) { o.metadata.allowLoopback = on }
}

// WithClientMetadataTransport sets the transport that fetches metadata
// documents, for example an httptest TLS server's Client().Transport so
// that an https document on loopback is trusted. The emulator's own rules
// still apply: no redirects, the timeout, the size limit.
func WithClientMetadataTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.metadata.transport = rt }
}

// WithClientMetadataTimeout bounds each fetch of a metadata document
// (default DefaultClientMetadataTimeout); tests of slow documents set it low.
func WithClientMetadataTimeout(d time.Duration) Option {
	return func(o *options) { o.metadata.timeout = d }
}

// metadataDoc is what the server records of a metadata document client,
// besides its metadata.
type metadataDoc struct {
	// explicit: an administrator allowed the client (AllowClientMetadataDocument),
	// rather than the server admitting it on first use ("implicitly
	// allowed" in the settings' words).
	explicit bool
	// fetched is false for a client allowed before its document was read.
	fetched bool
	// expires is when the document must be fetched again.
	expires time.Time
}

// isURLClientID reports whether a client_id names a metadata document. The
// IDs the instance assigns ("client_...") are never URLs.
func isURLClientID(id string) bool {
	lower := strings.ToLower(id)
	return strings.HasPrefix(lower, "https://") || strings.HasPrefix(lower, "http://")
}

// checkURL applies the CIMD draft's rules for a client_id URL before
// anything is fetched: https, a host, a path other than "/", no dot
// segments, no fragment, no user information. Loopback hosts, over http or
// https, only with WithLoopbackClientMetadata.
func (f metadataFetch) checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return errors.New("client_id is not an absolute URL with a host")
	}
	loopback := isLoopback(u.Hostname())
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return errors.New("client_id must be an https URL")
	case loopback && !f.allowLoopback:
		return errors.New("client_id is on a loopback host, which this instance does not fetch from")
	case u.Scheme == "http" && !loopback:
		return errors.New("client_id must be an https URL")
	case u.User != nil:
		return errors.New("client_id must not contain a user name or password")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return errors.New("client_id must not contain a fragment")
	case u.EscapedPath() == "" || u.EscapedPath() == "/":
		return errors.New("client_id must contain a path, e.g. https://example.com/client.json")
	}
	for _, seg := range strings.Split(u.EscapedPath(), "/") {
		if seg == "." || seg == ".." {
			return errors.New("client_id must not contain . or .. path segments")
		}
	}
	return nil
}

// metadataDocument is the part of a client metadata document the emulator
// reads. Other fields (scope among them) are ignored: a metadata document
// client is not held to a scope.
type metadataDocument struct {
	ClientID                *string         `json:"client_id"`
	ClientName              *string         `json:"client_name"`
	ClientURI               *string         `json:"client_uri"`
	LogoURI                 *string         `json:"logo_uri"`
	RedirectURIs            []string        `json:"redirect_uris"`
	TokenEndpointAuthMethod *string         `json:"token_endpoint_auth_method"`
	GrantTypes              []string        `json:"grant_types"`
	ResponseTypes           []string        `json:"response_types"`
	ClientSecret            json.RawMessage `json:"client_secret"`
	ClientSecretExpiresAt   json.RawMessage `json:"client_secret_expires_at"`
}

// fetchClientMetadata fetches and validates the document at id and returns
// the client it describes. The error says what is wrong with the document,
// in words fit for the client's developer.
func (s *Server) fetchClientMetadata(ctx context.Context, id string) (*client, error) {
	f := s.metadata
	if err := f.checkURL(id); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return nil, errors.New("client_id is not a URL that can be fetched")
	}
	req.Header.Set("Accept", "application/json")
	hc := &http.Client{
		Transport:     f.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return redirectRefused{} },
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fetchError(ctx, err, f.timeout)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			return nil, fmt.Errorf("the metadata document answered with a redirect (HTTP %d); %w: serve it at its client_id URL", resp.StatusCode, redirectRefused{})
		}
		return nil, fmt.Errorf("the metadata document could not be fetched: HTTP %d", resp.StatusCode)
	}
	if resp.ContentLength > maxClientMetadataBytes {
		return nil, fmt.Errorf("the metadata document is larger than %d bytes", maxClientMetadataBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxClientMetadataBytes+1))
	if err != nil {
		return nil, fetchError(ctx, err, f.timeout)
	}
	if len(body) > maxClientMetadataBytes {
		return nil, fmt.Errorf("the metadata document is larger than %d bytes", maxClientMetadataBytes)
	}
	c, err := clientFromMetadata(id, body)
	if err != nil {
		return nil, err
	}
	now := s.now()
	c.issuedAt = now
	c.metadata = &metadataDoc{fetched: true, expires: now.Add(metadataTTL(resp.Header))}
	return c, nil
}

// fetchError words a failed fetch: too slow, redirected, or unreachable.
func fetchError(ctx context.Context, err error, timeout time.Duration) error {
	switch {
	case errors.As(err, new(redirectRefused)):
		return fmt.Errorf("the metadata document answered with a redirect; %w: serve it at its client_id URL", redirectRefused{})
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("the metadata document was not fetched within %s", timeout)
	}
	return errors.New("the metadata document could not be fetched")
}

// clientFromMetadata validates a fetched document as the MCP specification
// and the CIMD draft require and returns the public client it describes.
func clientFromMetadata(id string, body []byte) (*client, error) {
	var object map[string]json.RawMessage
	if err := json.Unmarshal(body, &object); err != nil || object == nil {
		return nil, errors.New("the metadata document is not a JSON object")
	}
	var doc metadataDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("the metadata document is not valid client metadata: %w", err)
	}
	switch {
	case doc.ClientID == nil:
		return nil, errors.New("the metadata document has no client_id")
	case *doc.ClientID != id:
		return nil, fmt.Errorf("the metadata document's client_id %q is not its URL %q", *doc.ClientID, id)
	case doc.ClientName == nil || *doc.ClientName == "":
		return nil, errors.New("the metadata document has no client_name")
	case len(*doc.ClientName) > 256:
		return nil, errors.New("the metadata document's client_name is longer than 256 characters")
	case len(doc.RedirectURIs) == 0:
		return nil, errors.New("the metadata document has no redirect_uris")
	case doc.ClientSecret != nil || doc.ClientSecretExpiresAt != nil:
		return nil, errors.New("the metadata document must not contain client_secret or client_secret_expires_at: it is public")
	}
	for _, u := range doc.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return nil, fmt.Errorf("the metadata document's redirect URI %q %w", u, err)
		}
	}
	if m := doc.TokenEndpointAuthMethod; m != nil && *m != authNone {
		if strings.HasPrefix(*m, "client_secret_") {
			return nil, fmt.Errorf("the metadata document's token_endpoint_auth_method %s needs a shared secret, which a metadata document cannot carry; use none", *m)
		}
		return nil, fmt.Errorf("the metadata document's token_endpoint_auth_method %s is not supported; use none", *m)
	}
	for _, g := range doc.GrantTypes {
		if !slices.Contains([]string{"authorization_code", "refresh_token"}, g) {
			return nil, fmt.Errorf("the metadata document's grant type %s is not supported", g)
		}
	}
	for _, rt := range doc.ResponseTypes {
		if rt != "code" {
			return nil, fmt.Errorf("the metadata document's response type %s is not supported", rt)
		}
	}
	c := &client{id: id, name: *doc.ClientName, redirectURIs: slices.Clone(doc.RedirectURIs), authMethod: authNone}
	if doc.ClientURI != nil {
		c.clientURI = *doc.ClientURI
	}
	if doc.LogoURI != nil {
		c.logoURI = *doc.LogoURI
	}
	return c, nil
}

// metadataTTL reads how long a document may be used from its response's
// Cache-Control: no-store or no-cache mean fetch again next time, max-age
// is honoured up to a day, and without either the document is kept for a
// few minutes.
func metadataTTL(h http.Header) time.Duration {
	ttl := clientMetadataTTL
	for _, directive := range strings.Split(h.Get("Cache-Control"), ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return 0
		case "max-age":
			if secs, err := strconv.Atoi(strings.Trim(value, `"`)); err == nil && secs >= 0 {
				ttl = min(time.Duration(secs)*time.Second, maxClientMetadataTTL)
			}
		}
	}
	return ttl
}

// admittedLocked reports whether the settings admit a recorded metadata
// document client: CIMD must be advertised, and an implicitly allowed client
// is refused once block_implicitly_allowed_clients is on. s.mu must be held.
func (s *Server) admittedLocked(c *client) bool {
	if !s.settings.ClientIDMetadataDocumentsAdvertised {
		return false
	}
	return c.metadata.explicit || !s.settings.ClientIDMetadataDocumentsBlockImplicitlyAllowedClients
}

// authorizeClient finds the client of an authorization request. A URL
// client_id is a metadata document client: refused as unknown unless the
// instance advertises CIMD, refused when new while only pre-registered
// clients are allowed, and refused when implicitly allowed while those are
// blocked; otherwise its document is fetched unless a cached copy is fresh,
// and it is recorded. Every refusal is 401 invalid_client, answered
// directly since the redirect URI cannot be trusted.
func (s *Server) authorizeClient(ctx context.Context, id string) (*client, *oauthErr) {
	unknown := unauthorized("invalid_client", "the client is not registered with this instance")
	if !isURLClientID(id) {
		if c := s.lookupClient(id); c != nil {
			return c, nil
		}
		return nil, unknown
	}
	s.mu.Lock()
	settings, known := s.settings.clone(), s.clients[id]
	s.mu.Unlock()
	switch {
	case !settings.ClientIDMetadataDocumentsAdvertised:
		return nil, unknown
	case known == nil && settings.ClientIDMetadataDocumentsOnlyAllowPreRegisteredClients:
		return nil, unauthorized("invalid_client", "this instance accepts client metadata documents only from pre-registered clients")
	case known != nil && !known.metadata.explicit && settings.ClientIDMetadataDocumentsBlockImplicitlyAllowedClients:
		return nil, unauthorized("invalid_client", "this instance no longer accepts clients it has not explicitly allowed")
	case known != nil && known.metadata.fetched && s.now().Before(known.metadata.expires):
		return known, nil
	}
	c, err := s.fetchClientMetadata(ctx, id)
	if err != nil {
		return nil, unauthorized("invalid_client", err.Error())
	}
	c.metadata.explicit = known != nil && known.metadata.explicit
	s.mu.Lock()
	defer s.mu.Unlock()
	// NOTE: clients are replaced, never changed in place, so that a request
	// holding the old record never races with this one.
	s.clients[id] = c
	return c, nil
}

// AllowClientMetadataDocument pre-registers a metadata document client by
// its client_id URL, as an administrator would: an explicitly allowed
// client, admitted while only pre-registered clients are allowed and while
// implicitly allowed ones are blocked. Its document is still fetched, and
// checked, at its first authorization request.
func (s *Server) AllowClientMetadataDocument(clientID string) error {
	if !isURLClientID(clientID) {
		return fmt.Errorf("clerktest: %q is not a client_id URL", clientID)
	}
	if err := s.metadata.checkURL(clientID); err != nil {
		return fmt.Errorf("clerktest: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := &client{id: clientID, name: clientID, authMethod: authNone, issuedAt: s.now(), metadata: &metadataDoc{}}
	if old := s.clients[clientID]; old != nil {
		copied := *old
		next = &copied
	}
	meta := *next.metadata
	meta.explicit = true
	next.metadata = &meta
	s.clients[clientID] = next
	return nil
}

// DeleteClient removes a client, as deleting an OAuth application in the
// Clerk Dashboard does; a metadata document client becomes unknown again
// (new, as far as the settings are concerned). Tokens already issued are
// not revoked. It reports whether the client existed.
func (s *Server) DeleteClient(clientID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.clients[clientID]
	delete(s.clients, clientID)
	return ok
}
