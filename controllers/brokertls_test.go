package controllers

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// testBrokerPolicy is the default policy for the broker Service the tests
// use.
func testBrokerPolicy(t *testing.T) brokerTLSPolicy {
	t.Helper()
	names, ips, err := brokerServingNames("https://mcpgate-broker.mcpgate-system.svc:8443", "mcpgate-system")
	if err != nil {
		t.Fatal(err)
	}
	return brokerTLSPolicy{dnsNames: names, ips: ips}.withDefaults()
}

// mustPlan plans at now and fails the test on an error.
func mustPlan(t *testing.T, cur brokerTLSMaterial, now time.Time, p brokerTLSPolicy) brokerTLSPlan {
	t.Helper()
	plan, err := planBrokerTLS(cur, now, p)
	if err != nil {
		t.Fatalf("plan at %s: %v", now, err)
	}
	return plan
}

// servingLeaf parses the serving pair, failing the test when the
// certificate does not match its key.
func servingLeaf(t *testing.T, m brokerTLSMaterial) *x509.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(m.cert, m.key)
	if err != nil {
		t.Fatalf("the serving certificate and key do not pair: %v", err)
	}
	return pair.Leaf
}

// verifyServing checks that the serving certificate in m chains, at now and
// for host, to a CA of bundle: what a gateway holding bundle does on each
// handshake.
func verifyServing(t *testing.T, m brokerTLSMaterial, bundle []byte, now time.Time, host string) error {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		t.Fatal("the bundle holds no certificate")
	}
	_, err := servingLeaf(t, m).Verify(x509.VerifyOptions{
		Roots: roots, CurrentTime: now, DNSName: host,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

// advance runs the plan every six hours from from to to, as the controller
// would, and returns what the Secrets then hold.
func advance(t *testing.T, cur brokerTLSMaterial, from, to time.Time, p brokerTLSPolicy) brokerTLSMaterial {
	t.Helper()
	for now := from; now.Before(to); now = now.Add(6 * time.Hour) {
		cur = mustPlan(t, cur, now, p).material
	}
	return cur
}

func changeReasons(p brokerTLSPlan) []string {
	var out []string
	for _, c := range p.changes {
		out = append(out, c.reason)
	}
	return out
}

func TestBrokerServingNames(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		url, namespace string
		wantDNS        []string
		wantIPs        []net.IP
	}{
		"service url": {
			url: "https://mcpgate-broker.mcpgate-system.svc:8443", namespace: "mcpgate-system",
			wantDNS: []string{"mcpgate-broker.mcpgate-system.svc", "mcpgate-broker", "mcpgate-broker.mcpgate-system", "mcpgate-broker.mcpgate-system.svc.cluster.local"},
		},
		"service of another namespace in the url": {
			url: "https://broker.platform.svc.cluster.local", namespace: "mcpgate-system",
			wantDNS: []string{"broker.platform.svc.cluster.local", "broker", "broker.platform", "broker.platform.svc"},
		},
		"short name": {
			url: "https://mcpgate-broker:8443", namespace: "ops",
			wantDNS: []string{"mcpgate-broker", "mcpgate-broker.ops", "mcpgate-broker.ops.svc", "mcpgate-broker.ops.svc.cluster.local"},
		},
		"ip address": {url: "https://127.0.0.1:8443", namespace: "ops", wantIPs: []net.IP{net.ParseIP("127.0.0.1")}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dns, ips, err := brokerServingNames(tc.url, tc.namespace)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(dns, tc.wantDNS) || !slices.Equal(ipStrings(ips), ipStrings(tc.wantIPs)) {
				t.Errorf("names = %v %v, want %v %v", dns, ips, tc.wantDNS, tc.wantIPs)
			}
		})
	}
}

