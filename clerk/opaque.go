package clerk

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	sdk "github.com/clerk/clerk-sdk-go/v2"
)

const (
	// opaquePrefix starts every opaque Clerk OAuth access token.
	opaquePrefix = "oat_"
	// maxOpaqueLength bounds opaque tokens ("oat_" and 32 hex digits today)
	// while leaving room for a longer format.
	maxOpaqueLength = 512
	// opaqueObject is the object type of a verified opaque token.
	opaqueObject = "clerk_idp_oauth_access_token"
	// millisecondsThreshold tells seconds from milliseconds in expiration:
	// 1e11 seconds is the year 5138, 1e11 milliseconds is March 1973. The
	// spec types it "number" with a seconds example; other Clerk timestamps
	// are milliseconds. Either reading is then unambiguous.
	millisecondsThreshold = 1e11
)

// verifyParams is the body of POST /v1/oauth_applications/access_tokens/verify.
type verifyParams struct {
	sdk.APIParams
	AccessToken string `json:"access_token"`
}

// verifyResponse is either a token (object "clerk_idp_oauth_access_token")
// or {"active": false}.
type verifyResponse struct {
	sdk.APIResource
	Object     string   `json:"object"`
	ID         string   `json:"id"`
	ClientID   string   `json:"client_id"`
	Subject    string   `json:"subject"`
	Scopes     []string `json:"scopes"`
	Revoked    bool     `json:"revoked"`
	Expired    bool     `json:"expired"`
	Expiration *float64 `json:"expiration"`
	Active     *bool    `json:"active"`
}

// verdict is the cached outcome of verifying one opaque token: an identity,
// or an *InvalidTokenError. Failures to ask Clerk are never verdicts.
type verdict struct {
	id    Identity
	err   error
	until time.Time
}

func (vd verdict) expiry() time.Time { return vd.until }

// result hands out a verdict; Scopes is copied so no caller can change the
// cached identity.
func (vd verdict) result() (Identity, error) {
	if vd.err != nil {
		return Identity{}, vd.err
	}
	id := vd.id
	id.Scopes = slices.Clone(id.Scopes)
	return id, nil
}

// verifyOpaque verifies an "oat_" token through the Backend API, or
// VerifierOptions.Introspect when set. Verdicts are
// cached under the token's SHA-256, and concurrent lookups of one token share
// one call.
func (v *Verifier) verifyOpaque(ctx context.Context, token string) (Identity, error) {
	if len(token) > maxOpaqueLength || len(token) == len(opaquePrefix) ||
		!isBase64URLOrDot(token) || strings.Contains(token, ".") {
		return Identity{}, invalid("malformed token")
	}
	key := sha256.Sum256([]byte(token))
	if vd, ok := v.opaque.get(key, v.opts.Now()); ok {
		return vd.result()
	}
	if err := v.limit.active(); err != nil {
		return Identity{}, err
	}
	ch := v.flights.DoChan(string(key[:]), func() (any, error) {
		return v.lookupOpaque(ctx, key, token)
	})
	vd, err := waitFlight[verdict](ctx, ch)
	if err != nil {
		return Identity{}, err
	}
	return vd.result()
}

// lookupOpaque asks Clerk about token and caches the verdict. It runs as the
// only flight for key.
func (v *Verifier) lookupOpaque(ctx context.Context, key tokenHash, token string) (verdict, error) {
	// NOTE: a caller may have missed the cache just before the previous
	// flight for this token filled it; the verdict is there now.
	if vd, ok := v.opaque.get(key, v.opts.Now()); ok {
		return vd, nil
	}
	ctx, cancel := detached(ctx)
	defer cancel()
	ask := v.askBackend
	if v.opts.Introspect != nil {
		ask = v.askIntrospect
	}
	vd, now, err := ask(ctx, token)
	if err != nil {
		return verdict{}, err
	}
	if vd.err != nil {
		if v.opts.NegativeCacheTTL <= 0 {
			return vd, nil
		}
		vd.until = now.Add(v.opts.NegativeCacheTTL)
	}
	v.opaque.put(key, vd, now)
	return vd, nil
}

