package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
)

// Broker is how a gateway reaches the Clerk key broker in the operator's
// namespace, which holds the Clerk secret keys so that no gateway does. With
// a broker, everything the gateway needs from the Backend API (opaque token
// verification, the user and memberships facts of the access rules, the
// callers' tokens at OAuth providers) goes through it, and Clerk.SecretKeyFile
// is empty; JWTs are still verified locally against the instance's public
// keys from the Frontend API. The gateway keeps its caches, so warm requests
// never reach the broker.
type Broker struct {
	// URL is the broker's base URL, such as
	// https://mcpgate-broker.mcpgate-system.svc:8443.
	URL string `json:"url"`
	// CAFile is the mounted PEM bundle the broker's serving certificate
	// must chain to (the operator puts it in the gateway's ConfigMap);
	// re-read when it changes, so a CA rotation needs no restart.
	CAFile string `json:"caFile"`
	// TokenFile is the gateway's projected ServiceAccount token, issued for
	// BrokerAudience; the kubelet rotates it, and it is read on each call.
	TokenFile string `json:"tokenFile"`
}

// BrokerAudience is the audience of the ServiceAccount tokens gateways
// present to the broker, and the only one the broker accepts: such a token
// is useless against the Kubernetes API, and the API server's own tokens
// are useless against the broker.
const BrokerAudience = "mcpgate-broker"

// BrokerCAKey is the key of the broker's CA bundle in a gateway's ConfigMap,
// and the file name it is mounted under next to FileName.
const BrokerCAKey = "broker-ca.crt"

func (b *Broker) validate() []error {
	var errs []error
	u, err := url.Parse(b.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("broker.url %q must be https://host[:port][/path]", b.URL))
	}
	if !filepath.IsAbs(b.CAFile) {
		errs = append(errs, fmt.Errorf("broker.caFile %q must be an absolute path", b.CAFile))
	}
	if !filepath.IsAbs(b.TokenFile) {
		errs = append(errs, fmt.Errorf("broker.tokenFile %q must be an absolute path", b.TokenFile))
	}
	return errs
}

// errKeyAndBroker refuses a configuration that gives the gateway the secret
// key and a broker: with a broker, the key stays in the broker.
var errKeyAndBroker = errors.New("clerk.secretKeyFile and broker are mutually exclusive: with a broker, the gateway holds no secret key")
