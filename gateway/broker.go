package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpgate/mcpgate/broker"
	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// Broker endpoints and outcomes, the label values of
// mcpgate_gateway_broker_calls_total. The sets are fixed, so the metric's
// cardinality is too.
const (
	brokerVerify      = "verify"
	brokerUser        = "user"
	brokerMemberships = "memberships"
	brokerOAuthToken  = "oauth_token"

	brokerOK                 = "ok"
	brokerInvalidToken       = "invalid_token"
	brokerUserNotFound       = "user_not_found"
	brokerNotConnected       = "not_connected"
	brokerTooManyMemberships = "too_many_memberships"
	// brokerRefused: the broker refused the gateway itself (its
	// ServiceAccount token, or no Clerk instance for it): an operator's fix.
	brokerRefused     = "refused"
	brokerUnavailable = "unavailable"
)

// brokerPeople asks the Clerk key broker what the gateway would otherwise
// ask the Backend API with the secret key: opaque token verification (as
// the verifier's Introspect) and, as the directory's clerk.PeopleSource,
// the user, memberships and provider tokens of a verified token's subject.
// It caches nothing: the verifier and the directory in front of it do, so
// only their misses reach the broker. Every call is counted by endpoint and
// outcome.
type brokerPeople struct {
	client *broker.Client
	calls  *prometheus.CounterVec
	// span starts a call's client span (Gateway.startBrokerSpan); nil
	// without tracing.
	span func(ctx context.Context, endpoint string) (context.Context, func(error))
}

// startSpan starts the span of a call to endpoint, when tracing.
func (p *brokerPeople) startSpan(ctx context.Context, endpoint string) (context.Context, func(error)) {
	if p.span == nil {
		return ctx, func(error) {}
	}
	return p.span(ctx, endpoint)
}

// newBrokerPeople builds the broker client of b. It reads no file and makes
// no network call: the CA bundle and the ServiceAccount token are read on
// use, so that their rotations need no restart.
func newBrokerPeople(b config.Broker, calls *prometheus.CounterVec) (*brokerPeople, error) {
	c, err := broker.NewClient(broker.ClientOptions{URL: b.URL, TokenFile: b.TokenFile, CAFile: b.CAFile})
	if err != nil {
		return nil, fmt.Errorf("create broker client: %w", err)
	}
	for _, e := range []string{brokerVerify, brokerUser, brokerMemberships, brokerOAuthToken} {
		for _, o := range []string{brokerOK, brokerInvalidToken, brokerUserNotFound, brokerNotConnected,
			brokerTooManyMemberships, brokerRefused, brokerUnavailable} {
			calls.WithLabelValues(e, o)
		}
	}
	return &brokerPeople{client: c, calls: calls}, nil
}

// introspect verifies an opaque token through the broker, for the
// verifier. Opaque tokens carry no audience, so none is sent.
func (p *brokerPeople) introspect(ctx context.Context, token string) (clerk.Identity, error) {
	ctx, end := p.startSpan(ctx, brokerVerify)
	id, err := p.client.Verify(ctx, broker.AccessToken{Token: token})
	end(err)
	p.count(brokerVerify, err)
	return id, err
}

func (p *brokerPeople) User(ctx context.Context, s clerk.Subject) (clerk.User, error) {
	ctx, end := p.startSpan(ctx, brokerUser)
	u, err := p.client.User(ctx, accessToken(s))
	end(err)
	p.count(brokerUser, err)
	return u, err
}

func (p *brokerPeople) Memberships(ctx context.Context, s clerk.Subject) ([]clerk.Membership, error) {
	ctx, end := p.startSpan(ctx, brokerMemberships)
	ms, err := p.client.Memberships(ctx, accessToken(s))
	end(err)
	p.count(brokerMemberships, err)
	return ms, err
}

func (p *brokerPeople) OAuthToken(ctx context.Context, s clerk.Subject, provider string) (clerk.OAuthToken, error) {
	ctx, end := p.startSpan(ctx, brokerOAuthToken)
	t, err := p.client.OAuthToken(ctx, accessToken(s), provider)
	end(err)
	p.count(brokerOAuthToken, err)
	return t, err
}

// accessToken is what the broker is asked about: the token the subject was
// verified from, the audiences it was verified for, and the user it was
// verified as, so that an answer about anyone else is refused.
func accessToken(s clerk.Subject) broker.AccessToken {
	return broker.AccessToken{Token: s.AccessToken, Audiences: s.Audiences, Subject: s.UserID}
}

// count records one broker call by the clerk error value it came back as.
func (p *brokerPeople) count(endpoint string, err error) {
	var ie *clerk.InvalidTokenError
	outcome := brokerUnavailable
	switch {
	case err == nil:
		outcome = brokerOK
	case errors.As(err, &ie):
		outcome = brokerInvalidToken
	case errors.Is(err, clerk.ErrUserNotFound):
		outcome = brokerUserNotFound
	case errors.Is(err, clerk.ErrNotConnected):
		outcome = brokerNotConnected
	case errors.Is(err, clerk.ErrTooManyMemberships):
		outcome = brokerTooManyMemberships
	case errors.Is(err, broker.ErrRefused):
		outcome = brokerRefused
	}
	p.calls.WithLabelValues(endpoint, outcome).Inc()
}
