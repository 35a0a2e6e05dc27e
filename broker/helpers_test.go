package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/internal/syncbuf"
)

// testCA is a certificate authority a test makes, and the files a client
// reads it from.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// newTestCA makes a self-signed CA valid for an hour around now.
func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mcpgate broker test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// serving issues a serving certificate for 127.0.0.1 and localhost.
func (ca *testCA) serving(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "mcpgate-broker"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key}
}

// writeFile writes content to a new file in the test's directory.
func writeFile(t testing.TB, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsBroker is a broker served over TLS (HTTP/1.1 and HTTP/2), as the
// operator will serve it.
type tlsBroker struct {
	*Server
	srv    *httptest.Server
	ca     *testCA
	caFile string
	// url names the broker by host name, so that clients send SNI.
	url string
	// cert is the serving certificate; swap it to rotate.
	cert atomic.Pointer[tls.Certificate]
	// logs holds everything the broker logged, at debug level.
	logs *syncbuf.Buffer
	// protos counts requests by protocol ("HTTP/2.0"...).
	mu     sync.Mutex
	protos map[string]int
}

// startBroker serves a broker with auth and resolver, under a new CA.
func startBroker(t testing.TB, auth Authenticator, res Resolver) *tlsBroker {
	t.Helper()
	logs := &syncbuf.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := NewServer(Options{Authenticator: auth, Resolver: res, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	b := &tlsBroker{Server: s, ca: newTestCA(t), protos: map[string]int{}, logs: logs}
	cert := b.ca.serving(t)
	b.cert.Store(&cert)
	b.caFile = writeFile(t, "ca.pem", b.ca.pem)
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.protos[r.Proto]++
		b.mu.Unlock()
		s.ServeHTTP(w, r)
	}))
	b.srv.EnableHTTP2 = true
	// NOTE: with SNI (the client dials "localhost"), GetCertificate wins
	// over Certificates, which only keeps httptest from putting its own in.
	b.srv.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return b.cert.Load(), nil
		},
	}
	b.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes the tests fail on purpose
	b.srv.StartTLS()
	b.url = strings.Replace(b.srv.URL, "127.0.0.1", "localhost", 1)
	t.Cleanup(b.srv.Close)
	return b
}

// client returns a broker client presenting the ServiceAccount token in
// tokenFile and trusting caFile.
func (b *tlsBroker) client(t testing.TB, tokenFile, caFile string) *Client {
	t.Helper()
	c, err := NewClient(ClientOptions{URL: b.url, TokenFile: tokenFile, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// staticAuth authenticates fixed tokens, for tests that are not about
// authentication; unknown tokens are refused, and failing tokens fail.
type staticAuth map[string]Caller

func (a staticAuth) Authenticate(_ context.Context, token string) (Caller, error) {
	if token == "fail" {
		return Caller{}, errors.New("api server unreachable")
	}
	c, ok := a[token]
	if !ok {
		return Caller{}, ErrUnauthenticated
	}
	return c, nil
}

// instanceOf describes an emulator as the instance of a broker caller.
func instanceOf(id string, em *clerktest.Server) *Instance {
	return &Instance{
		ID:            id,
		Issuer:        em.FrontendAPIURL(),
		BackendAPIURL: em.BackendAPIURL(),
		KeyRef:        id + "/clerk/secret-key",
		SecretKey: func(context.Context) (string, error) {
			return em.SecretKey(), nil
		},
	}
}

// newEmulator starts a Clerk emulator for one test.
func newEmulator(t testing.TB, opts ...clerktest.Option) *clerktest.Server {
	t.Helper()
	em := clerktest.NewServer(opts...)
	t.Cleanup(em.Close)
	return em
}

// mint mints an access token on em.
func mint(t testing.TB, em *clerktest.Server, req clerktest.TokenRequest) string {
	t.Helper()
	tok, err := em.MintAccessToken(req)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// errorClass names the clerk error value err stands for, for tables.
func errorClass(err error) string {
	var ie *clerk.InvalidTokenError
	var ue *clerk.UnavailableError
	switch {
	case err == nil:
		return "none"
	case errors.As(err, &ie):
		return "invalid_token"
	case errors.As(err, &ue):
		return "unavailable"
	case errors.Is(err, clerk.ErrUserNotFound):
		return "user_not_found"
	case errors.Is(err, clerk.ErrNotConnected):
		return "not_connected"
	case errors.Is(err, clerk.ErrTooManyMemberships):
		return "too_many_memberships"
	default:
		return "other"
	}
}
