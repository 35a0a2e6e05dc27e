package clerk

import (
	"testing"
	"time"
)

// TestExpirationTime checks that expiration is read as seconds or as
// milliseconds, whichever Clerk sends.
func TestExpirationTime(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 12, 10, 0, 0, 0, time.UTC)
	f := func(v float64) *float64 { return &v }
	tests := map[string]struct {
		in   *float64  // the JSON number
		want time.Time // its reading
	}{
		"null":                  {nil, time.Time{}},
		"seconds":               {f(float64(at.Unix())), at},
		"milliseconds":          {f(float64(at.UnixMilli())), at},
		"fractional seconds":    {f(float64(at.Unix()) + 0.5), at.Add(500 * time.Millisecond)},
		"spec example (2024)":   {f(1716883200), time.Unix(1716883200, 0)},
		"zero is the epoch":     {f(0), time.Unix(0, 0)},
		"negative is the epoch": {f(-5), time.Unix(0, 0)},
		"year 5000 in seconds":  {f(95617584000), time.Unix(95617584000, 0)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := expirationTime(tc.in); !got.Equal(tc.want) {
				t.Errorf("expirationTime = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestVerifier_opaqueVerdict checks how each shape of a 200 answer is
// judged, including shapes the emulator does not produce.
func TestVerifier_opaqueVerdict(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	now := clock.Now()
	v, err := NewVerifier(VerifierOptions{Issuer: testIssuer, BackendAPIURL: "http://127.0.0.1:1/v1", SecretKey: staticKey("sk"), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f := func(v float64) *float64 { return &v }
	no := false
	base := verifyResponse{Object: opaqueObject, ID: "oat_x", ClientID: "client_x", Subject: "user_x", Scopes: []string{"email"}}
	tests := map[string]struct {
		resp      func(r verifyResponse) verifyResponse // changes from base
		reason    string                                // InvalidTokenError reason; "" with !fails: valid
		fails     bool                                  // an error that is not a verdict
		wantUntil time.Time                             // cache expiry of a positive verdict
	}{
		"good, no expiration":   {resp: func(r verifyResponse) verifyResponse { return r }, wantUntil: now.Add(DefaultOpaqueCacheTTL)},
		"good, expires in 10 s": {resp: func(r verifyResponse) verifyResponse { r.Expiration = f(float64(now.Unix() + 10)); return r }, wantUntil: now.Add(10 * time.Second)},
		"good, ms expiration": {resp: func(r verifyResponse) verifyResponse {
			r.Expiration = f(float64(now.Add(time.Hour).UnixMilli()))
			return r
		}, wantUntil: now.Add(DefaultOpaqueCacheTTL)},
		"active false":      {resp: func(verifyResponse) verifyResponse { return verifyResponse{Active: &no} }, reason: "token not active"},
		"revoked":           {resp: func(r verifyResponse) verifyResponse { r.Revoked = true; return r }, reason: "token revoked"},
		"expired flag":      {resp: func(r verifyResponse) verifyResponse { r.Expired = true; return r }, reason: "token expired"},
		"expiration passed": {resp: func(r verifyResponse) verifyResponse { r.Expiration = f(float64(now.Unix() - 60)); return r }, reason: "token expired"},
		"ms expiration passed": {resp: func(r verifyResponse) verifyResponse {
			r.Expiration = f(float64(now.Add(-time.Minute).UnixMilli()))
			return r
		}, reason: "token expired"},
		"empty object": {resp: func(verifyResponse) verifyResponse { return verifyResponse{} }, fails: true},
		"other object": {resp: func(r verifyResponse) verifyResponse { r.Object = "m2m_token"; return r }, fails: true},
		"no subject":   {resp: func(r verifyResponse) verifyResponse { r.Subject = ""; return r }, fails: true},
		"no client id": {resp: func(r verifyResponse) verifyResponse { r.ClientID = ""; return r }, fails: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := tc.resp(base)
			vd, err := v.opaqueVerdict(&r, now)
			switch {
			case tc.fails:
				if err == nil {
					t.Fatalf("verdict %+v, want an error", vd)
				}
			case tc.reason != "":
				if err != nil {
					t.Fatal(err)
				}
				wantInvalid(t, vd.err, tc.reason)
			default:
				if err != nil || vd.err != nil {
					t.Fatalf("err %v, verdict error %v", err, vd.err)
				}
				if !vd.until.Equal(tc.wantUntil) {
					t.Errorf("until = %s, want %s", vd.until, tc.wantUntil)
				}
				if vd.id.UserID != "user_x" || vd.id.ClientID != "client_x" || vd.id.Format != FormatOpaque || vd.id.TokenID != "oat_x" {
					t.Errorf("identity = %+v", vd.id)
				}
			}
		})
	}
}
