package controllers

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// Where the upstream credential Secrets' keys are mounted in the gateway:
// one projected volume, one file per header, named by the header's index.
// Header names may be any RFC 9110 token, "." and ".." included, so they
// make no file names.
const (
	credentialsVolume = "upstream-credentials"
	credentialsDir    = "/etc/mcpgate/credentials"
)

// defaultUserTokenPrefix is spec.upstream.credentials.userOAuthToken.prefix's
// default, for an object the API server has not defaulted.
const defaultUserTokenPrefix = "Bearer "

// credentialFile is the file name, in credentialsDir, of header i's value.
func credentialFile(i int) string { return "header-" + strconv.Itoa(i) }

// buildCredentials is the gateway's credentials block: nil without
// spec.upstream.credentials. Header values stay in their Secrets; the
// configuration names only the files they are mounted as. issuer gives
// the user token's connect URL when the spec sets none.
func buildCredentials(creds *mcpv1.UpstreamCredentials, issuer string) *config.Credentials {
	if creds == nil || (len(creds.Headers) == 0 && creds.UserOAuthToken == nil) {
		return nil
	}
	out := &config.Credentials{}
	for i, h := range creds.Headers {
		out.Headers = append(out.Headers, config.CredentialHeader{
			Name:   string(h.Name),
			File:   credentialsDir + "/" + credentialFile(i),
			Prefix: string(h.Prefix),
		})
	}
	if u := creds.UserOAuthToken; u != nil {
		token := &config.UserOAuthToken{
			Provider:   u.Provider,
			Header:     string(u.Header),
			Prefix:     defaultUserTokenPrefix,
			ConnectURL: u.ConnectURL,
		}
		if token.Header == "" {
			token.Header = config.DefaultUserTokenHeader
		}
		if u.Prefix != nil {
			token.Prefix = string(*u.Prefix)
		}
		if token.ConnectURL == "" {
			token.ConnectURL = accountPortalProfileURL(issuer)
		}
		out.UserOAuthToken = token
	}
	return out
}

// accountPortalProfileURL is the user profile page of the Account Portal of
// the Clerk instance whose Frontend API is issuer, where a user connects
// social accounts; "" when issuer is not a Frontend API host it can be
// derived from (a proxy URL, a loopback emulator, another host). A
// production instance's Frontend API is clerk.<domain> and its Account
// Portal accounts.<domain>; a development instance's are
// <slug>.clerk.accounts.dev and <slug>.accounts.dev.
func accountPortalProfileURL(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme != "https" || u.Port() != "" || (u.Path != "" && u.Path != "/") {
		return ""
	}
	host := strings.ToLower(u.Hostname())
	const devSuffix = ".clerk.accounts.dev"
	if slug, ok := strings.CutSuffix(host, devSuffix); ok {
		if slug == "" || strings.Contains(slug, ".") {
			return ""
		}
		return "https://" + slug + ".accounts.dev/user"
	}
	if domain, ok := strings.CutPrefix(host, "clerk."); ok && strings.Contains(domain, ".") && domain != "accounts.dev" {
		return "https://accounts." + domain + "/user"
	}
	return ""
}

// credentialsVolumeSource projects each header's Secret key into one
// volume, readable by the gateway's group only (as the Clerk key is). Nil
// when there are no header credentials. A missing Secret or key keeps the
// pods from starting, as for the Clerk key; the kubelet refreshes the files
// when a Secret changes, and the gateway reads them again.
func credentialsVolumeSource(creds *mcpv1.UpstreamCredentials) *corev1ac.ProjectedVolumeSourceApplyConfiguration {
	if creds == nil || len(creds.Headers) == 0 {
		return nil
	}
	projected := corev1ac.ProjectedVolumeSource().WithDefaultMode(0o440)
	for i, h := range creds.Headers {
		projected.WithSources(corev1ac.VolumeProjection().WithSecret(
			corev1ac.SecretProjection().WithName(h.SecretKeyRef.Name).
				WithItems(corev1ac.KeyToPath().WithKey(h.SecretKeyRef.Key).WithPath(credentialFile(i)))))
	}
	return projected
}

// reconcileCredentials checks that the Secret key of every credential
// header exists. A missing one blocks Ready (reason SecretNotFound, with a
// Warning Event) but not the other steps: the gateway pods wait for the
// Secret and start as soon as it appears, and the Secret watch brings the
// McpServer back here when it does. Values are never read: the gateway
// reads them from its files, so changing one changes nothing here.
func (r *McpServerReconciler) reconcileCredentials(ctx context.Context, mcp *mcpv1.McpServer, st *reconcileState) error {
	creds := mcp.Spec.Upstream.Credentials
	if creds == nil {
		return nil
	}
	for i, h := range creds.Headers {
		_, missing, err := findSecretKey(ctx, r.Client, mcp.Namespace, h.SecretKeyRef)
		if err != nil {
			return fmt.Errorf("credential header %s: %w", h.Name, err)
		}
		if missing != "" {
			st.block(mcpv1.ReasonSecretNotFound, fmt.Sprintf("spec.upstream.credentials.headers[%d] (%s): %s", i, h.Name, missing))
			return nil
		}
	}
	return nil
}
