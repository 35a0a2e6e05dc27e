package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"
)

// ServingCertificate serves the broker's certificate and key from files (a
// mounted kubernetes.io/tls Secret), re-reading them when either changes, so
// a renewed certificate is served without a restart. A pair that fails to
// load keeps the last good one in service.
type ServingCertificate struct {
	certFile, keyFile string

	mu       sync.Mutex
	certSeen os.FileInfo
	keySeen  os.FileInfo
	cert     *tls.Certificate
}

// NewServingCertificate loads the pair once, so that a broker with no usable
// certificate fails at start rather than at its first handshake.
func NewServingCertificate(certFile, keyFile string) (*ServingCertificate, error) {
	s := &ServingCertificate{certFile: certFile, keyFile: keyFile}
	if _, err := s.current(); err != nil {
		return nil, err
	}
	return s, nil
}

// TLSConfig is the broker's server configuration: TLS 1.2 at least, HTTP/2
// and HTTP/1.1, the certificate from the files.
func (s *ServingCertificate) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.current()
		},
	}
}

// current returns the pair, re-read when a file's identity, size or
// modification time changed since the last good read.
func (s *ServingCertificate) current() (*tls.Certificate, error) {
	ci, cerr := os.Stat(s.certFile)
	ki, kerr := os.Stat(s.keyFile)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := errors.Join(cerr, kerr); err != nil {
		if s.cert != nil {
			return s.cert, nil
		}
		return nil, fmt.Errorf("read serving certificate: %w", err)
	}
	if s.cert != nil && sameFile(s.certSeen, ci) && sameFile(s.keySeen, ki) {
		return s.cert, nil
	}
	// NOTE: during a Secret update the two files can briefly disagree; the
	// pair then fails to load, the last good one is served, and the next
	// handshake tries again.
	pair, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		if s.cert != nil {
			return s.cert, nil
		}
		// LoadX509KeyPair's errors name no key material.
		return nil, fmt.Errorf("load serving certificate %s: %w", s.certFile, err)
	}
	s.cert, s.certSeen, s.keySeen = &pair, ci, ki
	return s.cert, nil
}

func sameFile(a, b os.FileInfo) bool {
	return a != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}
