package broker

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// writePair writes cert's chain and key as PEM files in dir, replacing
// them by rename as the kubelet swaps a Secret's files.
func writePair(t *testing.T, dir string, cert tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	var chain []byte
	for _, der := range cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for path, data := range map[string][]byte{certFile: chain, keyFile: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})} {
		if err := os.WriteFile(path+".new", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

// TestServingCertificate serves a broker from certificate files, renews the
// certificate in place, and breaks the files.
func TestServingCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := NewServingCertificate(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")); err == nil {
		t.Fatal("NewServingCertificate without files succeeded")
	}
	first, next := newTestCA(t), newTestCA(t)
	certFile, keyFile := writePair(t, dir, first.serving(t))
	sc, err := NewServingCertificate(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		TLSConfig: sc.TLSConfig(),
		ErrorLog:  log.New(io.Discard, "", 0), // the handshake refused on purpose
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(r.Proto))
		}),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	get := func(ca *testCA) (string, error) {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca.pem)
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get("https://" + ln.Addr().String())
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		return resp.Proto, nil
	}

	steps := []struct {
		name   string
		change func()
		trust  *testCA
		wantOK bool
	}{
		{name: "first certificate", trust: first, wantOK: true},
		{name: "renewed under another CA", change: func() { writePair(t, dir, next.serving(t)) }, trust: next, wantOK: true},
		{name: "the old CA no longer matches", trust: first},
		{name: "a broken file keeps the last good pair", change: func() {
			if err := os.WriteFile(certFile, []byte("not pem"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, trust: next, wantOK: true},
		{name: "files gone: the last good pair", change: func() {
			if err := os.Remove(certFile); err != nil {
				t.Fatal(err)
			}
		}, trust: next, wantOK: true},
	}
	for _, s := range steps {
		if s.change != nil {
			s.change()
		}
		proto, err := get(s.trust)
		var verr *tls.CertificateVerificationError
		switch {
		case s.wantOK && (err != nil || proto != "HTTP/2.0"):
			t.Fatalf("%s: %q, %v; want HTTP/2.0", s.name, proto, err)
		case !s.wantOK && !errors.As(err, &verr):
			t.Fatalf("%s: error %v, want a certificate verification error", s.name, err)
		}
	}
}
