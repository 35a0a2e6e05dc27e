package controllers

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// The broker's CA and serving certificate: how long they live and how long a
// new CA sits in the gateways' bundle before it signs what the broker serves.
const (
	defaultBrokerCALifetime      = 365 * 24 * time.Hour
	defaultBrokerServingLifetime = 90 * 24 * time.Hour
	// defaultBrokerCAHandover is the time every gateway has to see a new
	// CA: the McpServer reconciles that write it into the ConfigMaps, and
	// the kubelet's refresh of the mounted files (about a minute each).
	// A day leaves room for an operator that was down for a while.
	defaultBrokerCAHandover = 24 * time.Hour
	// certBackdate is how far before its issuance a certificate is valid,
	// for clocks that lag the operator's a little.
	certBackdate = 5 * time.Minute
)

// brokerTLSPolicy says what the broker's certificates hold and when they are
// renewed.
type brokerTLSPolicy struct {
	caLifetime, servingLifetime, handover time.Duration
	// dnsNames and ips are the serving certificate's subject alternative
	// names (brokerServingNames).
	dnsNames []string
	ips      []net.IP
}

func (p brokerTLSPolicy) withDefaults() brokerTLSPolicy {
	if p.caLifetime <= 0 {
		p.caLifetime = defaultBrokerCALifetime
	}
	if p.servingLifetime <= 0 {
		p.servingLifetime = defaultBrokerServingLifetime
	}
	if p.handover <= 0 {
		p.handover = defaultBrokerCAHandover
	}
	return p
}

// brokerTLSMaterial is the PEM the broker's two Secrets hold: the TLS Secret
// (ca.crt, tls.crt, tls.key), which the broker mounts and whose ca.crt the
// gateways get, and the CA Secret (ca.key), which only the operator reads.
type brokerTLSMaterial struct {
	caBundle  []byte // every CA the gateways trust, oldest first
	caKey     []byte // the private key of the newest CA, which signs
	cert, key []byte // the serving certificate and its key
}

// equal tells whether m and o hold the same bytes.
func (m brokerTLSMaterial) equal(o brokerTLSMaterial) bool {
	return bytes.Equal(m.caBundle, o.caBundle) && bytes.Equal(m.caKey, o.caKey) &&
		bytes.Equal(m.cert, o.cert) && bytes.Equal(m.key, o.key)
}

// brokerTLSChange is one thing a plan renewed or removed, for an Event and a
// log line. It names certificates by subject, serial and expiry, never by
// anything secret.
type brokerTLSChange struct{ reason, message string }

// Event reasons of the broker's certificates.
const (
	eventReasonBrokerCAIssued      = "BrokerCAIssued"
	eventReasonBrokerCARemoved     = "BrokerCARemoved"
	eventReasonBrokerServingIssued = "BrokerCertificateIssued"
)

// brokerTLSPlan is what the Secrets should hold at one time, and when to
// look again.
type brokerTLSPlan struct {
	material brokerTLSMaterial
	changes  []brokerTLSChange
	next     time.Time
}