// askBackend asks the Backend API about token: a verdict, the time it was
// judged at, or an *UnavailableError.
func (v *Verifier) askBackend(ctx context.Context, token string) (verdict, time.Time, error) {
	secret, err := currentSecretKey(ctx, v.opts.SecretKey)
	if err != nil {
		return verdict{}, time.Time{}, err
	}
	req := sdk.NewAPIRequest(http.MethodPost, "/oauth_applications/access_tokens/verify")
	req.SetParams(&verifyParams{AccessToken: token})
	var resp verifyResponse
	err = v.backend.call(ctx, secret, "verify access token", req, &resp)

	now := v.opts.Now()
	var be *BackendError
	switch {
	case errors.As(err, &be) && (be.StatusCode == http.StatusNotFound || be.StatusCode == http.StatusBadRequest):
		// Clerk's answer for a token it does not know.
		return verdict{err: invalid("unknown token")}, now, nil
	case err != nil:
		return verdict{}, now, v.limit.unavailable(err)
	}
	vd, err := v.opaqueVerdict(&resp, now)
	if err != nil {
		return verdict{}, now, v.limit.unavailable(err)
	}
	return vd, now, nil
}

// askIntrospect asks VerifierOptions.Introspect about token, and judges its
// identity as a Backend API answer is judged: expiry with leeway, reuse no
// longer than OpaqueCacheTTL nor past the token's expiry.
func (v *Verifier) askIntrospect(ctx context.Context, token string) (verdict, time.Time, error) {
	id, err := v.opts.Introspect(ctx, token)
	now := v.opts.Now()
	var ie *InvalidTokenError
	switch {
	case errors.As(err, &ie):
		return verdict{err: &InvalidTokenError{Reason: ie.Reason}}, now, nil
	case err != nil:
		return verdict{}, now, v.limit.unavailable(err)
	case id.UserID == "" || id.ClientID == "":
		return verdict{}, now, v.limit.unavailable(errors.New("introspect access token: answer lacks subject or client_id"))
	}
	if exp := id.ExpiresAt; !exp.IsZero() && !now.Before(exp.Add(v.opts.Leeway)) {
		return verdict{err: invalid("token expired")}, now, nil
	}
	id.Scopes = slices.Clone(id.Scopes)
	id.Format = FormatOpaque
	return v.opaqueIdentity(id, now), now, nil
}

// opaqueVerdict judges a 200 answer. An answer that is neither shape in the
// spec is an error (we cannot tell), never a valid token.
func (v *Verifier) opaqueVerdict(r *verifyResponse, now time.Time) (verdict, error) {
	if r.Object == "" && r.Active != nil && !*r.Active {
		return verdict{err: invalid("token not active")}, nil
	}
	if r.Object != opaqueObject {
		return verdict{}, errors.New("verify access token: unexpected response object")
	}
	exp := expirationTime(r.Expiration)
	switch {
	case r.Revoked:
		return verdict{err: invalid("token revoked")}, nil
	case r.Expired, !exp.IsZero() && !now.Before(exp.Add(v.opts.Leeway)):
		return verdict{err: invalid("token expired")}, nil
	case r.Subject == "" || r.ClientID == "":
		return verdict{}, fmt.Errorf("verify access token: response lacks subject or client_id")
	}
	return v.opaqueIdentity(Identity{
		UserID:    r.Subject,
		ClientID:  r.ClientID,
		Scopes:    slices.Clone(r.Scopes),
		ExpiresAt: exp,
		TokenID:   r.ID,
		Format:    FormatOpaque,
	}, now), nil
}

// opaqueIdentity is the verdict of a valid opaque token: its identity, reused
// no longer than OpaqueCacheTTL (so a revocation is seen within it) and never
// past the token's own expiration.
func (v *Verifier) opaqueIdentity(id Identity, now time.Time) verdict {
	until := now.Add(v.opts.OpaqueCacheTTL)
	if !id.ExpiresAt.IsZero() && id.ExpiresAt.Before(until) {
		until = id.ExpiresAt
	}
	return verdict{id: id, until: until}
}

// expirationTime reads the verify answer's expiration, in seconds or in
// milliseconds (see millisecondsThreshold); zero when null (no expiry).
func expirationTime(f *float64) time.Time {
	switch {
	case f == nil:
		return time.Time{}
	case *f <= 0:
		return time.Unix(0, 0) // not "never": the epoch, long expired
	case *f >= millisecondsThreshold:
		return time.UnixMilli(int64(min(*f, 1e15)))
	default:
		sec, frac := math.Modf(*f)
		return time.Unix(int64(sec), int64(frac*1e9))
	}
}