// TestPlanBrokerTLS steps through the life of the broker's certificates:
// each case starts from the material a plan made earlier (at) and plans
// again later (after).
func TestPlanBrokerTLS(t *testing.T) {
	t.Parallel()
	p := testBrokerPolicy(t)
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	fresh := mustPlan(t, brokerTLSMaterial{}, t0, p)
	caRenewal := t0.Add(-certBackdate).Add((p.caLifetime + certBackdate) * 2 / 3)
	// lived has renewed its serving certificate every 60 days since t0.
	lived := advance(t, fresh.material, t0, caRenewal.Add(-time.Hour), p)
	rotated := mustPlan(t, lived, caRenewal.Add(time.Hour), p)
	otherNames := p
	otherNames.dnsNames = []string{"broker.example"}
	// With serving certificates of 200 days, the one issued by the second
	// CA is still fresh when the first CA expires.
	long := p
	long.servingLifetime = 200 * day
	longRotated := mustPlan(t, mustPlan(t, brokerTLSMaterial{}, t0, long).material, caRenewal.Add(time.Hour), long)

	tests := map[string]struct {
		cur    brokerTLSMaterial
		now    time.Time
		policy brokerTLSPolicy
		// wantChanges are the reasons of what the plan does, in order.
		wantChanges []string
		// wantCAs is how many CAs the bundle then holds.
		wantCAs int
		// keepsCert: the serving certificate stays as it was.
		keepsCert bool
		// signedByNewest: the serving certificate is signed by the newest CA.
		signedByNewest bool
	}{
		"nothing yet": {
			now: t0, wantChanges: []string{eventReasonBrokerCAIssued, eventReasonBrokerServingIssued}, wantCAs: 1, signedByNewest: true,
		},
		"before the serving certificate's renewal nothing changes": {
			cur: fresh.material, now: t0.Add(59 * day), wantCAs: 1, keepsCert: true, signedByNewest: true,
		},
		"at 2/3 of its lifetime the serving certificate is renewed by the same CA": {
			cur: fresh.material, now: t0.Add(61 * day), wantChanges: []string{eventReasonBrokerServingIssued}, wantCAs: 1, signedByNewest: true,
		},
		"at 2/3 of the CA's lifetime a new CA joins the bundle and the old one's certificate is still served": {
			cur: lived, now: caRenewal.Add(time.Hour), wantChanges: []string{eventReasonBrokerCAIssued}, wantCAs: 2, keepsCert: true,
		},
		"while the new CA is handed over nothing changes": {
			cur: rotated.material, now: caRenewal.Add(2 * time.Hour), wantCAs: 2, keepsCert: true,
		},
		"once handed over, the new CA signs the serving certificate; the old stays in the bundle": {
			cur: rotated.material, now: caRenewal.Add(time.Hour + p.handover + time.Minute), wantChanges: []string{eventReasonBrokerServingIssued}, wantCAs: 2, signedByNewest: true,
		},
		"the old CA leaves the bundle when it expires": {
			cur: longRotated.material, now: t0.Add(p.caLifetime + time.Minute), policy: long, wantChanges: []string{eventReasonBrokerCARemoved}, wantCAs: 1, keepsCert: true, signedByNewest: true,
		},
		"a serving certificate that expired is replaced at once, by the new CA if need be": {
			cur: fresh.material, now: caRenewal.Add(time.Hour), wantChanges: []string{eventReasonBrokerCAIssued, eventReasonBrokerServingIssued}, wantCAs: 2, signedByNewest: true,
		},
		"other names get a new serving certificate": {
			cur: fresh.material, now: t0.Add(day), policy: otherNames, wantChanges: []string{eventReasonBrokerServingIssued}, wantCAs: 1, signedByNewest: true,
		},
		"a lost CA key brings a new CA; the old one stays trusted and its certificate served until the handover": {
			cur: brokerTLSMaterial{caBundle: fresh.material.caBundle, cert: fresh.material.cert, key: fresh.material.key}, now: t0.Add(day),
			wantChanges: []string{eventReasonBrokerCAIssued}, wantCAs: 2, keepsCert: true,
		},
		"a serving key that does not match its certificate is replaced": {
			cur: brokerTLSMaterial{caBundle: fresh.material.caBundle, caKey: fresh.material.caKey, cert: fresh.material.cert, key: rotated.material.key}, now: t0.Add(day),
			wantChanges: []string{eventReasonBrokerServingIssued}, wantCAs: 1, signedByNewest: true,
		},
		"garbage is replaced": {
			cur: brokerTLSMaterial{caBundle: []byte("not pem"), caKey: []byte("nor this"), cert: []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), key: []byte("x")},
			now: t0, wantChanges: []string{eventReasonBrokerCAIssued, eventReasonBrokerServingIssued}, wantCAs: 1, signedByNewest: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			policy := tc.policy
			if policy.dnsNames == nil {
				policy = p
			}
			plan := mustPlan(t, tc.cur, tc.now, policy)
			if got := changeReasons(plan); !slices.Equal(got, tc.wantChanges) {
				t.Errorf("changes = %v, want %v", got, tc.wantChanges)
			}
			if changed := !plan.material.equal(tc.cur); changed != (len(tc.wantChanges) > 0) {
				t.Errorf("material changed = %v with changes %v", changed, changeReasons(plan))
			}
			cas := parseCertificates(plan.material.caBundle)
			if len(cas) != tc.wantCAs {
				t.Fatalf("the bundle holds %d CAs, want %d", len(cas), tc.wantCAs)
			}
			if err := verifyServing(t, plan.material, plan.material.caBundle, tc.now, policy.dnsNames[0]); err != nil {
				t.Errorf("the serving certificate does not chain to the bundle: %v", err)
			}
			if got := bytes.Equal(plan.material.cert, tc.cur.cert); got != tc.keepsCert {
				t.Errorf("serving certificate kept = %v, want %v", got, tc.keepsCert)
			}
			if got := signedBy(servingLeaf(t, plan.material), cas[len(cas)-1]); got != tc.signedByNewest {
				t.Errorf("signed by the newest CA = %v, want %v", got, tc.signedByNewest)
			}
			if signer, _ := matchCAKey(cas, plan.material.caKey); signer != cas[len(cas)-1] {
				t.Error("the CA key is not the newest CA's")
			}
			if !plan.next.After(tc.now) {
				t.Errorf("next look at %s, not after %s", plan.next, tc.now)
			}
		})
	}
}