// planBrokerTLS is what the broker's Secrets should hold at now, given what
// they hold (cur, possibly empty or damaged). It is the whole rotation
// policy, and pure but for the randomness of new keys:
//
//   - the CAs in the bundle are those not yet expired; the newest, whose key
//     the CA Secret holds, signs. When it reaches 2/3 of its lifetime (or its
//     key is lost) a new CA joins the bundle; the old one stays until it
//     expires, so every certificate it signed stays trusted;
//   - the serving certificate is renewed at 2/3 of its lifetime, when its
//     names differ from the policy's, when it no longer chains to a CA of the
//     bundle, and when a newer CA has settled: been in the bundle for the
//     handover time, so that every gateway trusts it before the broker
//     serves a certificate it signed. Until then a renewal waits, since the
//     current certificate has a third of its lifetime left.
func planBrokerTLS(cur brokerTLSMaterial, now time.Time, p brokerTLSPolicy) (brokerTLSPlan, error) {
	p = p.withDefaults()
	var plan brokerTLSPlan
	parsed := parseCertificates(cur.caBundle)
	var cas []*x509.Certificate
	for _, c := range parsed {
		if !c.IsCA {
			continue
		}
		if !now.Before(c.NotAfter) {
			plan.changes = append(plan.changes, brokerTLSChange{eventReasonBrokerCARemoved,
				fmt.Sprintf("Removed expired broker CA %s from the bundle", describeCert(c))})
			continue
		}
		cas = append(cas, c)
	}

	signer, signerKey := matchCAKey(cas, cur.caKey)
	caKeyPEM := cur.caKey
	if signer == nil || !now.Before(renewalTime(signer)) {
		var err error
		signer, signerKey, err = newBrokerCA(now, p.caLifetime)
		if err != nil {
			return plan, err
		}
		if caKeyPEM, err = encodeKey(signerKey); err != nil {
			return plan, err
		}
		cas = append(cas, signer)
		plan.changes = append(plan.changes, brokerTLSChange{eventReasonBrokerCAIssued,
			fmt.Sprintf("Issued broker CA %s; the bundle holds %d CA(s)", describeCert(signer), len(cas))})
	}
	settleAt := signer.NotBefore.Add(certBackdate + p.handover)
	settled := len(cas) == 1 || !now.Before(settleAt)

	cert, keyPEM := cur.cert, cur.key
	leaf := usableServingCert(cur.cert, cur.key, cas, now, p)
	if leaf == nil || (settled && (!signedBy(leaf, signer) || !now.Before(renewalTime(leaf)))) {
		var err error
		leaf, cert, keyPEM, err = newBrokerServingCert(now, p, signer, signerKey)
		if err != nil {
			return plan, err
		}
		plan.changes = append(plan.changes, brokerTLSChange{eventReasonBrokerServingIssued,
			fmt.Sprintf("Issued broker serving certificate %s for %s, signed by %s", describeCert(leaf), strings.Join(sanNames(leaf), ", "), signer.Subject.CommonName)})
	}

	sort.SliceStable(cas, func(i, j int) bool { return cas[i].NotBefore.Before(cas[j].NotBefore) })
	var bundle bytes.Buffer
	for _, c := range cas {
		_ = pem.Encode(&bundle, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	plan.material = brokerTLSMaterial{caBundle: bundle.Bytes(), caKey: caKeyPEM, cert: cert, key: keyPEM}

	// Look again at the next moment something is due.
	due := []time.Time{renewalTime(signer), renewalTime(leaf), leaf.NotAfter}
	if !settled {
		due = append(due, settleAt)
	}
	for _, c := range cas {
		due = append(due, c.NotAfter)
	}
	for _, t := range due {
		if t.After(now) && (plan.next.IsZero() || t.Before(plan.next)) {
			plan.next = t
		}
	}
	return plan, nil
}

// renewalTime is when a certificate is renewed: at 2/3 of its lifetime.
func renewalTime(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

// usableServingCert is the serving certificate in certPEM if the broker can
// keep serving it at now: it matches its key, chains to one of cas, and holds
// exactly the policy's names. Otherwise nil.
func usableServingCert(certPEM, keyPEM []byte, cas []*x509.Certificate, now time.Time, p brokerTLSPolicy) *x509.Certificate {
	if len(certPEM) == 0 || len(keyPEM) == 0 {
		return nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil || pair.Leaf == nil {
		return nil
	}
	leaf := pair.Leaf
	roots := x509.NewCertPool()
	for _, c := range cas {
		roots.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil
	}
	if !slices.Equal(sortedCopy(leaf.DNSNames), sortedCopy(p.dnsNames)) || !slices.Equal(ipStrings(leaf.IPAddresses), ipStrings(p.ips)) {
		return nil
	}
	return leaf
}

// matchCAKey finds the CA of cas whose private key keyPEM holds.
func matchCAKey(cas []*x509.Certificate, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, nil
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, nil
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil
	}
	for i := len(cas) - 1; i >= 0; i-- {
		if pub, ok := cas[i].PublicKey.(*ecdsa.PublicKey); ok && pub.Equal(&key.PublicKey) {
			return cas[i], key
		}
	}
	return nil, nil
}

func signedBy(leaf, ca *x509.Certificate) bool {
	return bytes.Equal(leaf.RawIssuer, ca.RawSubject) && leaf.CheckSignatureFrom(ca) == nil
}

// newBrokerCA is a fresh ECDSA P-256 CA, valid from now for lifetime.
func newBrokerCA(now time.Time, lifetime time.Duration) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate broker ca key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// Each CA has a subject of its own, so that a certificate's issuer
		// names exactly one CA of the bundle.
		Subject:               pkix.Name{CommonName: "mcpgate-broker-ca@" + now.UTC().Format("20060102T150405Z"), Organization: []string{"mcpgate"}},
		NotBefore:             now.Add(-certBackdate),
		NotAfter:              now.Add(lifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create broker ca certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse broker ca certificate: %w", err)
	}
	return cert, key, nil
}

// newBrokerServingCert is a fresh serving certificate for the policy's
// names, signed by ca, never outliving it.
func newBrokerServingCert(now time.Time, p brokerTLSPolicy, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (*x509.Certificate, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate broker serving key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, nil, err
	}
	notAfter := now.Add(p.servingLifetime)
	if ca.NotAfter.Before(notAfter) {
		notAfter = ca.NotAfter
	}
	cn := "mcpgate-broker"
	if len(p.dnsNames) > 0 {
		cn = p.dnsNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"mcpgate"}},
		NotBefore:    now.Add(-certBackdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     p.dnsNames,
		IPAddresses:  p.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create broker serving certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parse broker serving certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return leaf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate certificate serial: %w", err)
	}
	return serial, nil
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		// The error of MarshalPKCS8PrivateKey names the key's type only.
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseCertificates reads every certificate of a PEM bundle, skipping what
// does not parse.
func parseCertificates(data []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

// describeCert names a certificate in messages: subject, serial, expiry.
func describeCert(c *x509.Certificate) string {
	return fmt.Sprintf("%s (serial %s, valid until %s)", c.Subject.CommonName, c.SerialNumber.Text(16), c.NotAfter.UTC().Format(time.RFC3339))
}

func sanNames(c *x509.Certificate) []string {
	return append(slices.Clone(c.DNSNames), ipStrings(c.IPAddresses)...)
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return out
}

// bundleHash fingerprints a CA bundle, for the annotation that tells the
// McpServer reconciler a bundle changed without holding its bytes.
func bundleHash(bundle []byte) string {
	sum := sha256.Sum256(bundle)
	return hex.EncodeToString(sum[:16])
}

// brokerServingNames are the names the broker's serving certificate holds:
// the host of brokerURL and, when that is a Service name (its first label),
// the Service's in-cluster names in its namespace (the second label when the
// host is <service>.<namespace>.svc…, otherwise namespace). An IP address
// host is the certificate's one IP address.
func brokerServingNames(brokerURL, namespace string) ([]string, []net.IP, error) {
	u, err := url.Parse(brokerURL)
	if err != nil || u.Hostname() == "" {
		return nil, nil, errors.New("broker url has no host")
	}
	host := strings.ToLower(u.Hostname())
	if ip := net.ParseIP(host); ip != nil {
		return nil, []net.IP{ip}, nil
	}
	labels := strings.Split(host, ".")
	svc, ns := labels[0], namespace
	if len(labels) >= 3 && labels[2] == "svc" {
		ns = labels[1]
	}
	names := []string{host}
	if ns != "" {
		for _, n := range []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc.cluster.local"} {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names, nil, nil
}
