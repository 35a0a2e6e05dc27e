// Package brokertest serves a real Clerk key broker (broker.Server) over TLS
// for tests of its clients, as clerktest serves a Clerk instance: under a CA
// of its own, with a CA bundle file and a ServiceAccount token file written
// where a gateway reads them, one caller resolving to one emulated Clerk
// instance, and requests counted per endpoint. A test can stop and restart
// it on the same address, rotate its CA and serving certificate, and read
// everything it logged.
package brokertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpgate/mcpgate/broker"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/internal/syncbuf"
)

// TB is what the package needs of its caller: a *testing.T or *testing.B,
// or a benchmark driver's stand-in (hack/bench serves a broker outside any
// test). Fatalf must not return.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	TempDir() string
	Cleanup(func())
}

// DefaultCaller is the ServiceAccount the broker's token file speaks for.
var DefaultCaller = broker.Caller{Namespace: "team-a", Name: "tools-gateway"}

// Broker is a broker.Server served over TLS on loopback, answering for one
// caller about one emulated Clerk instance.
type Broker struct {
	// Server is the broker itself; its Registry holds its metrics.
	Server *broker.Server
	// Resolver maps callers to instances; Set(Caller, nil) takes the
	// caller's instance away (the broker then refuses it, 403).
	Resolver *broker.StaticResolver
	// Caller is the ServiceAccount TokenFile's token authenticates as.
	Caller broker.Caller
	// URL is the broker's base URL; it names the host "localhost", so that
	// clients send SNI, and stays the same across Stop and Start.
	URL string
	// CAFile is the PEM bundle of the broker's current CA, as the operator
	// hands it to gateways; RotateCA replaces it.
	CAFile string
	// TokenFile holds Caller's ServiceAccount token.
	TokenFile string

	t    TB
	addr string
	logs *syncbuf.Buffer

	cert atomic.Pointer[tls.Certificate]
	ca   atomic.Pointer[authority]

	mu    sync.Mutex
	srv   *http.Server
	conns map[net.Conn]struct{}
	calls map[string]int
}

// authority is a CA the broker's serving certificates chain to.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// Start serves a broker for em's instance, for the test's lifetime.
func Start(t TB, em *clerktest.Server) *Broker {
	t.Helper()
	dir := t.TempDir()
	token := randomToken(t)
	b := &Broker{
		Resolver:  broker.NewStaticResolver(nil),
		Caller:    DefaultCaller,
		CAFile:    filepath.Join(dir, "broker-ca.crt"),
		TokenFile: filepath.Join(dir, "token"),
		t:         t,
		logs:      &syncbuf.Buffer{},
		conns:     map[net.Conn]struct{}{},
		calls:     map[string]int{},
	}
	b.Resolver.Set(b.Caller, &broker.Instance{
		ID:            b.Caller.String(),
		Issuer:        em.FrontendAPIURL(),
		BackendAPIURL: em.BackendAPIURL(),
		KeyRef:        b.Caller.Namespace + "/clerk/secret-key",
		SecretKey:     func(context.Context) (string, error) { return em.SecretKey(), nil },
	})
	logger := slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := broker.NewServer(broker.Options{
		Authenticator: staticAuth{token: b.Caller},
		Resolver:      b.Resolver,
		Logger:        logger,
	})
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	b.Server = s
	writeFile(t, b.TokenFile, []byte(token+"\n"))
	b.RotateCA()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("brokertest: listen: %v", err)
	}
	b.addr = ln.Addr().String()
	_, port, _ := net.SplitHostPort(b.addr)
	b.URL = "https://localhost:" + port
	b.serve(ln)
	t.Cleanup(b.Stop)
	return b
}

// Calls is how many requests reached the broker's handler for path (such
// as broker.PathVerify), whatever their answer.
func (b *Broker) Calls(path string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[path]
}

// TotalCalls is how many requests reached the broker's handler.
func (b *Broker) TotalCalls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.calls {
		n += c
	}
	return n
}

// Logs is everything the broker logged, at debug level, as JSON lines.
func (b *Broker) Logs() string { return b.logs.String() }

// Stop closes the listener and every connection, as a broker pod going
// away does: clients then fail to connect.
func (b *Broker) Stop() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Restart serves again on the same address after Stop, with the same
// state (its caches included), as a broker pod back behind its Service.
func (b *Broker) Restart() {
	b.t.Helper()
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		b.t.Fatalf("brokertest: listen again on %s: %v", b.addr, err)
	}
	b.serve(ln)
}

// RotateCA makes a new CA and a serving certificate under it, serves that
// certificate, replaces CAFile atomically (as the kubelet updates a
// ConfigMap volume), and closes open connections, so the next request
// makes a handshake a client trusting only the old CA would fail.
func (b *Broker) RotateCA() {
	b.t.Helper()
	ca := newAuthority(b.t)
	cert := ca.serving(b.t)
	b.ca.Store(ca)
	b.cert.Store(&cert)
	writeFile(b.t, b.CAFile, ca.pem)
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.conns {
		_ = c.Close()
	}
}

// CAPEM is the current CA bundle.
func (b *Broker) CAPEM() []byte { return b.ca.Load().pem }

func (b *Broker) serve(ln net.Listener) {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.mu.Lock()
			b.calls[r.URL.Path]++
			b.mu.Unlock()
			b.Server.ServeHTTP(w, r)
		}),
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return b.cert.Load(), nil
			},
		},
		ConnState: func(c net.Conn, s http.ConnState) {
			b.mu.Lock()
			defer b.mu.Unlock()
			switch s {
			case http.StateNew:
				b.conns[c] = struct{}{}
			case http.StateClosed, http.StateHijacked:
				delete(b.conns, c)
			}
		},
		ReadHeaderTimeout: 10 * time.Second,
		// Handshakes the tests fail on purpose (an untrusted CA) are noise.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go func() {
		// ServeTLS sets up HTTP/2 and HTTP/1.1, as the broker serves them.
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.t.Errorf("brokertest: serve: %v", err)
		}
	}()
}

// staticAuth authenticates one fixed ServiceAccount token.
type staticAuth map[string]broker.Caller

func (a staticAuth) Authenticate(_ context.Context, token string) (broker.Caller, error) {
	c, ok := a[token]
	if !ok {
		return broker.Caller{}, broker.ErrUnauthenticated
	}
	return c, nil
}

// newAuthority makes a self-signed CA valid for an hour around now.
func newAuthority(t TB) *authority {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "mcpgate brokertest CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	key, der := issue(t, tmpl, nil, nil)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	return &authority{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// serving issues a serving certificate for localhost and 127.0.0.1.
func (ca *authority) serving(t TB) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: "mcpgate-broker"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	key, der := issue(t, tmpl, ca.cert, ca.key)
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key}
}

// issue makes a P-256 key and a certificate of tmpl for it, signed by
// parent's key, or self-signed when parent is nil.
func issue(t TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	return key, der
}

func serial(t TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	return n
}

// randomToken is a ServiceAccount token stand-in, unique per broker, so a
// test can look for it in what a client said.
func randomToken(t TB) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	return "sa-token-" + hex.EncodeToString(b[:])
}

// writeFile replaces path atomically, as the kubelet updates a volume.
func writeFile(t TB, path string, content []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, content, 0o600); err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("brokertest: %v", err)
	}
}