// TestPlanBrokerTLS_overTwoYears runs the plan every six hours of a fake
// clock for two years, as the controller would, and holds it to what
// gateways need: at every moment the served certificate chains to every
// bundle written in the last 18 hours (gateways that have not seen the
// newest bundle yet still trust it), and nothing is written between due
// times.
func TestPlanBrokerTLS_overTwoYears(t *testing.T) {
	t.Parallel()
	p := testBrokerPolicy(t)
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC))
	type written struct {
		at     time.Time
		bundle []byte
	}
	var (
		cur     brokerTLSMaterial
		history []written
		next    time.Time
		counts  = map[string]int{}
	)
	const step = 6 * time.Hour
	end := clk.Now().Add(2 * 365 * 24 * time.Hour)
	for ; clk.Now().Before(end); clk.Step(step) {
		now := clk.Now()
		plan := mustPlan(t, cur, now, p)
		if !next.IsZero() && now.Before(next) && !plan.material.equal(cur) {
			t.Fatalf("%s: wrote %v before the next due time %s", now, changeReasons(plan), next)
		}
		for _, r := range changeReasons(plan) {
			counts[r]++
		}
		cur, next = plan.material, plan.next
		history = append(history, written{now, cur.caBundle})
		for _, w := range history {
			if now.Sub(w.at) > p.handover-step {
				continue
			}
			if err := verifyServing(t, cur, w.bundle, now, "mcpgate-broker.mcpgate-system.svc"); err != nil {
				t.Fatalf("%s: a gateway holding the bundle of %s distrusts the served certificate: %v", now, w.at, err)
			}
		}
	}
	// A CA at start and at each 2/3 of a year; a serving certificate about
	// every 60 days and after each CA's handover.
	if counts[eventReasonBrokerCAIssued] != 3 || counts[eventReasonBrokerCARemoved] != 2 {
		t.Errorf("CAs issued %d, removed %d; want 3 and 2", counts[eventReasonBrokerCAIssued], counts[eventReasonBrokerCARemoved])
	}
	if n := counts[eventReasonBrokerServingIssued]; n < 12 || n > 16 {
		t.Errorf("serving certificates issued %d times in two years, want about 14", n)
	}
}
